"""An order's failure, its retries' record, and its re-opening by a redrive: the only writers of a
failed order's state."""

from typing import Any

from django.db import transaction

from core.exceptions import ConflictError
from core.logging import get_logger
from orders import metrics
from orders.models import HistoryEvent, Order, OrderStatus
from orders.pipeline import PROCESS, REFUND, Stage
from orders.services.history import order_history_append
from orders.services.locks import order_lock
from orders.services.stock import StockShort, quantities, stock_release, stock_reserve
from orders.webhooks.events import webhook_event_record

log = get_logger(__name__)


class OrderReopenRefused(ConflictError):
    code = "redrive_refused"


def order_mark_failed(order: Order, *, stage: str, reason: str, kind: str, detail: dict | None = None) -> Order:
    """Inside a transaction holding the order lock: release any reservation, end failed."""
    if order.status == OrderStatus.PROCESSING:
        stock_release(quantities(order.items.all()))
    order.status = OrderStatus.FAILED
    order.failure_reason = reason
    order.failure_kind = kind
    order.save(update_fields=["status", "failure_reason", "failure_kind", "updated_at"])
    order_history_append(
        order=order, stage=stage, event=HistoryEvent.FAILED, detail={"reason": reason, "kind": kind, **(detail or {})}
    )
    webhook_event_record(order_id=order.id, status=OrderStatus.FAILED)
    log.warning("order_failed", order_id=str(order.id), stage=stage, reason=reason, kind=kind)
    transaction.on_commit(lambda: metrics.ORDERS_FAILED.labels(source=order.source, kind=kind).inc())
    return order


def order_fail(*, order_id: Any, stage: str, reason: str, kind: str = "error", detail: dict | None = None) -> Order:
    """End an order failed (a no-op on an order already terminal). A failed refund leaves the order
    `refund_pending`, the refund still owed: its message is dead-lettered and a redrive runs it again."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order.status == OrderStatus.REFUND_PENDING:
            if stage == REFUND.name:
                _refund_failure_record(order, reason=reason, kind=kind, detail=detail)
            return order
        if order.is_terminal:
            return order
        return order_mark_failed(order, stage=stage, reason=reason, kind=kind, detail=detail)


def _refund_failure_record(order: Order, *, reason: str, kind: str, detail: dict | None) -> None:
    order.failure_reason = reason
    order.failure_kind = kind
    order.save(update_fields=["failure_reason", "failure_kind", "updated_at"])
    order_history_append(
        order=order,
        stage=REFUND.name,
        event=HistoryEvent.FAILED,
        detail={"reason": reason, "kind": kind, **(detail or {})},
    )
    log.warning("refund_failed", order_id=str(order.id), reason=reason, kind=kind)
    transaction.on_commit(lambda: metrics.REFUNDS_FAILED.labels(kind=kind).inc())


def order_retry_record(*, order_id: Any, stage: str, attempt: int, error: str, delay: float) -> None:
    with transaction.atomic():
        order = Order.objects.get(id=order_id)
        order_history_append(
            order=order,
            stage=stage,
            event=HistoryEvent.RETRY,
            detail={"attempt": attempt, "error": error, "next_delay_s": round(delay, 3)},
        )


def order_reopen(*, order: Order, stage: Stage) -> None:
    """Put an order back on track for `stage` (a redrive, inside its transaction holding the order's
    lock). A forward stage: re-reserve the stock of a failed order when the stage runs after process (the
    failure released it), or back to pending when process itself is redriven. The refund stage: the order
    must still be owed its refund. Refused (nothing changed) when the stage has nothing left to do."""
    if stage == REFUND:
        if order.status != OrderStatus.REFUND_PENDING:
            raise OrderReopenRefused(f"order {order.id} is {order.status}, not refund_pending; nothing to refund")
        order.failure_reason, order.failure_kind = "", ""
        order.save(update_fields=["failure_reason", "failure_kind", "updated_at"])
        return
    if order.status in (OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.REFUND_PENDING, OrderStatus.REFUNDED):
        raise OrderReopenRefused(f"order {order.id} is already {order.status}; nothing to redrive")
    if order.status == OrderStatus.PENDING or (order.status == OrderStatus.PROCESSING and stage != PROCESS):
        return  # still on its way; the redriven stage's own guard decides
    if stage == PROCESS:
        order.status = OrderStatus.PENDING
    else:
        try:
            stock_reserve(quantities(order.items.all()))
        except StockShort as exc:
            raise OrderReopenRefused(f"not enough stock to redrive order {order.id}: {exc}") from exc
        order.status = OrderStatus.PROCESSING
    order.failure_reason = ""
    order.save(update_fields=["status", "failure_reason", "updated_at"])
