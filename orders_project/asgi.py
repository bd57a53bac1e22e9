import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orders_project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from core.limits import ASGIRequestLimits  # noqa: E402
from orders.routing import websocket_urlpatterns  # noqa: E402

# `live` serves the live page's WebSocket; the page itself, the API, the admin, /ops and /metrics are web's
# (gunicorn). Over HTTP it answers only its probes, so it is no second door into the whole app.
LIVE_HTTP_PATHS = frozenset({"/healthz", "/readyz"})


async def live_http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django for the probe paths, a plain 404 for every other path (before any middleware or view)."""
    if scope["path"] in LIVE_HTTP_PATHS:
        await django_asgi_app(scope, receive, send)
        return
    body = b"Not Found: the live server answers only /ws/orders, /healthz and /readyz\n"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": body})


application = ProtocolTypeRouter(
    {
        # Bodies bounded (REQUEST_MAX_BODY_BYTES, REQUEST_BODY_TIMEOUT) before any path is looked at.
        "http": ASGIRequestLimits(live_http),
        # Only pages served from ALLOWED_HOSTS may open the socket; the session tells staff apart. Frames
        # are bounded by uvicorn itself (--ws-max-size, LIVE_WS_MAX_BYTES: closed with 1009).
        # types-channels wants its own URLPattern subtype; the routes are re_path()s, as channels documents
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),  # type: ignore[arg-type]
    }
)
