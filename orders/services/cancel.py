"""Cancelling an order (POST /orders/{id}/cancel, the admin's action): the saga's entry point.

Under the order's lock, one of two things happens, so a cancel racing a stage resolves one way only:
- the order has not completed (pending, processing): it ends `cancelled` and its reservation is released
  here, once; every forward stage message still in flight then finds it cancelled and skips;
- it has completed: it becomes `refund_pending` and an outbox row asks for the refund stage
  (orders/services/refund.py), published like any other (NOTIFY → relay, or inline after commit).
A second cancel answers the same and changes nothing; a failed order has nothing to cancel (409).
"""

import functools
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.exceptions import ConflictError
from core.logging import get_logger
from orders import metrics, statements
from orders.models import FORWARD_STATUSES, HistoryEvent, Order, OrderStatus, OutboxMessage
from orders.pipeline import OutboxKind, Step
from orders.services.history import order_history_append
from orders.services.outbox import outbox_publish
from orders.services.stock import quantities, stock_release
from orders.webhooks.events import webhook_event_record

log = get_logger(__name__)

ALREADY_CANCELLED = (OrderStatus.CANCELLED, OrderStatus.REFUND_PENDING, OrderStatus.REFUNDED)


class OrderNotCancellable(ConflictError):
    code = "order_not_cancellable"


@dataclass(frozen=True)
class OrderCancelResult:
    order: Order
    changed: bool  # False: it was cancelled before; nothing was done now


def order_cancel(*, order_id: Any, actor: str, reason: str = "", client_id: int | None = None) -> OrderCancelResult:
    """Cancel the order (the client's own when `client_id` is given: another's is Order.DoesNotExist)."""
    # transaction ensures the status, the released reservation or the refund's outbox row, and the history
    # commit together.
    with transaction.atomic():
        orders = Order.objects.select_for_update()
        if client_id is not None:
            orders = orders.filter(client_id=client_id)
        order = orders.get(id=order_id)
        if order.status in ALREADY_CANCELLED:
            return OrderCancelResult(order=order, changed=False)
        if order.status == OrderStatus.FAILED:
            raise OrderNotCancellable(
                f"Order {order.id} failed; there is nothing to cancel.", extra={"order_id": str(order.id)}
            )
        previous = order.status
        order.cancelled_by, order.cancelled_at, order.cancel_reason = actor, timezone.now(), reason
        detail = {"by": actor, "reason": reason, "from": previous}
        if previous in FORWARD_STATUSES:
            if previous == OrderStatus.PROCESSING:
                stock_release(quantities(order.items.all()))
            order.status = OrderStatus.CANCELLED
            event, outcome = HistoryEvent.CANCELLED, "cancelled"
        else:
            order.status = OrderStatus.REFUND_PENDING
            event, outcome = HistoryEvent.REFUND_REQUESTED, "refund_requested"
            _refund_request(order)
        order.save(update_fields=["status", "cancelled_by", "cancelled_at", "cancel_reason", "updated_at"])
        order_history_append(order=order, stage=Step.CANCEL, event=event, detail=detail)
        if order.status == OrderStatus.CANCELLED:  # refund_pending is not terminal: `refunded` will be the event
            webhook_event_record(order_id=order.id, status=OrderStatus.CANCELLED)
        transaction.on_commit(lambda: metrics.ORDERS_CANCELLED.labels(outcome=outcome).inc())
    log.info("order_cancelled", order_id=str(order.id), by=actor, status=order.status, previous=previous)
    return OrderCancelResult(order=order, changed=True)


def _refund_request(order: Order) -> None:
    """The refund stage's message, through the outbox (in the caller's transaction)."""
    message = OutboxMessage.objects.create(order=order, kind=OutboxKind.REFUND_REQUESTED)
    if settings.OUTBOX_PUBLISH_INLINE:
        transaction.on_commit(functools.partial(outbox_publish, message_id=message.id, fast_path=True, order=order))
    else:
        with connection.cursor() as cursor:
            cursor.execute(statements.NOTIFY, statements.params())  # delivered at commit: wakes the relay
