"""The pipeline's stages (orders/pipeline.py): process, enrich, finalize.

Each stage locks the order, checks its state, returns early when its work is done (a duplicate), and
otherwise does a small amount of work in one short transaction of few round trips (BEGIN, one read under
the order's row lock, one write statement, COMMIT; the enrich stage's store is a single statement):
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
from orders import metrics
from orders.models import HistoryEvent, Invoice, Order, OrderEnrichment, OrderHistory, OrderItem, OrderStatus, Product
from orders.pipeline import ENRICH, FINALIZE, PROCESS
from orders.services.failure import order_fail, order_mark_failed
from orders.services.history import order_announce, order_duplicate_skip
from orders.services.locks import order_lock
from orders.services.stock import STOCK_LOCKED_SQL, StockShort, quantities, sku_totals, stock_params, stock_short_reason
from orders.webhooks.events import WEBHOOK_EVENT_CTES, webhook_event_params

CENT = Decimal("0.01")


class EnrichmentMissing(TransientError):
    """finalize ran before enrichment was stored (out-of-order delivery): retried."""


# The stages' SQL: each stage is one short transaction of few round trips (BEGIN, one read under the
# order's row lock, one write statement, COMMIT); the enrich stage's store is a single statement.
# Product rows are locked in sku order by every writer (no deadlock between orders) and only by the
# write statement, which is the last before the commit: the hot rows stay locked for one round trip.
_T = {
    "order": Order._meta.db_table,
    "item": OrderItem._meta.db_table,
    "product": Product._meta.db_table,
    "history": OrderHistory._meta.db_table,
    "enrichment": OrderEnrichment._meta.db_table,
    "invoice": Invoice._meta.db_table,
}
_PROCESS_READ_SQL = """
SELECT o.status, o.source, o.failure_reason, i.id, i.sku, i.qty, p.price
FROM {order} o LEFT JOIN {item} i ON i.order_id = o.id LEFT JOIN {product} p ON p.sku = i.sku
WHERE o.id = %s ORDER BY i.id FOR UPDATE OF o""".format(**_T)
_PROCESS_WRITE_SQL = """
WITH u AS (
    UPDATE {order} SET status = 'processing', total_amount = %(total)s, updated_at = %(now)s WHERE id = %(id)s
), it AS (
    UPDATE {item} AS i SET unit_price = v.price
    FROM unnest(%(item_ids)s::bigint[], %(prices)s::numeric[]) AS v(id, price) WHERE i.id = v.id
), h AS (
    INSERT INTO {history} (order_id, stage, event, detail, created_at)
    VALUES (%(id)s, %(stage)s, 'completed', %(detail)s::jsonb, %(now)s)
), {stock},
    ok AS (SELECT count(*) FILTER (WHERE enough) = %(n)s AS ok FROM locked),
    r AS (
        UPDATE {product} p SET reserved = p.reserved + locked.qty
        FROM locked, ok WHERE ok.ok AND p.id = locked.id RETURNING p.id
    )
SELECT (SELECT ok FROM ok), (SELECT count(*) FROM r)""".format(stock=STOCK_LOCKED_SQL, **_T)  # noqa: S608  (tables from _meta)
_ENRICH_READ_SQL = """
SELECT o.status, o.customer_id, EXISTS (SELECT 1 FROM {enrichment} e WHERE e.order_id = o.id),
    i.sku, i.qty, i.unit_price
FROM {order} o LEFT JOIN {item} i ON i.order_id = o.id WHERE o.id = %s ORDER BY i.id""".format(**_T)  # noqa: S608  (tables from _meta)
_ENRICH_STORE_SQL = """
WITH o AS (
    SELECT id, status, source, failure_reason FROM {order} WHERE id = %(id)s FOR UPDATE
), e AS (
    INSERT INTO {enrichment} (order_id, data, created_at)
    SELECT id, %(data)s::jsonb, %(now)s FROM o WHERE status = 'processing'
    ON CONFLICT (order_id) DO NOTHING RETURNING order_id
), h AS (
    INSERT INTO {history} (order_id, stage, event, detail, created_at)
    SELECT order_id, %(stage)s, 'completed', %(detail)s::jsonb, %(now)s FROM e
)
SELECT o.status, o.source, o.failure_reason, (SELECT count(*) FROM e) FROM o""".format(**_T)  # noqa: S608  (tables from _meta)
_FINALIZE_READ_SQL = """
SELECT o.status, o.source, o.failure_reason, e.data, i.sku, i.qty, i.unit_price, o.created_at
FROM {order} o LEFT JOIN {enrichment} e ON e.order_id = o.id LEFT JOIN {item} i ON i.order_id = o.id
WHERE o.id = %s ORDER BY i.id FOR UPDATE OF o""".format(**_T)
_FINALIZE_WRITE_SQL = """
WITH inv AS (
    INSERT INTO {invoice} (order_id, number, subtotal, discount, total, lines, created_at)
    VALUES (%(id)s, %(number)s, %(subtotal)s, %(discount)s, %(total)s, %(lines)s::jsonb, %(now)s)
), u AS (
    UPDATE {order} SET status = 'completed', total_amount = %(total)s, updated_at = %(now)s WHERE id = %(id)s
), h AS (
    INSERT INTO {history} (order_id, stage, event, detail, created_at)
    VALUES (%(id)s, %(stage)s, 'completed', %(detail)s::jsonb, %(now)s)
), {webhook}, {stock}
UPDATE {product} p SET stock = p.stock - locked.qty, reserved = p.reserved - locked.qty
FROM locked WHERE p.id = locked.id""".format(stock=STOCK_LOCKED_SQL, webhook=WEBHOOK_EVENT_CTES.strip(), **_T)  # noqa: S608


def _order_row(order_id: Any, status: str, source: str, failure_reason: str) -> Order:
    """The order as a stage's read returned it (enough to guard, fail or announce it)."""
    order = Order(id=uuid.UUID(str(order_id)), status=status, source=source, failure_reason=failure_reason)
    order._state.adding = False  # a stored row: save(update_fields=...) updates it
    return order


def _order_rows(cursor: Any, sql: str, order_id: Any) -> list[tuple]:
    """A stage's one read of an order (a row per item); no row: no such order."""
    cursor.execute(sql, [order_id])
    rows = cursor.fetchall()
    if not rows:
        raise Order.DoesNotExist(f"order {order_id} does not exist")
    return rows


def _stage_read(cursor: Any, sql: str, order_id: Any) -> tuple[Order, list[tuple]]:
    """The order (its first row's first columns: status, source, failure reason) and every row."""
    rows = _order_rows(cursor, sql, order_id)
    return _order_row(order_id, *rows[0][:3]), rows


def order_process(*, order_id: Any) -> Order:
    """Mark processing and reserve stock; unknown sku or short stock ends the order failed."""
    try:
        # transaction ensures reservation and the status change happen together or not at all.
        with transaction.atomic(), connection.cursor() as cursor:
            order, rows = _stage_read(cursor, _PROCESS_READ_SQL, order_id)
            if order.status != OrderStatus.PENDING:
                return order_duplicate_skip(order=order, stage=PROCESS.name)
            items = [(item_id, sku, qty, price) for _, _, _, item_id, sku, qty, price in rows if item_id is not None]
            unknown = sorted({sku for _, sku, _, price in items if price is None})
            if unknown:
                reason = "; ".join(f"unknown sku {sku}" for sku in unknown)
                return order_mark_failed(order, stage=PROCESS.name, reason=reason, kind="business")
            wanted = sku_totals((sku, qty) for _, sku, qty, _ in items)
            now = timezone.now()
            detail = {"reserved": dict(wanted)}
            order.total_amount = sum((price * qty for _, _, qty, price in items), Decimal("0")).quantize(CENT)
            cursor.execute(
                _PROCESS_WRITE_SQL,
                {
                    "id": order.id,
                    "total": order.total_amount,
                    "now": now,
                    "detail": json.dumps(detail),
                    "stage": PROCESS.name,
                    "item_ids": [i[0] for i in items],
                    "prices": [i[3] for i in items],
                    **stock_params(wanted),
                    "n": len(wanted),
                },
            )
            enough, _ = cursor.fetchone()
            if not enough:
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
        rows = _order_rows(cursor, _ENRICH_READ_SQL, order_id)
    status, customer_id, enriched = rows[0][:3]
    items = [(sku, qty, price) for *_, sku, qty, price in rows if sku is not None]
    return EnrichmentDue(due=status == OrderStatus.PROCESSING and not enriched, customer_id=customer_id, items=items)


def order_enrichment_store(*, order_id: Any, data: dict) -> Order:
    """Store the provider's answer once (the provider was called outside any lock). One statement:
    it takes the order's lock (waiting for a redrive's or a failure's commit), stores the enrichment
    and its history entry only while the order is processing and not enriched yet."""
    now = timezone.now()
    detail = {"customer_score": data.get("customer_score")}
    with statement_transaction(), connection.cursor() as cursor:
        cursor.execute(
            _ENRICH_STORE_SQL,
            {"id": order_id, "data": json.dumps(data), "detail": json.dumps(detail), "now": now, "stage": ENRICH.name},
        )
        row = cursor.fetchone()
        if row is None:
            raise Order.DoesNotExist(f"order {order_id} does not exist")
        order = _order_row(order_id, *row[:3])
        if not row[3]:
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
        order, rows = _stage_read(cursor, _FINALIZE_READ_SQL, order_id)
        if order.status != OrderStatus.PROCESSING:
            return order_duplicate_skip(order=order, stage=FINALIZE.name)
        data = jsonb_value(rows[0][3])
        if data is None:
            raise EnrichmentMissing(f"order {order.id} has no enrichment yet")
        items = [(sku, qty, price) for *_, sku, qty, price, _ in rows if sku is not None]
        created_at = rows[0][7]
        subtotal = sum((price * qty for _, qty, price in items), Decimal("0")).quantize(CENT)
        discount_pct = Decimal(str(data.get("discount_pct", 0)))
        discount = (subtotal * discount_pct / 100).quantize(CENT)
        total = subtotal - discount
        now = timezone.now()
        number = f"INV-{now:%Y%m%d}-{order.id.hex[:12].upper()}"
        detail = {"invoice": number, "total": str(total)}
        cursor.execute(
            _FINALIZE_WRITE_SQL,
            {
                "id": order.id,
                "number": number,
                "subtotal": subtotal,
                "discount": discount,
                "total": total,
                "lines": json.dumps([{"sku": sku, "qty": qty, "unit_price": str(price)} for sku, qty, price in items]),
                "now": now,
                "detail": json.dumps(detail),
                "stage": FINALIZE.name,
                **stock_params(sku_totals((sku, qty) for sku, qty, _ in items)),
                # the client's webhook event, if it has an endpoint (a join: no statement of its own)
                **webhook_event_params(status=OrderStatus.COMPLETED),
            },
        )
        order.status = OrderStatus.COMPLETED
        order.total_amount = total
        order_announce(order, stage=FINALIZE.name, event=HistoryEvent.COMPLETED, detail=detail, at=now)
    metrics.ORDERS_COMPLETED.labels(source=order.source).inc()
    metrics.ORDER_COMPLETION_SECONDS.observe((now - created_at).total_seconds())
    return order
