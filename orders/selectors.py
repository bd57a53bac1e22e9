"""Reads. `order_detail` is what GET /orders/{id} returns, cached in Redis under a versioned key
that every committed change bumps (orders/events.py), so a reader never sees a stale order.

Every order read names its `Reader`: an API client (its own orders), staff (every order, every detail)
or the anonymous live page of the demo (every order, no customer data)."""

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Prefetch, QuerySet

from core.logging import get_logger
from orders import events
from orders.disclosure import public_actor, public_failure_reason, public_history_entry
from orders.models import HistoryEvent, Order, OrderHistory, Product

log = get_logger(__name__)


@dataclass(frozen=True)
class Reader:
    client_id: int | None  # None: every client's orders
    staff: bool = False  # staff-only detail: operators' names, exception text, internal ids
    demo: bool = False  # the anonymous live page (LIVE_FEED_ANONYMOUS): no customer id, enrichment, invoice


STAFF = Reader(client_id=None, staff=True)
DEMO = Reader(client_id=None, demo=True)


def client_reader(client_id: int) -> Reader:
    return Reader(client_id=client_id)


def order_list(
    *, reader: Reader, status: str | None = None, source: str | None = None, updated_since: datetime | None = None
) -> QuerySet[Order]:
    qs = Order.objects.all().order_by("-created_at")
    if reader.client_id is not None:
        qs = qs.filter(client_id=reader.client_id)
    if status:
        qs = qs.filter(status=status)
    if source:
        qs = qs.filter(source=source)
    if updated_since:
        qs = qs.filter(updated_at__gt=updated_since).order_by("updated_at")
    return qs


def product_list() -> QuerySet[Product]:
    return Product.objects.order_by("sku")


def order_get(*, order_id: Any) -> Order | None:
    return (
        Order.objects.select_related("enrichment", "invoice", "credit_note")
        .prefetch_related("items", Prefetch("history", queryset=OrderHistory.objects.order_by("created_at", "id")))
        .filter(id=order_id)
        .first()
    )


def _serialize_order(order: Order) -> dict:
    # A missing reverse one-to-one raises RelatedObjectDoesNotExist, an AttributeError.
    enrichment = getattr(order, "enrichment", None)
    invoice = getattr(order, "invoice", None)
    credit_note = getattr(order, "credit_note", None)
    return {
        # Internal (who may read it, what the client may see of a failure); order_detail strips them.
        "_client_id": order.client_id,
        "_failure_kind": order.failure_kind,
        "order_id": str(order.id),
        "status": order.status,
        "customer_id": order.customer_id,
        "source": order.source,
        "total_amount": str(order.total_amount) if order.total_amount is not None else None,
        "failure_reason": order.failure_reason or None,
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
        "items": [
            {"sku": i.sku, "qty": i.qty, "unit_price": str(i.unit_price) if i.unit_price is not None else None}
            for i in order.items.all()
        ],
        "enrichment": enrichment.data if enrichment else None,
        "invoice": (
            {
                "number": invoice.number,
                "subtotal": str(invoice.subtotal),
                "discount": str(invoice.discount),
                "total": str(invoice.total),
                "lines": invoice.lines,
                "created_at": invoice.created_at.isoformat(),
            }
            if invoice
            else None
        ),
        "cancellation": (
            {"by": order.cancelled_by, "at": order.cancelled_at.isoformat(), "reason": order.cancel_reason}
            if order.cancelled_at
            else None
        ),
        "credit_note": (
            {
                "number": credit_note.number,
                "total": str(credit_note.total),
                "lines": credit_note.lines,
                "created_at": credit_note.created_at.isoformat(),
            }
            if credit_note
            else None
        ),
        "history": [
            {"stage": h.stage, "event": h.event, "detail": h.detail, "at": h.created_at.isoformat()}
            for h in order.history.all()
        ],
    }


def _view_for(data: dict, reader: Reader) -> dict:
    view = {k: v for k, v in data.items() if not k.startswith("_")}
    if not reader.staff:
        view["failure_reason"] = (
            public_failure_reason(failure_reason=data["failure_reason"] or "", failure_kind=data["_failure_kind"])
            or None
        )
        view["history"] = [public_history_entry(h, demo=reader.demo) for h in data["history"]]
        if view.get("cancellation"):
            view["cancellation"] = {**view["cancellation"], "by": public_actor(view["cancellation"]["by"])}
    if reader.demo:
        view.update(customer_id="", enrichment=None, invoice=None, credit_note=None)
        if view.get("cancellation"):
            view["cancellation"] = {**view["cancellation"], "reason": ""}
    return view


def order_detail(*, order_id: Any, reader: Reader) -> dict | None:
    """The order as this reader may see it; None if absent or another client's."""
    data = _order_detail_cached(order_id=order_id)
    if data is None or (reader.client_id is not None and data["_client_id"] != reader.client_id):
        return None
    return _view_for(data, reader)


def _order_detail_cached(*, order_id: Any) -> dict | None:
    try:
        version = cache.get(events.order_cache_version_key(order_id), 0)
        cached = cache.get(events.order_cache_key(order_id, version))
    except Exception as exc:  # Redis down: serve from PostgreSQL
        log.warning("order_cache_read_failed", order_id=str(order_id), error=str(exc))
        version, cached = None, None
    if cached is not None and "_client_id" in cached:  # an entry cached before ownership is a miss
        return cached
    order = order_get(order_id=order_id)
    if order is None:
        return None
    data = _serialize_order(order)
    if version is not None:
        with contextlib.suppress(Exception):  # Redis down: the next read goes to PostgreSQL again
            cache.set(events.order_cache_key(order_id, version), data)
    return data


def order_task_failure(*, order: Order, task_id: str) -> dict | None:
    """What a failing task recorded in the order's history (its `failed` entry: exception, message, attempts),
    for the archiver: a dead letter carries the task id, not the exception."""
    failure = (
        OrderHistory.objects.filter(order=order, event=HistoryEvent.FAILED, detail__task_id=task_id)
        .order_by("-created_at")
        .first()
    )
    return failure.detail if failure is not None else None
