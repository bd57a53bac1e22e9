"""`GET /`: the live page. Products with live stock and every order's progress, pushed over `/ws/orders`
(orders/consumers.py). The page is static HTML/CSS/JS: it reads the public API (`/products`,
`/orders`, `/orders/<id>`) and never carries the API token (the demo form asks for it)."""

import re

from django.conf import settings
from django.http.request import split_domain_port
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from orders.pipeline import STAGES

# Same-origin only: no CDN, no inline script, the API on this host; the socket on this origin too, or,
# with LIVE_WS_PORT, on this host's live port.
CONTENT_SECURITY_POLICY = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
]
# What a CSP host-source may hold (no IPv6 literal: for those the port alone narrows it).
_CSP_HOST = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*$")


def content_security_policy(request) -> str:
    directives = list(CONTENT_SECURITY_POLICY)
    if settings.LIVE_WS_PORT:
        # 'self' covers ws(s) on the page's own port only; the page opens ws(s)://<its host>:<port>.
        host, _ = split_domain_port(request.get_host())
        host = host if _CSP_HOST.match(host) else "*"
        sources = " ".join(f"{scheme}://{host}:{settings.LIVE_WS_PORT}" for scheme in ("ws", "wss"))
        directives = [f"{d} {sources}" if d.startswith("connect-src ") else d for d in directives]
    return "; ".join(directives)


@require_GET
@never_cache
def live_page(request):
    response = render(
        request,
        "orders/live.html",
        {
            # The page's first catch-up point, on the server's clock (event times are server times too).
            "server_now": timezone.now().isoformat(),
            "anonymous_feed": settings.LIVE_FEED_ANONYMOUS,
            # Empty: the socket is on this origin. Else the port of the live process on this host.
            "live_ws_port": settings.LIVE_WS_PORT,
            "pipeline_stages": [{"name": s.name, "queue": s.queue} for s in STAGES],
        },
    )
    response["Content-Security-Policy"] = content_security_policy(request)
    return response
