"""A dead webhook (refused, or retries exhausted) is archived like any stage's dead letter without touching
its order, and a redrive makes its event pending again and re-publishes it to the webhooks queue."""

import json

import pytest

from conftest import queue_messages
from orders import dead_letters, services
from orders.models import DeadLetterStatus, HistoryEvent, Order, OrderStatus
from orders.pipeline import DELIVER_WEBHOOK
from orders.tests.factories import dead_letter_message, order_create
from orders.webhooks import delivery
from orders.webhooks.models import WebhookEvent
from orders.webhooks.tasks import WebhookTask
from tests.webhook_receiver import Answer

pytestmark = pytest.mark.django_db


def webhook_dead_letter(event: WebhookEvent, *, task_id: str = "W-1") -> dict:
    message = dead_letter_message(
        order_id=event.order_id, task=DELIVER_WEBHOOK.task, queue=DELIVER_WEBHOOK.queue, task_id=task_id
    )
    message["body"] = json.dumps(
        [[str(event.order_id), str(event.id)], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    ).encode()
    return message


def test_a_dead_webhook_is_archived_and_redriven_to_its_queue(catalog, hooked_client, webhook_receiver, clean_queues):
    order = order_create(client_id=hooked_client.id)
    services.order_cancel(order_id=order.id, actor="client:x")
    event = WebhookEvent.objects.get(order=order)
    webhook_receiver.answer_next(Answer(410))
    with pytest.raises(delivery.WebhookRefused):
        delivery.webhook_deliver(event_id=event.id, attempt=1, retries_left=True)
    WebhookTask().on_failure(delivery.WebhookRefused("HTTP 410"), "W-1", [str(order.id), str(event.id)], {}, None)
    # when: archived
    letter, created = dead_letters.dead_letter_archive(**webhook_dead_letter(event))
    # then: the order is still cancelled; the dead letter names the webhook stage
    assert created and (letter.stage, letter.queue) == ("webhook", "webhooks")
    assert Order.objects.get(id=order.id).status == OrderStatus.CANCELLED
    assert WebhookEvent.objects.get(id=event.id).status == "failed"
    # when: redriven
    dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="staff:alice")
    # then: pending again, its task re-published with the same event, the order untouched
    letter.refresh_from_db()
    assert letter.status == DeadLetterStatus.REDRIVEN
    assert WebhookEvent.objects.get(id=event.id).status == "pending"
    assert Order.objects.get(id=order.id).status == OrderStatus.CANCELLED
    assert Order.objects.get(id=order.id).history.filter(event=HistoryEvent.REDRIVEN, stage="webhook").exists()
    (message,) = queue_messages(DELIVER_WEBHOOK.queue)
    assert message.headers["task"] == DELIVER_WEBHOOK.task and message.headers["retries"] == 0
    assert json.loads(message.body)[0] == [str(order.id), str(event.id)]


def test_redriving_a_webhook_whose_event_is_gone_is_refused(catalog, hooked_client, clean_queues):
    order = order_create(client_id=hooked_client.id)
    services.order_cancel(order_id=order.id, actor="client:x")
    event = WebhookEvent.objects.get(order=order)
    letter, _ = dead_letters.dead_letter_archive(**webhook_dead_letter(event))
    WebhookEvent.objects.filter(id=event.id).delete()
    result = dead_letters.dead_letter_redrive_many(dead_letter_ids=[letter.pk], actor="a")
    assert result.redriven == [] and "does not exist" in result.refused[letter.pk]
    assert queue_messages(DELIVER_WEBHOOK.queue) == []
