"""The pipeline's stages (orders/pipeline.py): process, enrich, finalize.

Each stage locks the order, checks its state, returns early when its work is done (a duplicate), and
otherwise does a small amount of work in one short transaction of few round trips (BEGIN, one read under
the order's row lock, one write statement, COMMIT; the enrich stage's store is a single statement; the
statements are in orders/statements.py):
redelivery never doubles an effect. Product rows are locked only by the write statement, last before
the commit (orders/services/stock.py). Each returns the order; the base task (orders/stage_task.py)
decides what follows.
"""

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from core.db import jsonb_value, statement_transaction
from core.exceptions import TransientError
from enrichment import provider
from orders import metrics, statements
from orders.models import HistoryEvent, Order, OrderItem, OrderStatus
from orders.pipeline import ENRICH, FINALIZE, PROCESS
from orders.services.failure import order_fail, order_mark_failed
from orders.services.history import order_announce, order_duplicate_skip
from orders.services.locks import order_lock
from orders.services.stock import StockShort, quantities, sku_totals, stock_params, stock_short_reason
from orders.webhooks.events import webhook_event_params

CENT = Decimal("0.01")


class EnrichmentMissing(TransientError):
    """finalize ran before enrichment was stored (out-of-order delivery): retried."""


def _order_row(order_id: Any, status: str, source: str, failure_reason: str) -> Order:
    """The order as a stage's read returned it (enough to guard, fail or announce it)."""
    order = Order(id=uuid.UUID(str(order_id)), status=status, source=source, failure_reason=failure_reason)
    order._state.adding = False  # a stored row: save(update_fields=...) updates it
    return order


def _order_rows(cursor: Any, sql: str, order_id: Any) -> list:
    """A stage's one read of an order (a named row per item); no row: no such order."""
    cursor.execute(sql, statements.params(id=order_id))
    rows = statements.fetch_all(cursor)
    if not rows:
        raise Order.DoesNotExist(f"order {order_id} does not exist")
    return rows


def _stage_read(cursor: Any, sql: str, order_id: Any) -> tuple[Order, list]:
    """The order (its status, source and failure reason, from the first row) and every row."""
    rows = _order_rows(cursor, sql, order_id)
    first = rows[0]
    return _order_row(order_id, first.status, first.source, first.failure_reason), rows


def order_process(*, order_id: Any) -> Order:
    """Mark processing and reserve stock; unknown sku or short stock ends the order failed."""
    try:
        # transaction ensures reservation and the status change happen together or not at all.
        with transaction.atomic(), connection.cursor() as cursor:
            order, rows = _stage_read(cursor, statements.PROCESS_READ, order_id)
            if order.status != OrderStatus.PENDING:
                return order_duplicate_skip(order=order, stage=PROCESS.name)
            items = [row for row in rows if row.item_id is not None]
            unknown = sorted({item.sku for item in items if item.price is None})
            if unknown:
                reason = "; ".join(f"unknown sku {sku}" for sku in unknown)
                return order_mark_failed(order, stage=PROCESS.name, reason=reason, kind="business")
            wanted = sku_totals((item.sku, item.qty) for item in items)
            now = timezone.now()
            detail = {"reserved": dict(wanted)}
            order.total_amount = sum((item.price * item.qty for item in items), Decimal("0")).quantize(CENT)
            cursor.execute(
                statements.PROCESS_WRITE,
                statements.params(
                    id=order.id,
                    total=order.total_amount,
                    now=now,
                    detail=json.dumps(detail),
                    stage=PROCESS.name,
                    item_ids=[item.item_id for item in items],
                    prices=[item.price for item in items],
                    n=len(wanted),
                    **stock_params(wanted),
                ),
            )
            if not statements.fetch_one(cursor).enough:
                raise StockShort()  # rolls all of the above back; the reason is worked out below
            order.status = OrderStatus.PROCESSING
            order_announce(order, stage=PROCESS.name, event=HistoryEvent.COMPLETED, detail=detail, at=now)
            return order
    except StockShort:
        wanted = quantities(OrderItem.objects.filter(order_id=order_id))
        return order_fail(order_id=order_id, stage=PROCESS.name, reason=stock_short_reason(wanted), kind="business")


@dataclass(frozen=True)
class EnrichmentDue:
    """What the enrich stage needs to call the provider; `due` is False when there is nothing to do."""

    due: bool
    customer_id: str
    items: list  # (sku, qty, unit_price)


def order_enrichment_read(*, order_id: Any) -> EnrichmentDue:
    """One read, no lock: the order's state, whether it is enriched already, and its items."""
    with connection.cursor() as cursor:
        rows = _order_rows(cursor, statements.ENRICH_READ, order_id)
    first = rows[0]
    items = [(row.sku, row.qty, row.unit_price) for row in rows if row.sku is not None]
    return EnrichmentDue(
        due=first.status == OrderStatus.PROCESSING and not first.enriched, customer_id=first.customer_id, items=items
    )


def order_enrichment_store(*, order_id: Any, data: dict) -> Order:
    """Store the provider's answer once (the provider was called outside any lock). One statement:
    it takes the order's lock (waiting for a redrive's or a failure's commit), stores the enrichment
    and its history entry only while the order is processing and not enriched yet."""
    now = timezone.now()
    detail = {"customer_score": data.get("customer_score")}
    with statement_transaction(), connection.cursor() as cursor:
        cursor.execute(
            statements.ENRICH_STORE,
            statements.params(
                id=order_id, data=json.dumps(data), detail=json.dumps(detail), now=now, stage=ENRICH.name
            ),
        )
        row = statements.fetch_one(cursor)
        if row is None:
            raise Order.DoesNotExist(f"order {order_id} does not exist")
        order = _order_row(order_id, row.status, row.source, row.failure_reason)
        if not row.stored:
            return order_duplicate_skip(order=order, stage=ENRICH.name)
        order_announce(order, stage=ENRICH.name, event=HistoryEvent.COMPLETED, detail=detail, at=now)
        return order


def order_enrich(*, order_id: Any, attempt: int = 0) -> Order:
    """Ask the provider about the order and store its answer. The provider is called outside any
    transaction (no lock held over I/O); storing re-checks the state under the lock."""
    read = order_enrichment_read(order_id=order_id)
    if not read.due:
        # Check again under the order's lock before skipping: a redrive publishes this message inside
        # its transaction, which may not have committed yet; the lock waits for it.
        with transaction.atomic():
            order = order_lock(order_id)
            read = order_enrichment_read(order_id=order_id)
            if not read.due:
                return order_duplicate_skip(order=order, stage=ENRICH.name)
    items = [provider.ProviderItem(sku=sku, qty=qty, unit_price=str(price)) for sku, qty, price in read.items]
    if not connection.in_atomic_block:
        # A pooled connection goes back to the pool for the call (a persistent one stays open).
        close_old_connections()
    data = provider.enrich(customer_id=read.customer_id, items=items, attempt=attempt)
    return order_enrichment_store(order_id=order_id, data=data)


def order_finalize(*, order_id: Any) -> Order:
    """Write the invoice, move the reserved stock, mark completed: once, whatever the redeliveries."""
    # transaction ensures invoice, stock movement and status commit together.
    with transaction.atomic(), connection.cursor() as cursor:
        order, rows = _stage_read(cursor, statements.FINALIZE_READ, order_id)
        if order.status != OrderStatus.PROCESSING:
            return order_duplicate_skip(order=order, stage=FINALIZE.name)
        data = jsonb_value(rows[0].enrichment)
        if data is None:
            raise EnrichmentMissing(f"order {order.id} has no enrichment yet")
        items = [(row.sku, row.qty, row.unit_price) for row in rows if row.sku is not None]
        created_at = rows[0].created_at
        subtotal = sum((price * qty for _, qty, price in items), Decimal("0")).quantize(CENT)
        discount_pct = Decimal(str(data.get("discount_pct", 0)))
        discount = (subtotal * discount_pct / 100).quantize(CENT)
        total = subtotal - discount
        now = timezone.now()
        number = f"INV-{now:%Y%m%d}-{order.id.hex[:12].upper()}"
        detail = {"invoice": number, "total": str(total)}
        cursor.execute(
            statements.FINALIZE_WRITE,
            statements.params(
                id=order.id,
                number=number,
                subtotal=subtotal,
                discount=discount,
                total=total,
                lines=json.dumps([{"sku": sku, "qty": qty, "unit_price": str(price)} for sku, qty, price in items]),
                now=now,
                detail=json.dumps(detail),
                stage=FINALIZE.name,
                **stock_params(sku_totals((sku, qty) for sku, qty, _ in items)),
                # the client's webhook event, if it has an endpoint (a join: no statement of its own)
                **webhook_event_params(status=OrderStatus.COMPLETED),
            ),
        )
        order.status = OrderStatus.COMPLETED
        order.total_amount = total
        order_announce(order, stage=FINALIZE.name, event=HistoryEvent.COMPLETED, detail=detail, at=now)
    metrics.ORDERS_COMPLETED.labels(source=order.source).inc()
    metrics.ORDER_COMPLETION_SECONDS.observe((now - created_at).total_seconds())
    return order
