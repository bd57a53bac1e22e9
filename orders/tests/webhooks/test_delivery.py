"""One delivery attempt against a real HTTP receiver on loopback that verifies every signature with the
standardwebhooks library: what is sent, what is retried, what is refused, what is recorded."""

import json
import socket
import time

import pytest
from django.test import override_settings

from clients import services as client_services
from clients.models import WebhookEndpoint
from orders import metrics, selectors
from orders.webhooks import delivery
from orders.webhooks.models import WebhookDelivery, WebhookEvent
from orders.webhooks.selectors import webhook_backlog
from orders.webhooks.tasks import retry_delay
from tests.webhook_receiver import Answer

pytestmark = pytest.mark.django_db


def deliver(event: WebhookEvent, *, attempt: int = 1, retries_left: bool = True) -> WebhookEvent:
    delivery.webhook_deliver(event_id=event.id, attempt=attempt, retries_left=retries_left)
    event.refresh_from_db()
    return event


def counter(outcome: str) -> float:
    return metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome)._value.get()


def test_a_delivery_is_signed_per_standard_webhooks_and_carries_the_order_as_its_client_reads_it(
    completed_event, webhook_receiver, hooked_client
):
    before = counter("delivered")
    assert webhook_backlog() == 1
    # when
    event = deliver(completed_event)
    # then: one POST, verified by the library with the endpoint's secret
    (call,) = webhook_receiver.calls
    assert call.verified_by == [0]
    assert call.headers["webhook-id"] == event.webhook_id
    assert abs(int(call.headers["webhook-timestamp"]) - time.time()) < 10
    assert call.headers["webhook-signature"].startswith("v1,") and call.headers["content-type"] == "application/json"
    body = call.payload
    assert body["type"] == "order.completed" and body["timestamp"] == event.created_at.isoformat()
    assert body["data"] == selectors.order_detail(
        order_id=event.order_id, reader=selectors.client_reader(hooked_client.id)
    )
    assert body["data"]["status"] == "completed" and "webhooks" not in body["data"]
    # recorded: the attempt, the event delivered, the counter, the backlog
    (attempt,) = WebhookDelivery.objects.filter(event=event)
    assert (attempt.attempt, attempt.outcome, attempt.status_code, attempt.response_excerpt) == (
        1,
        "delivered",
        200,
        "ok",
    )
    assert attempt.duration_ms > 0
    assert (event.status, event.attempts) == ("delivered", 1) and event.delivered_at is not None
    assert counter("delivered") == before + 1
    assert webhook_backlog() == 0
    # a duplicate message of a delivered event sends nothing
    deliver(event)
    assert len(webhook_receiver.calls) == 1


@pytest.mark.parametrize("answer", [Answer(500, body="boom"), Answer(503), Answer(429, headers={"Retry-After": "7"})])
def test_5xx_and_429_are_retried_with_the_same_id_and_body(completed_event, webhook_receiver, answer):
    webhook_receiver.answer_next(answer)
    # when: the first attempt fails transiently
    with pytest.raises(delivery.WebhookRetryable) as raised:
        deliver(completed_event)
    event = WebhookEvent.objects.get(id=completed_event.id)
    assert event.status == "pending" and event.last_error == f"HTTP {answer.status}"
    assert raised.value.retry_after == (7.0 if answer.status == 429 else None)
    # and the retry succeeds
    event = deliver(event, attempt=2)
    first, second = webhook_receiver.calls
    assert first.webhook_id == second.webhook_id == event.webhook_id and first.body == second.body
    assert first.verified_by == second.verified_by == [0]
    assert list(WebhookDelivery.objects.filter(event=event).values_list("attempt", "outcome", "status_code")) == [
        (1, "retry", answer.status),
        (2, "delivered", 200),
    ]


def test_an_endpoint_hanging_past_the_read_timeout_is_a_retry(completed_event, webhook_receiver, settings):
    settings.WEBHOOK_READ_TIMEOUT = 0.5
    webhook_receiver.answer_next(Answer(hang=2))
    started = time.monotonic()
    with pytest.raises(delivery.WebhookRetryable, match="Timeout"):
        deliver(completed_event)
    assert time.monotonic() - started < 1.8
    attempt = WebhookDelivery.objects.get(event=completed_event)
    assert attempt.outcome == "retry" and attempt.status_code is None and "Timeout" in attempt.error
    assert 400 <= attempt.duration_ms < 1800


def test_a_connection_error_is_a_retry(completed_event, settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    WebhookEndpoint.objects.filter(client_id=completed_event.client_id).update(url=f"http://127.0.0.1:{port}/h")
    with pytest.raises(delivery.WebhookRetryable, match="ConnectionError"):
        deliver(completed_event)


@pytest.mark.parametrize("status", [410, 400, 404, 301])
def test_other_4xx_and_redirects_are_refused_at_once_and_never_followed(completed_event, webhook_receiver, status):
    before = counter("failed")
    webhook_receiver.answer_next(Answer(status, headers={"Location": webhook_receiver.url + "/moved"}, body="gone"))
    with pytest.raises(delivery.WebhookRefused, match=f"HTTP {status}"):
        deliver(completed_event)
    assert len(webhook_receiver.calls) == 1  # the redirect was not followed
    event = WebhookEvent.objects.get(id=completed_event.id)
    assert event.status == "failed"
    assert WebhookDelivery.objects.get(event=event).outcome == "failed"
    assert counter("failed") == before + 1


def test_the_last_attempt_of_a_transient_failure_is_recorded_failed(completed_event, webhook_receiver):
    webhook_receiver.answer_next(Answer(502))
    with pytest.raises(delivery.WebhookRetryable):
        deliver(completed_event, attempt=4, retries_left=False)
    assert WebhookDelivery.objects.get(event=completed_event).outcome == "failed"
    assert WebhookEvent.objects.get(id=completed_event.id).status == "failed"


def test_only_a_short_excerpt_of_the_answer_is_read_and_kept(completed_event, webhook_receiver):
    webhook_receiver.answer_next(Answer(200, body="x" * 100_000))
    deliver(completed_event)
    assert WebhookDelivery.objects.get(event=completed_event).response_excerpt == "x" * 500


def test_a_private_address_is_refused_at_delivery_time_too(completed_event, webhook_receiver):
    # given: an endpoint stored while private URLs were allowed, or a name that now resolves to loopback
    with override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=False), pytest.raises(delivery.WebhookRefused, match="UnsafeUrl"):
        deliver(completed_event)
    assert webhook_receiver.calls == []
    assert "UnsafeUrl" in WebhookDelivery.objects.get(event=completed_event).error


def test_the_request_goes_to_the_checked_address_with_the_urls_host(completed_event, webhook_receiver, monkeypatch):
    # given: a name only the check resolves (to the receiver's loopback address)
    real = socket.getaddrinfo
    port = webhook_receiver.url.split(":")[2].split("/")[0]
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **kw: real("127.0.0.1", *a, **kw) if host == "hooks.example" else real(host, *a, **kw),
    )
    WebhookEndpoint.objects.filter(client_id=completed_event.client_id).update(
        url=f"http://hooks.example:{port}/hooks/orders"
    )
    # when
    deliver(completed_event)
    # then: connected to the checked address, Host names the URL's host
    (call,) = webhook_receiver.calls
    assert call.headers["host"] == f"hooks.example:{port}" and call.verified_by == [0]


def test_during_a_rotation_both_secrets_sign_the_delivery(completed_event, webhook_receiver, hooked_client):
    _, new = client_services.webhook_secret_rotate(client=hooked_client)
    webhook_receiver.secrets.append(new)
    deliver(completed_event)
    (call,) = webhook_receiver.calls
    assert call.verified_by == [0, 1]  # a receiver with the old or the new secret accepts it
    assert len(call.headers["webhook-signature"].split(" ")) == 2


def test_an_event_whose_client_removed_its_endpoint_is_refused(completed_event, hooked_client):
    client_services.webhook_endpoint_remove(name=hooked_client.name)
    with pytest.raises(delivery.WebhookRefused, match="no webhook endpoint"):
        deliver(completed_event)


@override_settings(WEBHOOK_RETRY_BACKOFF_BASE=2, WEBHOOK_RETRY_BACKOFF_MAX=60)
def test_retry_delays_full_jitter_and_retry_after_capped():
    for retries in range(8):
        delays = [retry_delay(retries=retries) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= min(2 * 2**retries, 60)
        assert all(isinstance(d, int) for d in delays)  # delayed delivery counts whole seconds
    assert max(retry_delay(retries=6) for _ in range(200)) > 30  # spread over the window, not fixed
    assert retry_delay(retries=0, retry_after=7) == 7
    assert retry_delay(retries=0, retry_after=0.2) == 1
    assert retry_delay(retries=0, retry_after=3600) == 60
    assert retry_delay(retries=0, retry_after=-5) == 0
    assert delivery._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert delivery._retry_after("soon") is None


def test_staff_see_the_events_and_attempts_clients_do_not(
    completed_event, webhook_receiver, admin_client_logged, hooked_client
):
    from clients.tests.factories import api_client_for

    webhook_receiver.answer_next(Answer(500))
    with pytest.raises(delivery.WebhookRetryable):
        deliver(completed_event)
    deliver(completed_event, attempt=2)
    # when
    staff_view = admin_client_logged.get(f"/orders/{completed_event.order_id}").json()
    # then
    (hook,) = staff_view["webhooks"]
    assert (hook["webhook_id"], hook["type"], hook["status"]) == (
        completed_event.webhook_id,
        "order.completed",
        "delivered",
    )
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in hook["attempts"]] == [
        (1, "retry", 500),
        (2, "delivered", 200),
    ]
    _, key = client_services.api_client_key_create(client=hooked_client)
    client_view = api_client_for(key).get(f"/orders/{completed_event.order_id}").json()
    assert client_view["status"] == "completed" and "webhooks" not in client_view
    assert json.dumps(client_view)  # plain JSON
