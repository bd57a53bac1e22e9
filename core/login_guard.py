"""Password guessing: every login attempt (HTTP Basic on /ops/*, /admin/login/, /api-auth/login/) is counted
per address and per username in Redis *before* the password is hashed; past a limit the attempt is refused
unhashed, with a 429 and Retry-After (core/operator_auth.py for Basic, LoginLockoutMiddleware for the pages).

All three call django.contrib.auth.authenticate() with the request, so the count sits in the one password
backend (GuardedModelBackend, ModelBackend's subclass). An attempt reserves a slot in both counters first;
a successful login gives its slot back, so only failures (and attempts still in flight) stay counted, and
parallel guesses cannot all slip past the limit while their hashes run. A counter lives LOGIN_LOCKOUT_SECONDS
from its first attempt: a lockout ends then. If Redis is unreachable, logins go on uncounted (like the
throttles), with a warning in the log.

Why not django-axes: it counts a failure only after the hash (its user_login_failed receiver), so N
parallel guesses all hash before the first is counted, and its lockout of a DRF Basic request is an
ordinary 401 without Retry-After (authenticate() swallows its PermissionDenied; its flag is set on DRF's
Request, which its middleware never sees)."""

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape
from django_redis import get_redis_connection

from core.client_ip import client_ip
from core.logging import get_logger

log = get_logger(__name__)

# Set on the HttpRequest when an attempt was refused: the seconds until the lockout ends.
LOCKED_OUT_ATTR = "login_locked_out_for"


def _http_request(request: Any) -> HttpRequest:
    """The HttpRequest behind a DRF Request (attributes set on DRF's never reach the middleware)."""
    return getattr(request, "_request", request)


def _keys(request: Any, username: str) -> list[tuple[str, int]]:
    prefix = f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:login"
    user_digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return [
        (f"{prefix}:ip:{client_ip(request)}", settings.LOGIN_FAILURE_LIMIT_PER_IP),
        (f"{prefix}:user:{user_digest}", settings.LOGIN_FAILURE_LIMIT_PER_USERNAME),
    ]


def login_attempt_reserve(*, request: Any, username: str) -> tuple[list[str], int | None]:
    """Count this attempt against its address and username. Returns the keys counted (to give back on
    success) and, when either is past its limit, the seconds until that lockout ends (else None)."""
    keys = _keys(request, username)
    window = settings.LOGIN_LOCKOUT_SECONDS
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        for key, _ in keys:
            pipe.set(key, 0, ex=window, nx=True)  # the window starts at the first attempt
            pipe.incr(key)
            pipe.ttl(key)
        replies = pipe.execute()
    except Exception as exc:
        log.warning("login_guard_unavailable", error=f"{type(exc).__name__}: {exc}")
        return [], None
    retry_after = None
    for i, (_, limit) in enumerate(keys):
        count, ttl = replies[3 * i + 1], replies[3 * i + 2]
        if count > limit:
            wait = max(1, ttl if ttl and ttl > 0 else window)
            retry_after = max(retry_after or 0, wait)
    return [key for key, _ in keys], retry_after


def login_attempt_refund(*, keys: list[str]) -> None:
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        for key in keys:
            pipe.decr(key)
        pipe.execute()
    except Exception as exc:
        log.warning("login_guard_unavailable", error=f"{type(exc).__name__}: {exc}")


class GuardedModelBackend(ModelBackend):
    """ModelBackend (passwords, permissions) that counts the attempt before the password is hashed."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if username is None:
            username = kwargs.get(self._username_field())
        if request is None or username is None or password is None:
            # No request (a management command, a test's force_login): nothing to count by.
            return super().authenticate(request, username=username, password=password, **kwargs)
        keys, retry_after = login_attempt_reserve(request=request, username=str(username))
        if retry_after is not None:
            setattr(_http_request(request), LOCKED_OUT_ATTR, retry_after)
            log.warning("login_locked_out", ip=client_ip(request), retry_after=retry_after)
            # authenticate() stops at a backend's PermissionDenied: no other backend runs, nothing is hashed.
            raise PermissionDenied("too many failed logins")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            login_attempt_refund(keys=keys)
        return user

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


def login_locked_out_for(request: Any) -> int | None:
    return getattr(_http_request(request), LOCKED_OUT_ATTR, None)


class LoginLockoutMiddleware:
    """The admin's and the browsable API's login pages: a refused attempt is a 429 lockout page with
    Retry-After instead of the form's "wrong password" (the API's Basic answers 429 itself)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        retry_after = login_locked_out_for(request)
        if retry_after is None or response.status_code == 429:
            return response
        minutes = max(1, (retry_after + 59) // 60)
        page = HttpResponse(
            "<!doctype html><title>Too many failed logins</title>"
            "<h1>Too many failed logins</h1>"
            f"<p>Too many failed logins from this address or for this username. "
            f"Try again in about {escape(str(minutes))} minute(s).</p>",
            status=429,
            content_type="text/html; charset=utf-8",
        )
        page["Retry-After"] = str(retry_after)
        return page
