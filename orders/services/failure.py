"""An order's failure, its retries' record, and its re-opening by a redrive: the only writers of a
failed order's state."""
from typing import Any

from django.db import transaction

from core.exceptions import ConflictError
from core.logging import get_logger
from orders import metrics
from orders.models import HistoryEvent, Order, OrderStatus
from orders.pipeline import PROCESS, Stage
from orders.services.history import order_history_append
from orders.services.locks import order_lock
from orders.services.stock import StockShort, quantities, stock_release, stock_reserve

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
    order_history_append(order=order, stage=stage, event=HistoryEvent.FAILED, detail={"reason": reason, "kind": kind, **(detail or {})})
    log.warning("order_failed", order_id=str(order.id), stage=stage, reason=reason, kind=kind)
    transaction.on_commit(lambda: metrics.ORDERS_FAILED.labels(source=order.source, kind=kind).inc())
    return order


def order_fail(*, order_id: Any, stage: str, reason: str, kind: str = "error", detail: dict | None = None) -> Order:
    """End an order failed (a no-op on an order already terminal)."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order.is_terminal:
            return order
        return order_mark_failed(order, stage=stage, reason=reason, kind=kind, detail=detail)


def order_retry_record(*, order_id: Any, stage: str, attempt: int, error: str, delay: float) -> None:
    with transaction.atomic():
        order = Order.objects.get(id=order_id)
        order_history_append(
            order=order, stage=stage, event=HistoryEvent.RETRY, detail={"attempt": attempt, "error": error, "next_delay_s": round(delay, 3)}
        )


def order_reopen(*, order: Order, stage: Stage) -> None:
    """Put a failed order back on track for `stage` (a redrive, inside its transaction holding the
    order's lock): re-reserve its stock when the stage runs after process (the failure released it), or
    back to pending when process itself is redriven. Refused (nothing changed) if it cannot be."""
    if order.status == OrderStatus.COMPLETED:
        raise OrderReopenRefused(f"order {order.id} is already completed; nothing to redrive")
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
