"""The order's history through the ORM: with the hot path's statements (orders/statements.py,
history_insert), the only writer of OrderHistory. Every entry is announced to the live page after commit
(orders/events.py)."""

from datetime import datetime
from typing import Any

from core.logging import get_logger
from orders import events
from orders.models import HistoryEvent, Order, OrderHistory, OrderStatus
from orders.pipeline import Step

log = get_logger(__name__)

# (order id, live event, is_new): one change for events.orders_changed_on_commit
Change = tuple[Any, dict, bool]


def order_history_append(*, order: Order, stage: str, event: str, detail: dict | None = None) -> OrderHistory:
    entry = OrderHistory.objects.create(order=order, stage=stage, event=event, detail=detail or {})
    order_announce(order, stage=stage, event=event, detail=detail or {}, at=entry.created_at)
    return entry


def order_duplicate_skip(*, order: Order, stage: str) -> Order:
    """Record that a redelivered or replayed stage found its work done, and change nothing."""
    order_history_append(
        order=order, stage=stage, event=HistoryEvent.DUPLICATE_SKIPPED, detail={"status": order.status}
    )
    log.info("stage_duplicate_skipped", order_id=str(order.id), stage=stage, status=order.status)
    return order


def live_event(order: Order, *, stage: str, event: str, detail: dict, at: datetime) -> dict:
    """What the live page gets for one history entry."""
    return {
        "order_id": str(order.id),
        "status": order.status,
        "stage": stage,
        "event": event,
        "detail": detail,
        "failure_reason": order.failure_reason,
        "source": order.source,
        "at": at.isoformat(),
    }


def order_announce(order: Order, *, stage: str, event: str, detail: dict, at: datetime) -> None:
    """Announce a history entry written by a statement of its own (the stages' SQL) after commit."""
    events.order_changed_on_commit(
        order_id=order.id, event=live_event(order, stage=stage, event=event, detail=detail, at=at)
    )


def accepted_change(order: Order) -> Change:
    """The live page's `accepted` event, sent by whoever publishes the order (after its commit): the
    request that accepted it does no Redis work."""
    pending = Order(id=order.id, status=OrderStatus.PENDING, source=order.source, failure_reason="")
    event = live_event(
        pending, stage=Step.API, event=HistoryEvent.ACCEPTED, detail={"source": order.source}, at=order.created_at
    )
    return (order.id, event, True)
