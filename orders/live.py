"""`GET /`: the live page. Products with live stock and every order's progress, pushed over `/ws/orders`
(orders/consumers.py). The page is static HTML/CSS/JS: it reads the public API (`/products`,
`/orders`, `/orders/<id>`) and never carries the API token (the demo form asks for it)."""
from django.conf import settings
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# Same-origin only: no CDN, no inline script, the socket and the API on this host.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


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
        },
    )
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
