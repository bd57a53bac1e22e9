"""Writes. Every stage locks the order, checks its state, returns early when already done,
and otherwise does a small amount of work in one transaction: redelivery never doubles an effect.
See README "Pipeline" for the flow.
"""
import functools
import socket
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Sequence

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from core.exceptions import ConflictError
from core.logging import get_logger
from orders import events
from orders.models import (
    HistoryEvent,
    IdempotencyKey,
    Invoice,
    Order,
    OrderEnrichment,
    OrderHistory,
    OrderItem,
    OrderStatus,
    OutboxMessage,
    Product,
)

log = get_logger(__name__)
CENT = Decimal("0.01")
# PostgreSQL NOTIFY channel: a commit that leaves an outbox row for the relay wakes it at once.
OUTBOX_CHANNEL = "orders_outbox"
FAST_PATH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


class IdempotencyConflict(ConflictError):
    code = "idempotency_key_reused"


class EnrichmentMissing(Exception):
    """finalize ran before enrichment was stored (out-of-order delivery): retried as transient."""


@dataclass(frozen=True)
class ItemIn:
    sku: str
    qty: int


@dataclass(frozen=True)
class OrderCreateResult:
    order: Order
    created: bool


# ---------------------------------------------------------------------------
# History: the only writer of OrderHistory; every change is announced after commit.
# ---------------------------------------------------------------------------
def order_history_append(*, order: Order, stage: str, event: str, detail: dict | None = None) -> OrderHistory:
    entry = OrderHistory.objects.create(order=order, stage=stage, event=event, detail=detail or {})
    events.order_changed_on_commit(
        order_id=order.id,
        created=event == HistoryEvent.ACCEPTED,
        event={
            "order_id": str(order.id),
            "status": order.status,
            "stage": stage,
            "event": event,
            "detail": detail or {},
            "failure_reason": order.failure_reason,
            "source": order.source,
            "at": entry.created_at.isoformat(),
        },
    )
    return entry


# ---------------------------------------------------------------------------
# Locks and stock. The order row is locked first; product rows only by the stock writes, which run
# last in their transaction: every order touches the same few hot product rows, so they stay locked
# from the UPDATE to the commit and no longer (no SELECT ... FOR UPDATE before).
# ---------------------------------------------------------------------------
class StockShort(Exception):
    """Some sku is unknown or has less available than wanted; nothing was reserved."""


def order_lock(order_id) -> Order:
    return Order.objects.select_for_update().get(id=order_id)


def quantities(items: Iterable[OrderItem]) -> Counter:
    totals: Counter = Counter()
    for item in items:
        totals[item.sku] += item.qty
    return totals


def stock_reserve(wanted: Counter) -> None:
    """Reserve every sku's quantity, or none and raise StockShort. One conditional UPDATE per sku, in
    sku order (no deadlock between orders); PostgreSQL re-checks the condition after a concurrent
    writer commits, and the reserved <= stock constraint backs it."""
    done, short = Counter(), []
    for sku, qty in sorted(wanted.items()):
        if Product.objects.filter(sku=sku, stock__gte=F("reserved") + qty).update(reserved=F("reserved") + qty):
            done[sku] = qty
        else:
            short.append((sku, qty))
    if short:
        stock_release(done)
        available = {p.sku: p.available for p in Product.objects.filter(sku__in=[sku for sku, _ in short])}
        raise StockShort(
            "; ".join(
                f"unknown sku {sku}" if sku not in available else f"not enough stock for {sku} (wanted {qty}, available {available[sku]})"
                for sku, qty in short
            )
        )


def stock_release(reserved: Counter) -> None:
    for sku, qty in sorted(reserved.items()):
        Product.objects.filter(sku=sku).update(reserved=F("reserved") - qty)


def stock_ship(reserved: Counter) -> None:
    """Reserved units leave the stock (finalize)."""
    for sku, qty in sorted(reserved.items()):
        Product.objects.filter(sku=sku).update(stock=F("stock") - qty, reserved=F("reserved") - qty)


def order_duplicate_skip(*, order: Order, stage: str) -> Order:
    """Record that a redelivered or replayed stage found its work done, and change nothing."""
    order_history_append(order=order, stage=stage, event=HistoryEvent.DUPLICATE_SKIPPED, detail={"status": order.status})
    log.info("stage_duplicate_skipped", order_id=str(order.id), stage=stage, status=order.status)
    return order


# ---------------------------------------------------------------------------
# Create (API) and publish (fast path and relay)
# ---------------------------------------------------------------------------
def _order_for_key(*, key: str, request_hash: str) -> Order | None:
    stored = IdempotencyKey.objects.select_related("order").filter(key=key).first()
    if stored is None:
        return None
    if stored.request_hash != request_hash:
        raise IdempotencyConflict(
            "X-Idempotency-Key was already used with a different request body.",
            extra={"order_id": str(stored.order_id)},
        )
    return stored.order


def order_create(
    *,
    customer_id: str,
    source: str,
    items: Sequence[ItemIn],
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> OrderCreateResult:
    """Accept an order: the order, its items, its idempotency key and an outbox row commit together
    (durable transaction), and the chain is published only after that commit: inline by this process
    (OUTBOX_PUBLISH_INLINE, the default) or by the relay, which the commit wakes at once (NOTIFY).
    If the process dies between commit and publish, the relay publishes the outbox row later; nothing
    accepted is lost.
    """
    try:
        # transaction ensures an order is never visible without its items, key and outbox row.
        with transaction.atomic(durable=True):
            order = Order.objects.create(customer_id=customer_id, source=source)
            OrderItem.objects.bulk_create([OrderItem(order=order, sku=i.sku, qty=i.qty) for i in items])
            if idempotency_key:
                # The key is the primary key: a replay fails here at once (handled below, no lookup
                # before the insert on the common path); a racing twin blocks, then fails on commit order.
                IdempotencyKey.objects.create(key=idempotency_key, order=order, request_hash=request_hash)
            message = OutboxMessage.objects.create(order=order, kind="order.created")
            order_history_append(
                order=order, stage="api", event=HistoryEvent.ACCEPTED, detail={"items": len(items), "source": source}
            )
            if settings.OUTBOX_PUBLISH_INLINE:
                transaction.on_commit(functools.partial(outbox_publish, message_id=message.id, fast_path=True, order=order))
            else:
                # Delivered by PostgreSQL at commit only: the relay wakes up and publishes in batches.
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_notify(%s, '')", [OUTBOX_CHANNEL])
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = _order_for_key(key=idempotency_key, request_hash=request_hash)
        if existing is None:
            raise
        return OrderCreateResult(order=existing, created=False)
    log.info("order_accepted", order_id=str(order.id), source=source, items=len(items))
    from orders import metrics

    metrics.ORDERS_ACCEPTED.labels(source=source).inc()
    return OrderCreateResult(order=order, created=True)


def order_pipeline_signature(order_id: str):
    """process → enrich → finalize; each task returns the order id for the next."""
    from celery import chain

    from orders_project.celery import app

    return chain(
        app.signature("orders.process", args=[order_id], immutable=True),
        app.signature("enrichment.enrich"),
        app.signature("orders.finalize"),
    )


def outbox_publish(*, message_id, fast_path: bool = False, order: Order | None = None) -> bool:
    """Publish one outbox row and mark it sent. SKIP LOCKED makes the fast path and any number
    of relays exclusive per row; a crash after publish and before commit republishes, which the
    stages absorb (duplicate_skipped). `order`, when the caller holds it, saves a query."""
    try:
        # transaction ensures the row is marked sent only if the broker confirmed the publish.
        with transaction.atomic():
            message = (
                OutboxMessage.objects.select_for_update(skip_locked=True)
                .filter(id=message_id, published_at__isnull=True)
                .first()
            )
            if message is None:
                return False
            # The fast path does not wait on a broker outage (the relay retries the row), but it does
            # retry once at once: a pooled connection the broker closed while the process was idle
            # (missed heartbeats) fails its first publish with "connection reset", and reconnects.
            options = {"retry": True, "retry_policy": FAST_PATH_RETRY_POLICY} if fast_path else {}
            order_pipeline_signature(str(message.order_id)).apply_async(**options)
            message.published_at = timezone.now()
            message.publish_attempts = F("publish_attempts") + 1
            message.save(update_fields=["published_at", "publish_attempts"])
            if order is None or order.id != message.order_id:
                order = Order.objects.get(id=message.order_id)
            order_history_append(
                order=order, stage="outbox", event=HistoryEvent.PUBLISHED, detail={"via": "api" if fast_path else "relay"}
            )
            return True
    except Exception as exc:
        _outbox_record_failure([message_id], exc)
        return False


def _outbox_record_failure(message_ids: list, exc: Exception) -> None:
    log.warning("outbox_publish_failed", outbox_ids=[str(i) for i in message_ids], error=f"{type(exc).__name__}: {exc}")
    try:
        OutboxMessage.objects.filter(id__in=message_ids, published_at__isnull=True).update(
            publish_attempts=F("publish_attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:1000]
        )
    except Exception:
        pass  # the database is down too; the relay will find the rows when it is back


class PublishNotConfirmed(Exception):
    """The broker nacked a message of the batch, or did not confirm it in time."""


def _chains_publish_confirmed(order_ids: Sequence[str], *, timeout: float) -> None:
    """Publish one chain per order on one channel and wait once for all the broker's confirms
    (pipelined publisher confirms), instead of one round trip per message. Raises if any is
    nacked or unconfirmed: the caller's transaction then rolls back and the rows stay unsent."""
    import time

    from orders_project.celery import app

    with app.connection_for_write(transport_options={"confirm_publish": False}) as conn:
        conn.ensure_connection(max_retries=1)
        channel = conn.channel()
        channel.confirm_select()
        state = {"published": 0, "upto": 0, "acked": set(), "nacked": False}

        def on_ack(tag, multiple):
            if multiple:
                state["upto"] = max(state["upto"], tag)
            else:
                state["acked"].add(tag)

        def on_nack(tag, multiple):
            state["nacked"] = True

        channel.events["basic_ack"].add(on_ack)
        channel.events["basic_nack"].add(on_nack)
        plain_publish = channel.basic_publish

        def counted_publish(*args, **kwargs):
            state["published"] += 1
            return plain_publish(*args, **kwargs)

        channel.basic_publish = counted_publish
        producer = app.amqp.Producer(channel, auto_declare=False)
        for order_id in order_ids:
            order_pipeline_signature(order_id).apply_async(producer=producer, retry=False)

        def unconfirmed() -> int:
            return sum(1 for tag in range(state["upto"] + 1, state["published"] + 1) if tag not in state["acked"])

        deadline = time.monotonic() + timeout
        while unconfirmed() and not state["nacked"]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishNotConfirmed(f"{unconfirmed()} of {state['published']} messages unconfirmed after {timeout}s")
            try:
                conn.drain_events(timeout=remaining)
            except socket.timeout:
                continue
        if state["nacked"]:
            raise PublishNotConfirmed("the broker nacked a message of the batch")


def outbox_relay_batch(*, grace_seconds: float, batch_size: int, confirm_timeout: float = 10.0) -> int:
    """Publish rows committed more than `grace_seconds` ago and still unsent, as one batch: rows locked
    (SKIP LOCKED, so relays and the fast path never take the same row), chains published with pipelined
    confirms, rows marked sent and history written in the same transaction. Returns how many."""
    cutoff = timezone.now() - timezone.timedelta(seconds=grace_seconds)
    ids: list = []
    try:
        # transaction ensures rows are marked sent only if the broker confirmed every publish of the batch.
        with transaction.atomic():
            rows = list(
                OutboxMessage.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("order")
                .filter(published_at__isnull=True, created_at__lte=cutoff)
                .order_by("created_at")[:batch_size]
            )
            if not rows:
                return 0
            ids = [row.id for row in rows]
            _chains_publish_confirmed([str(row.order_id) for row in rows], timeout=confirm_timeout)
            OutboxMessage.objects.filter(id__in=ids).update(
                published_at=timezone.now(), publish_attempts=F("publish_attempts") + 1
            )
            for row in rows:
                order_history_append(order=row.order, stage="outbox", event=HistoryEvent.PUBLISHED, detail={"via": "relay"})
            return len(rows)
    except Exception as exc:
        if not ids:
            raise
        _outbox_record_failure(ids, exc)
        return 0


# ---------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------
def order_process(*, order_id) -> Order:
    """Mark processing and reserve stock; unknown sku or short stock ends the order failed."""
    try:
        # transaction ensures reservation and the status change happen together or not at all.
        with transaction.atomic():
            order = order_lock(order_id)
            if order.status != OrderStatus.PENDING:
                return order_duplicate_skip(order=order, stage="process")
            items = list(order.items.all())
            wanted = quantities(items)
            prices = dict(Product.objects.filter(sku__in=wanted).values_list("sku", "price"))
            unknown = sorted(set(wanted) - set(prices))
            if unknown:
                reason = "; ".join(f"unknown sku {sku}" for sku in unknown)
                return _order_mark_failed(order, stage="process", reason=reason, kind="business")
            for item in items:
                item.unit_price = prices[item.sku]
            OrderItem.objects.bulk_update(items, ["unit_price"])
            order.total_amount = sum((i.unit_price * i.qty for i in items), Decimal("0")).quantize(CENT)
            order.status = OrderStatus.PROCESSING
            order.save(update_fields=["status", "total_amount", "updated_at"])
            order_history_append(order=order, stage="process", event=HistoryEvent.COMPLETED, detail={"reserved": dict(wanted)})
            stock_reserve(wanted)  # last: raises StockShort, which rolls all of the above back
            return order
    except StockShort as exc:
        return order_fail(order_id=order_id, stage="process", reason=str(exc), kind="business")


def order_enrichment_due(order: Order) -> bool:
    """Processing and not enriched yet: the only state in which the enrich stage does anything."""
    return order.status == OrderStatus.PROCESSING and not OrderEnrichment.objects.filter(order_id=order.id).exists()


def order_enrichment_store(*, order_id, data: dict) -> Order:
    """Store the provider's answer once (the provider was called outside any lock)."""
    with transaction.atomic():
        order = order_lock(order_id)
        if not order_enrichment_due(order):
            return order_duplicate_skip(order=order, stage="enrich")
        OrderEnrichment.objects.create(order=order, data=data)
        order_history_append(
            order=order, stage="enrich", event=HistoryEvent.COMPLETED, detail={"customer_score": data.get("customer_score")}
        )
        return order


def order_finalize(*, order_id) -> Order:
    """Write the invoice, move the reserved stock, mark completed: once, whatever the redeliveries."""
    # transaction ensures invoice, stock movement and status commit together.
    with transaction.atomic():
        order = order_lock(order_id)
        if order.status != OrderStatus.PROCESSING:
            return order_duplicate_skip(order=order, stage="finalize")
        enrichment = OrderEnrichment.objects.filter(order=order).first()
        if enrichment is None:
            raise EnrichmentMissing(f"order {order.id} has no enrichment yet")
        items = list(order.items.all())
        subtotal = sum((i.unit_price * i.qty for i in items), Decimal("0")).quantize(CENT)
        discount_pct = Decimal(str(enrichment.data.get("discount_pct", 0)))
        discount = (subtotal * discount_pct / 100).quantize(CENT)
        invoice = Invoice.objects.create(
            order=order,
            number=f"INV-{timezone.now():%Y%m%d}-{order.id.hex[:12].upper()}",
            subtotal=subtotal,
            discount=discount,
            total=subtotal - discount,
            lines=[{"sku": i.sku, "qty": i.qty, "unit_price": str(i.unit_price)} for i in items],
        )
        order.total_amount = invoice.total
        order.status = OrderStatus.COMPLETED
        order.save(update_fields=["status", "total_amount", "updated_at"])
        order_history_append(
            order=order, stage="finalize", event=HistoryEvent.COMPLETED, detail={"invoice": invoice.number, "total": str(invoice.total)}
        )
        stock_ship(quantities(items))  # last: the hot product rows stay locked only until the commit
    from orders import metrics

    metrics.ORDERS_COMPLETED.labels(source=order.source).inc()
    return order


def _order_mark_failed(order: Order, *, stage: str, reason: str, kind: str, detail: dict | None = None) -> Order:
    """Inside a transaction holding the order lock: release any reservation, end failed."""
    if order.status == OrderStatus.PROCESSING:
        stock_release(quantities(order.items.all()))
    order.status = OrderStatus.FAILED
    order.failure_reason = reason
    order.save(update_fields=["status", "failure_reason", "updated_at"])
    order_history_append(order=order, stage=stage, event=HistoryEvent.FAILED, detail={"reason": reason, "kind": kind, **(detail or {})})
    log.warning("order_failed", order_id=str(order.id), stage=stage, reason=reason, kind=kind)
    from orders import metrics

    transaction.on_commit(lambda: metrics.ORDERS_FAILED.labels(source=order.source, kind=kind).inc())
    return order


def order_fail(*, order_id, stage: str, reason: str, kind: str = "error", detail: dict | None = None) -> Order:
    """End an order failed (a no-op on an order already terminal)."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order.is_terminal:
            return order
        return _order_mark_failed(order, stage=stage, reason=reason, kind=kind, detail=detail)


def order_retry_record(*, order_id, stage: str, attempt: int, error: str, delay: float) -> None:
    with transaction.atomic():
        order = Order.objects.get(id=order_id)
        order_history_append(
            order=order, stage=stage, event=HistoryEvent.RETRY, detail={"attempt": attempt, "error": error, "next_delay_s": round(delay, 3)}
        )
