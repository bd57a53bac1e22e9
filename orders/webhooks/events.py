"""Recording a webhook event with the state change that causes it, in the same transaction: the event
row (the webhooks' outbox) and the outbox row that publishes its delivery (the relay publishes it with
confirms, woken at commit by NOTIFY). Both are INSERT ... SELECT over a join with the client's endpoint,
so a client without one costs no extra statement in finalize (the CTEs are part of its one write) and
one indexed statement that inserts nothing elsewhere. The SQL is statements.WEBHOOK_EVENT."""

from typing import Any

from django.db import connection
from django.utils import timezone

from core.exceptions import ConflictError
from orders import statements
from orders.models import OrderStatus
from orders.webhooks.models import WebhookEvent, WebhookEventStatus, WebhookEventType

# Which statuses are an event, and which event.
EVENT_TYPES = {
    OrderStatus.COMPLETED: WebhookEventType.COMPLETED,
    OrderStatus.FAILED: WebhookEventType.FAILED,
    OrderStatus.CANCELLED: WebhookEventType.CANCELLED,
    OrderStatus.REFUNDED: WebhookEventType.REFUNDED,
}


def webhook_event_params(*, status: str) -> dict:
    """The event's type for statements.WEBHOOK_EVENT, the CTEs a state change's statement includes."""
    return {"webhook_type": EVENT_TYPES[OrderStatus(status)]}


def webhook_event_record(*, order_id: Any, status: str) -> bool:
    """Inside the transaction that moved the order to `status` (terminal): its event, if its client has an
    endpoint. Returns whether one was recorded."""
    with connection.cursor() as cursor:
        cursor.execute(
            statements.WEBHOOK_EVENT_RECORD,
            statements.params(id=order_id, now=timezone.now(), **webhook_event_params(status=status)),
        )
        return bool(statements.fetch_one(cursor).recorded)


class WebhookEventMissing(ConflictError):
    code = "webhook_event_missing"


def webhook_event_reopen(*, event_id: Any) -> WebhookEvent:
    """A redrive (inside its transaction): the dead event is pending again; its message is re-published
    with the same event, so the endpoint gets the same webhook-id and body."""
    event = WebhookEvent.objects.select_for_update().filter(id=event_id).first()
    if event is None:
        raise WebhookEventMissing(f"webhook event {event_id} does not exist")
    if event.status != WebhookEventStatus.PENDING:
        event.status = WebhookEventStatus.PENDING
        event.save(update_fields=["status"])
    return event
