"""Recording a webhook event with the state change that causes it, in the same transaction: the event
row (the webhooks' outbox) and the outbox row that publishes its delivery (the relay publishes it with
confirms, woken at commit by NOTIFY). Both are INSERT ... SELECT over a join with the client's endpoint,
so a client without one costs no extra statement in finalize (the CTEs are part of its one write) and
one indexed statement that inserts nothing elsewhere."""

from typing import Any

from django.db import connection
from django.utils import timezone

from clients.models import WebhookEndpoint
from core.exceptions import ConflictError
from orders.models import Order, OrderStatus, OutboxMessage
from orders.pipeline import OutboxKind
from orders.services.outbox import OUTBOX_CHANNEL
from orders.webhooks.models import WebhookEvent, WebhookEventStatus, WebhookEventType

# Which statuses are an event, and which event.
EVENT_TYPES = {
    OrderStatus.COMPLETED: WebhookEventType.COMPLETED,
    OrderStatus.FAILED: WebhookEventType.FAILED,
    OrderStatus.CANCELLED: WebhookEventType.CANCELLED,
    OrderStatus.REFUNDED: WebhookEventType.REFUNDED,
}

_T = {
    "event": WebhookEvent._meta.db_table,
    "order": Order._meta.db_table,
    "endpoint": WebhookEndpoint._meta.db_table,
    "outbox": OutboxMessage._meta.db_table,
}
# CTEs `wh` (the event) and `wo` (its outbox row, whose RETURNING wakes the relay at commit) for a
# statement with parameters %(id)s (the order) and %(now)s, plus webhook_event_params(). Data-modifying
# CTEs always run to completion, referenced or not.
WEBHOOK_EVENT_CTES = """
wh AS (
    INSERT INTO {event} (id, order_id, client_id, type, status, body, attempts, last_error, created_at)
    SELECT gen_random_uuid(), o.id, o.client_id, %(webhook_type)s, 'pending', '', 0, '', %(now)s
    FROM {order} o JOIN {endpoint} e ON e.client_id = o.client_id WHERE o.id = %(id)s
    RETURNING id, order_id
), wo AS (
    INSERT INTO {outbox} (id, order_id, kind, payload, created_at, publish_attempts, last_error)
    SELECT gen_random_uuid(), order_id, %(webhook_kind)s, jsonb_build_object('event_id', id::text), %(now)s, 0, ''
    FROM wh RETURNING pg_notify(%(webhook_channel)s, '')
)""".format(**_T)  # noqa: S608  (tables from _meta; values are parameters)
_RECORD_SQL = f"WITH {WEBHOOK_EVENT_CTES}\nSELECT count(*) FROM wh"


def webhook_event_params(*, status: str) -> dict:
    return {
        "webhook_type": EVENT_TYPES[OrderStatus(status)],
        "webhook_kind": OutboxKind.WEBHOOK,
        "webhook_channel": OUTBOX_CHANNEL,
    }


def webhook_event_record(*, order_id: Any, status: str) -> bool:
    """Inside the transaction that moved the order to `status` (terminal): its event, if its client has an
    endpoint. Returns whether one was recorded."""
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_SQL, {"id": order_id, "now": timezone.now(), **webhook_event_params(status=status)})
        return bool(cursor.fetchone()[0])


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
