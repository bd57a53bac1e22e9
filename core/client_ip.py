"""The caller's IP address, for the anonymous throttle (core/throttling.py) and the failed-login lockout
(core/login_guard.py).

X-Forwarded-For is read only when NUM_PROXIES says how many proxies in front of the web append to it, and
then only the address the nearest trusted proxy saw. Anybody can send the header, so with NUM_PROXIES unset
it is ignored and REMOTE_ADDR is the caller (DRF's own get_ident uses the whole header then: a varying
X-Forwarded-For was a fresh budget per request)."""

from typing import Any

from django.conf import settings


def client_ip(request: Any) -> str:
    """`request` is a Django HttpRequest or a DRF Request (which proxies META)."""
    remote_addr = request.META.get("REMOTE_ADDR") or ""
    num_proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES")
    if not num_proxies:  # unset (None) or 0: nobody's X-Forwarded-For is trusted
        return remote_addr
    xff = request.META.get("HTTP_X_FORWARDED_FOR") or ""
    addrs = [a.strip() for a in xff.split(",") if a.strip()]
    if not addrs:
        return remote_addr
    return addrs[-min(num_proxies, len(addrs))]
