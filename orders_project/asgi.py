import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orders_project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from core.limits import ASGIRequestLimits  # noqa: E402
from orders.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Static files (admin, browsable API, docs) served by the app itself: one image, no sidecar.
        # Bodies bounded (REQUEST_MAX_BODY_BYTES, REQUEST_BODY_TIMEOUT) before Django reads and spools them.
        "http": ASGIRequestLimits(ASGIStaticFilesHandler(django_asgi_app)),
        # Only pages served from ALLOWED_HOSTS may open the socket; the session tells staff apart. Frames
        # are bounded by uvicorn itself (--ws-max-size, LIVE_WS_MAX_BYTES: closed with 1009).
        # types-channels wants its own URLPattern subtype; the routes are re_path()s, as channels documents
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),  # type: ignore[arg-type]
    }
)
