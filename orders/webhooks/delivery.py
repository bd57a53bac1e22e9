"""One delivery attempt of a webhook event: check the endpoint's URL and every address its host resolves
to (DNS rebinding), POST the signed body to the checked address with connect and read timeouts and no
redirects, record the attempt, and say what follows: delivered (2xx), retry (timeout, connection error,
429, 5xx; Retry-After honoured), or refused (anything else: dead-lettered at once). No more of the
answer is read or kept than a short excerpt."""

import email.utils
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

from clients.selectors import webhook_endpoint_get, webhook_signing_secrets
from core.logging import get_logger
from core.netsafety import UnsafeUrl, resolve_allowed, url_target
from orders import metrics
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


class _PinnedAddressAdapter(HTTPAdapter):
    """Connects to the address that was checked, not to whatever the name resolves to a moment later,
    while TLS still verifies the certificate for the URL's host name (SNI and hostname check)."""

    def __init__(self, *, address: str, hostname: str):
        self.address, self.hostname = address, hostname
        super().__init__(max_retries=0)

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
    if value.isdigit():
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
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: it would connect elsewhere than checked
    session.mount(f"{target.scheme}://", _PinnedAddressAdapter(address=addresses[0], hostname=target.host))
    headers = {**headers, "Host": urlsplit(url).netloc, "User-Agent": USER_AGENT}
    try:
        with session.post(
            url,
            data=body,
            headers=headers,
            timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT),
            allow_redirects=False,
            stream=True,  # the body is read only as far as the excerpt
        ) as response:
            try:
                excerpt = response.raw.read(EXCERPT_CHARS, decode_content=True).decode("utf-8", "replace")[
                    :EXCERPT_CHARS
                ]
            except Exception:
                excerpt = ""  # the status line and headers are the answer; a broken body does not change it
            code = response.status_code
    except requests.Timeout as exc:
        return AttemptResult(transient=True, error=f"Timeout: {exc}")
    except requests.ConnectionError as exc:
        return AttemptResult(transient=True, error=f"ConnectionError: {exc}")
    except requests.RequestException as exc:
        return AttemptResult(transient=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        session.close()
    if 200 <= code < 300:
        return AttemptResult(transient=None, status_code=code, excerpt=excerpt)
    if code == 429 or code >= 500:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        return AttemptResult(
            transient=True, status_code=code, error=f"HTTP {code}", excerpt=excerpt, retry_after=retry_after
        )
    return AttemptResult(transient=False, status_code=code, error=f"HTTP {code}", excerpt=excerpt)


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
    if result.transient is None:
        outcome = Outcome.DELIVERED
    elif result.transient and retries_left:
        outcome = Outcome.RETRY
    else:
        outcome = Outcome.FAILED
    _record(event, attempt=attempt, outcome=outcome, result=result)
    if result.transient is None:
        return event
    if result.transient:
        raise WebhookRetryable(result.error, retry_after=result.retry_after)
    raise WebhookRefused(result.error)


def webhook_event_fail(*, event_id: Any, error: str) -> None:
    """The delivery task failed for good (its message is dead-lettered): the event is failed, unless an
    attempt delivered it meanwhile."""
    WebhookEvent.objects.filter(id=event_id).exclude(status=WebhookEventStatus.DELIVERED).update(
        status=WebhookEventStatus.FAILED, last_error=error[:2000]
    )
