"""One error family and one DRF handler: every error is JSON `{message, code, extra}`."""

import sys
from typing import Any, cast

from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from kombu.exceptions import OperationalError as BrokerUnavailable
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.logging import get_logger

log = get_logger(__name__)


class ApplicationError(Exception):
    """A domain error the API turns into a 4xx with a stable `code`."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code = "application_error"

    def __init__(self, message: str, *, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class ConflictError(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class TransientError(Exception):
    """Worth another try later (a timeout, a 5xx-like answer, a message that arrived before its
    predecessor's effect): the pipeline's stages retry these with backoff, and fail the order on anything else."""


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A backing service is unavailable; retry with the same X-Idempotency-Key."
    default_code = "service_unavailable"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, (OperationalError, InterfaceError)):
        # PostgreSQL unreachable: say so and let the client retry, never a 500 trace.
        log.warning("database_unavailable", error=str(exc))
        exc = ServiceUnavailable()
    elif isinstance(exc, DatabaseError):
        log.exception("database_error")
        exc = ServiceUnavailable()
    elif isinstance(exc, (BrokerUnavailable, ConnectionError, TimeoutError)):
        # RabbitMQ unreachable while publishing (an operator's redrive): the transaction rolled back, retry.
        log.warning("broker_unavailable", error=f"{type(exc).__name__}: {exc}")
        exc = ServiceUnavailable()

    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "code": exc.code, "extra": exc.extra}, status=exc.status_code)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "message": "Validation error",
            "code": "invalid",
            "extra": {
                "fields": response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
            },
        }
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        # a response from DRF's handler: exc is an APIException (Http404 and PermissionDenied were converted above)
        default_code = cast(exceptions.APIException, exc).default_code
        response.data = {"message": str(detail), "code": getattr(detail, "code", default_code), "extra": {}}
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


RETRY_AFTER_SECONDS = "1"  # a 503's Retry-After: a failover or a restart is seconds


def error_json(message: str, code: str, status: int) -> JsonResponse:
    """An error outside DRF's views in the API's shape, `{message, code, extra}`; a 503 says when to retry."""
    response = JsonResponse({"message": message, "code": code, "extra": {}}, status=status)
    if status == 503:
        response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """`handler404` for the root URLconf: a URL that no route matches (e.g. `/ops/dead-letters/-1`, the id
    must be digits) answers like every other API error, `{message, code, extra}` as JSON, instead of
    Django's HTML page. Wire it with `handler404 = "core.exceptions.page_not_found"` in the root urls."""
    return error_json("Not found.", "not_found", 404)


def server_error(request: HttpRequest) -> JsonResponse:
    """`handler500` for the root URLconf: an exception outside DRF's views (the admin, the live page, a
    middleware's session read). PostgreSQL unreachable or mid-failover (its connection broken, no primary yet)
    is a `503` with `Retry-After`, as in the API; anything else a `500` without a trace."""
    exc = sys.exc_info()[1]
    if isinstance(exc, (OperationalError, InterfaceError)):
        log.warning("database_unavailable", error=str(exc), path=request.path)
        return error_json(str(ServiceUnavailable.default_detail), str(ServiceUnavailable.default_code), 503)
    return error_json("Server error.", "server_error", 500)
