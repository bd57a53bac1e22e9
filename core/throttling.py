"""Request rate limits per API client (or staff user) and per anonymous IP, counted in Redis.

A fixed window per caller: one pipelined INCR + EXPIRE per request, whatever the rate. DRF's own
SimpleRateThrottle keeps every request's timestamp in one cached list that it reads and rewrites
on each request, which at API rates (hundreds a second) costs more than the request itself.
If Redis is unreachable the request is let through (the API stays up without Redis, like POST)."""

import time
from typing import TYPE_CHECKING

from django.conf import settings
from django_redis import get_redis_connection
from rest_framework.throttling import BaseThrottle

if TYPE_CHECKING:  # rest_framework.views imports the throttle classes (DEFAULT_THROTTLE_CLASSES): a cycle at run time
    from rest_framework.request import Request
    from rest_framework.views import APIView

from core.client_ip import client_ip
from core.logging import get_logger
from core.rates import parse_rate

log = get_logger(__name__)


class _WindowThrottle(BaseThrottle):
    scope = ""

    def __init__(self) -> None:
        self.limit, self.window = parse_rate(settings.THROTTLE_RATES[self.scope])
        self.retry_after: int | None = None

    def identity(self, request: "Request") -> str | None:
        raise NotImplementedError

    def allow_request(self, request: "Request", view: "APIView") -> bool:
        ident = self.identity(request)
        if ident is None:
            return True
        now = time.time()
        start = int(now // self.window) * self.window
        key = f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:throttle:{self.scope}:{ident}:{start}"
        try:
            pipe = get_redis_connection("default").pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, self.window + 1)
            count = pipe.execute()[0]
        except Exception as exc:
            log.warning("throttle_unavailable", scope=self.scope, error=f"{type(exc).__name__}: {exc}")
            return True
        if count <= self.limit:
            return True
        self.retry_after = max(1, int(start + self.window - now + 0.999))
        return False

    def wait(self) -> float | None:
        return self.retry_after


class ClientRateThrottle(_WindowThrottle):
    """Per API client (all its keys together) or per staff user."""

    scope = "client"

    def identity(self, request: "Request") -> str | None:
        user = request.user
        if not (user and user.is_authenticated):
            return None
        return f"{getattr(user, 'username', '')}:{user.pk}"


class AnonRateThrottle(_WindowThrottle):
    """Per anonymous IP: REMOTE_ADDR, or X-Forwarded-For only as far as NUM_PROXIES trusts it (core/client_ip.py)."""

    scope = "anon"

    def identity(self, request: "Request") -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return client_ip(request)
