"""Every delivery attempt ends by its total deadline (WEBHOOK_TOTAL_TIMEOUT), against a real receiver that
drips its answer a byte at a time (each read well within the read timeout), and only a complete,
well-formed answer counts as delivered."""

import threading
import time

import pytest

from orders.webhooks import delivery
from orders.webhooks.models import WebhookDelivery, WebhookEvent
from tests.webhook_receiver import Answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def deadline(settings) -> float:
    settings.WEBHOOK_READ_TIMEOUT = 1.0  # each byte comes well within it
    settings.WEBHOOK_TOTAL_TIMEOUT = 1.5
    return settings.WEBHOOK_TOTAL_TIMEOUT


@pytest.mark.parametrize("drip_head", [False, True], ids=["body", "status-line-and-headers"])
def test_a_receiver_dripping_its_answer_is_cut_off_at_the_deadline_and_not_delivered(
    completed_event, webhook_receiver, deadline, drip_head
):
    # given: a 200 whose answer comes one byte every 0.2 s (40 bytes of body: 8 s, plus the head's ~80 bytes)
    webhook_receiver.answer_next(Answer(200, body="x" * 40, drip=0.2, drip_head=drip_head))
    started = time.monotonic()
    # when
    with pytest.raises(delivery.WebhookRetryable, match="Timeout"):
        delivery.webhook_deliver(event_id=completed_event.id, attempt=1, retries_left=True)
    took = time.monotonic() - started
    # then: the attempt ended at the deadline, was recorded as a retry, and the event is not delivered
    assert deadline - 0.1 < took < deadline + 1.0
    attempt = WebhookDelivery.objects.get(event=completed_event)
    assert attempt.outcome == "retry" and attempt.error == f"Timeout: no complete answer in {deadline:g}s"
    event = WebhookEvent.objects.get(id=completed_event.id)
    assert event.status == "pending" and event.delivered_at is None
    # and the delivery thread holds no socket: no watchdog timer is left behind either
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]


def test_an_answer_cut_short_of_its_content_length_is_not_delivered(completed_event, webhook_receiver, deadline):
    webhook_receiver.answer_next(Answer(200, body="ok", short_by=10))
    with pytest.raises(delivery.WebhookRetryable, match="incomplete answer"):
        delivery.webhook_deliver(event_id=completed_event.id, attempt=1, retries_left=True)
    assert WebhookDelivery.objects.get(event=completed_event).outcome == "retry"
    assert WebhookEvent.objects.get(id=completed_event.id).status == "pending"


def test_an_answer_over_the_size_bound_is_not_delivered(completed_event, webhook_receiver, settings):
    settings.WEBHOOK_RESPONSE_MAX_BYTES = 1000
    webhook_receiver.answer_next(Answer(200, body="x" * 5000))
    with pytest.raises(delivery.WebhookRetryable, match="over 1000 bytes"):
        delivery.webhook_deliver(event_id=completed_event.id, attempt=1, retries_left=True)
    assert WebhookEvent.objects.get(id=completed_event.id).status == "pending"


def test_a_complete_answer_within_the_deadline_is_delivered(completed_event, webhook_receiver, deadline):
    webhook_receiver.answer_next(Answer(200, body="ok", drip=0.05))
    delivery.webhook_deliver(event_id=completed_event.id, attempt=1, retries_left=True)
    assert WebhookEvent.objects.get(id=completed_event.id).status == "delivered"


@pytest.mark.parametrize("value", ["²", "1³", "soon"])
def test_a_retry_after_that_is_not_ascii_delta_seconds_or_a_date_is_ignored_and_the_attempt_recorded(
    completed_event, webhook_receiver, value
):
    # '²' passes str.isdigit() but not float(): the attempt failed with nothing recorded
    webhook_receiver.answer_next(Answer(503, headers={"Retry-After": value}))
    with pytest.raises(delivery.WebhookRetryable) as raised:
        delivery.webhook_deliver(event_id=completed_event.id, attempt=1, retries_left=True)
    assert raised.value.retry_after is None
    assert WebhookDelivery.objects.get(event=completed_event).status_code == 503
