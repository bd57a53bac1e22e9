"""One delivery attempt of a webhook event: check the endpoint's URL and every address its host resolves
to (DNS rebinding), POST the signed body to the checked address with connect and read timeouts, a total
deadline (WEBHOOK_TOTAL_TIMEOUT: a watchdog shuts the socket down there, however slowly the answer drips)
and no redirects, record the attempt, and say what follows: delivered (a complete, well-formed 2xx answer,
its body read to its end within the deadline), retry (timeout, connection error, an incomplete answer,
429, 5xx; Retry-After honoured), or refused (anything else: dead-lettered at once). At most
WEBHOOK_RESPONSE_MAX_BYTES of the answer are read, and a short excerpt kept.

An endpoint failing WEBHOOK_DISABLE_AFTER_FAILURES attempts in a row, or for WEBHOOK_DISABLE_AFTER_SECONDS,
is disabled: nothing more is sent to it and its client's events wait, pending, until an operator
re-enables it (webhook_endpoint_enable), which sends them again."""

import contextlib
import email.utils
import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection

from clients.models import WebhookEndpoint
from clients.selectors import webhook_endpoint_get, webhook_signing_secrets
from core.logging import get_logger
from core.netsafety import UnsafeUrl, resolve_allowed, url_target
from orders import metrics, statements
from orders.selectors import client_reader, order_detail
from orders.webhooks.models import WebhookDelivery, WebhookEvent, WebhookEventStatus
from orders.webhooks.signing import webhook_body, webhook_headers

log = get_logger(__name__)

EXCERPT_CHARS = 500
USER_AGENT = "order-pipeline-webhooks/1"
Outcome = WebhookDelivery.Outcome


class WebhookRetryable(Exception):
    """Worth another attempt later (after `retry_after` seconds, when the endpoint said so)."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class WebhookRefused(Exception):
    """Not worth another attempt: dead-lettered at once (a redrive sends it again)."""


@dataclass(frozen=True)
class AttemptResult:
    transient: bool | None  # None: delivered; True: retry; False: refused
    status_code: int | None = None
    error: str = ""
    excerpt: str = ""
    retry_after: float | None = None
    duration_s: float = 0.0


class _Deadline:
    """An attempt's total deadline: at it, every socket the attempt opened is shut down, which ends a
    blocked connect, send or read at once (connect and read timeouts bound each wait, not their sum: a
    receiver sending a byte every few seconds would otherwise hold the thread for as long as it likes)."""

    def __init__(self, seconds: float):
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def _watched(cls: type[HTTPConnection], deadline: _Deadline) -> type[HTTPConnection]:
    """urllib3's connection class whose sockets the deadline watches (from their creation, before TLS)."""

    class Watched(cls):  # type: ignore[valid-type, misc]
        watched_by = deadline

        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            deadline.watch(sock)
            return sock

    return Watched


class _PinnedAddressAdapter(HTTPAdapter):
    """Connects to the address that was checked, not to whatever the name resolves to a moment later,
    while TLS still verifies the certificate for the URL's host name (SNI and hostname check). Its
    connections' sockets are watched by the attempt's deadline."""

    def __init__(self, *, address: str, hostname: str, deadline: _Deadline):
        self.address, self.hostname, self.deadline = address, hostname, deadline
        super().__init__(max_retries=0)

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None, cert: Any = None) -> Any:
        pool = super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
        base = HTTPSConnection if pool.scheme == "https" else HTTPConnection
        if getattr(pool.ConnectionCls, "watched_by", None) is not self.deadline:
            pool.ConnectionCls = _watched(base, self.deadline)
        return pool

    def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> tuple[dict, dict]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self.hostname
            pool_kwargs["assert_hostname"] = self.hostname
        return host_params, pool_kwargs


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value):  # ASCII digits: str.isdigit() is true for '²', which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _post(url: str, *, headers: dict[str, str], body: bytes) -> AttemptResult:
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE_URLS
    try:
        target = url_target(url, allow_private=allow_private)
        addresses = resolve_allowed(target, allow_private=allow_private)
    except UnsafeUrl as exc:
        return AttemptResult(transient=False, error=f"UnsafeUrl: {exc}")
    except OSError as exc:  # the name does not resolve (now): DNS may come back
        return AttemptResult(transient=True, error=f"DNS: {exc}")
    total = settings.WEBHOOK_TOTAL_TIMEOUT
    deadline = _Deadline(total)
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: it would connect elsewhere than checked
    session.mount(
        f"{target.scheme}://", _PinnedAddressAdapter(address=addresses[0], hostname=target.host, deadline=deadline)
    )
    headers = {**headers, "Host": urlsplit(url).netloc, "User-Agent": USER_AGENT}
    code: int | None = None
    incomplete = ""
    try:
        with session.post(
            url,
            data=body,
            headers=headers,
            timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, min(settings.WEBHOOK_READ_TIMEOUT, total)),
            allow_redirects=False,
            stream=True,  # the body is read here, at most WEBHOOK_RESPONSE_MAX_BYTES of it
        ) as response:
            code = response.status_code
            answer, incomplete = _read_answer(response)
            excerpt = answer.decode("utf-8", "replace")[:EXCERPT_CHARS]
    except requests.RequestException as exc:
        if deadline.expired:
            return AttemptResult(transient=True, status_code=code, error=f"Timeout: no complete answer in {total:g}s")
        if isinstance(exc, requests.Timeout):
            return AttemptResult(transient=True, error=f"Timeout: {exc}")
        if isinstance(exc, requests.ConnectionError):
            return AttemptResult(transient=True, error=f"ConnectionError: {exc}")
        return AttemptResult(transient=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        deadline.cancel()
        session.close()
    if deadline.expired and incomplete:
        incomplete = f"Timeout: no complete answer in {total:g}s"
    if 200 <= code < 300:
        if incomplete:  # only a complete, well-formed answer counts as delivered
            return AttemptResult(transient=True, status_code=code, error=incomplete, excerpt=excerpt)
        return AttemptResult(transient=None, status_code=code, excerpt=excerpt)
    if code == 429 or code >= 500:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        return AttemptResult(
            transient=True, status_code=code, error=f"HTTP {code}", excerpt=excerpt, retry_after=retry_after
        )
    return AttemptResult(transient=False, status_code=code, error=f"HTTP {code}", excerpt=excerpt)


def _read_answer(response: requests.Response) -> tuple[bytes, str]:
    """The answer's body read to its end (Content-Length or chunked framing checked), and "" when it was
    complete, else what was wrong: cut short, malformed, or longer than WEBHOOK_RESPONSE_MAX_BYTES."""
    limit = settings.WEBHOOK_RESPONSE_MAX_BYTES
    answer = bytearray()
    try:
        for chunk in response.iter_content(chunk_size=8192):
            answer += chunk
            if len(answer) > limit:
                return bytes(answer[:limit]), f"the answer's body is over {limit} bytes"
    except requests.RequestException as exc:
        return bytes(answer), f"incomplete answer: {type(exc).__name__}: {exc}"
    return bytes(answer), ""


def _event_body(event: WebhookEvent) -> str:
    """The event's body, fixed by its first attempt: the order as GET /orders/{id} shows it to the client."""
    if event.body:
        return event.body
    data = order_detail(order_id=event.order_id, reader=client_reader(event.client_id))
    if data is None:
        raise WebhookRefused(f"order {event.order_id} not found")
    body = webhook_body(event_type=event.type, occurred_at=event.created_at, data=data)
    if not WebhookEvent.objects.filter(id=event.id, body="").update(body=body):
        body = WebhookEvent.objects.values_list("body", flat=True).get(id=event.id)  # a concurrent attempt's
    return body


def _record(event: WebhookEvent, *, attempt: int, outcome: str, result: AttemptResult) -> None:
    now = timezone.now()
    statuses: dict[str, WebhookEventStatus] = {
        Outcome.DELIVERED: WebhookEventStatus.DELIVERED,
        Outcome.FAILED: WebhookEventStatus.FAILED,
    }
    status = statuses.get(outcome, WebhookEventStatus.PENDING)
    # transaction ensures the attempt and the event's state are recorded together.
    with transaction.atomic():
        WebhookDelivery.objects.create(
            event=event,
            attempt=attempt,
            outcome=outcome,
            status_code=result.status_code,
            duration_ms=round(result.duration_s * 1000, 1),
            error=result.error[:2000],
            response_excerpt=result.excerpt[:EXCERPT_CHARS],
        )
        WebhookEvent.objects.filter(id=event.id).update(
            attempts=F("attempts") + 1,
            status=status,
            last_error=result.error[:2000],
            delivered_at=now if outcome == Outcome.DELIVERED else None,
        )
    metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
    if result.duration_s:
        metrics.WEBHOOK_DELIVERY_SECONDS.observe(result.duration_s)
    (log.info if outcome == Outcome.DELIVERED else log.warning)(
        "webhook_attempt",
        order_id=str(event.order_id),
        webhook_id=event.webhook_id,
        type=event.type,
        attempt=attempt,
        outcome=outcome,
        status_code=result.status_code,
        duration_ms=round(result.duration_s * 1000, 1),
        error=result.error,
    )


def webhook_deliver(*, event_id: Any, attempt: int, retries_left: bool) -> WebhookEvent:
    """One attempt at delivering the event. Returns it (delivered now or before: a duplicate message sends
    nothing); raises WebhookRetryable or WebhookRefused after recording the attempt."""
    event = WebhookEvent.objects.filter(id=event_id).first()
    if event is None:
        raise WebhookRefused(f"webhook event {event_id} does not exist")
    if event.status == WebhookEventStatus.DELIVERED:
        log.info("webhook_duplicate_skipped", order_id=str(event.order_id), webhook_id=event.webhook_id)
        return event
    endpoint = webhook_endpoint_get(client_id=event.client_id)
    if endpoint is not None and endpoint.disabled_at is not None:
        _wait_for_endpoint(event, endpoint)
        return event
    if endpoint is None:
        result = AttemptResult(transient=False, error="the client has no webhook endpoint")
    else:
        body = _event_body(event)
        headers = webhook_headers(
            webhook_id=event.webhook_id,
            body=body,
            secrets=webhook_signing_secrets(endpoint=endpoint),
            now=timezone.now(),
        )
        if not connection.in_atomic_block:
            close_old_connections()  # a pooled connection goes back to the pool for the call
        started = time.monotonic()
        result = _post(endpoint.url, headers=headers, body=body.encode())
        result = AttemptResult(**{**result.__dict__, "duration_s": time.monotonic() - started})
    disabled = endpoint is not None and _endpoint_health(endpoint, delivered=result.transient is None)
    if result.transient is None:
        outcome = Outcome.DELIVERED
    elif (result.transient and retries_left) or disabled:
        outcome = Outcome.RETRY  # disabled by this attempt: the event waits for the endpoint with the others
    else:
        outcome = Outcome.FAILED
    _record(event, attempt=attempt, outcome=outcome, result=result)
    if result.transient is None:
        return event
    if disabled:
        return event
    if result.transient:
        raise WebhookRetryable(result.error, retry_after=result.retry_after)
    raise WebhookRefused(result.error)


def _endpoint_health(endpoint: WebhookEndpoint, *, delivered: bool) -> bool:
    """Count the attempt on its endpoint: a delivery clears its failures; a failure adds one and, past
    WEBHOOK_DISABLE_AFTER_FAILURES in a row or WEBHOOK_DISABLE_AFTER_SECONDS since the first of them,
    disables it. Returns whether the endpoint is disabled now."""
    endpoints = WebhookEndpoint.objects.filter(pk=endpoint.pk)
    if delivered:
        endpoints.filter(consecutive_failures__gt=0).update(consecutive_failures=0, failing_since=None)
        return False
    now = timezone.now()
    # transaction ensures concurrent attempts count every failure and one of them disables the endpoint.
    with transaction.atomic():
        row = endpoints.select_for_update().first()
        if row is None:
            return False
        if row.disabled_at is not None:
            return True
        row.consecutive_failures += 1
        row.failing_since = row.failing_since or now
        fields = ["consecutive_failures", "failing_since"]
        max_failures, max_seconds = settings.WEBHOOK_DISABLE_AFTER_FAILURES, settings.WEBHOOK_DISABLE_AFTER_SECONDS
        failing_for = (now - row.failing_since).total_seconds()
        if (max_failures and row.consecutive_failures >= max_failures) or (max_seconds and failing_for >= max_seconds):
            row.disabled_at = now
            row.disabled_reason = (
                f"{row.consecutive_failures} failed attempts in a row over {failing_for:.0f}s"
                f" (WEBHOOK_DISABLE_AFTER_FAILURES={max_failures}, WEBHOOK_DISABLE_AFTER_SECONDS={max_seconds})"
            )
            fields += ["disabled_at", "disabled_reason"]
        row.save(update_fields=fields)
    if row.disabled_at is not None:
        metrics.WEBHOOK_ENDPOINTS_DISABLED.inc()
        log.error(
            "webhook_endpoint_disabled",
            client_id=row.client_id,
            url=row.url,
            consecutive_failures=row.consecutive_failures,
            reason=row.disabled_reason,
        )
        return True
    return False


def _wait_for_endpoint(event: WebhookEvent, endpoint: WebhookEndpoint) -> None:
    """The endpoint is disabled: nothing is sent, no attempt counted, the event stays pending (its message is
    acked: webhook_endpoint_enable publishes it again)."""
    error = f"endpoint disabled since {endpoint.disabled_at:%Y-%m-%d %H:%M:%S %Z}: waiting for it to be re-enabled"
    WebhookEvent.objects.filter(id=event.id).exclude(status=WebhookEventStatus.DELIVERED).update(
        status=WebhookEventStatus.PENDING, last_error=error
    )
    log.warning("webhook_waiting_for_endpoint", order_id=str(event.order_id), webhook_id=event.webhook_id)


@transaction.atomic
def webhook_endpoint_enable(*, endpoint: WebhookEndpoint) -> int:
    """Re-enable a disabled (or failing) endpoint: its failures are forgotten and every pending event of its
    client is published again through the outbox (an event already on its way is sent once: a delivered one
    is skipped). Returns how many were published."""
    # transaction ensures the endpoint is enabled exactly when its waiting events' outbox rows commit.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        disabled_at=None, disabled_reason="", consecutive_failures=0, failing_since=None
    )
    with connection.cursor() as cursor:
        cursor.execute(
            statements.WEBHOOK_REPUBLISH, statements.params(now=timezone.now(), client_id=endpoint.client_id)
        )
        published = int(statements.fetch_one(cursor).published)
    log.info("webhook_endpoint_enabled", client_id=endpoint.client_id, url=endpoint.url, republished=published)
    return published


def webhook_event_fail(*, event_id: Any, error: str) -> None:
    """The delivery task failed for good (its message is dead-lettered): the event is failed, unless an
    attempt delivered it meanwhile."""
    WebhookEvent.objects.filter(id=event_id).exclude(status=WebhookEventStatus.DELIVERED).update(
        status=WebhookEventStatus.FAILED, last_error=error[:2000]
    )
