"""Writes. Every stage locks the order, checks its state, returns early when already done,
and otherwise does a small amount of work in one transaction: redelivery never doubles an effect.
See README "Pipeline" for the flow.
"""
import contextlib
import functools
import json
import socket
import threading
import uuid
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
    _announce(order, stage=stage, event=event, detail=detail or {}, at=entry.created_at)
    return entry


def order_history_append_many(entries: Sequence[tuple[Order, str, str, dict]], *, also_announce: Sequence[tuple] = ()) -> None:
    """Several history entries (order, stage, event, detail) in one INSERT, announced after commit in one
    message together with `also_announce` (changes written elsewhere)."""
    rows = OrderHistory.objects.bulk_create(
        [OrderHistory(order=order, stage=stage, event=event, detail=detail) for order, stage, event, detail in entries]
    )
    events.orders_changed_on_commit(
        [
            *also_announce,
            *(
                (order.id, _event(order, stage=stage, event=event, detail=detail, at=row.created_at), False)
                for (order, stage, event, detail), row in zip(entries, rows)
            ),
        ]
    )


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
    return _sku_totals((item.sku, item.qty) for item in items)


def _sku_totals(pairs: Iterable[tuple[str, int]]) -> Counter:
    totals: Counter = Counter()
    for sku, qty in pairs:
        totals[sku] += qty
    return totals


def _stock_params(wanted: Counter) -> dict:
    """The stock statements' arrays, in sku order (the order every writer locks product rows in)."""
    skus = sorted(wanted)
    return {"skus": skus, "qtys": [wanted[sku] for sku in skus]}


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


def order_duplicate_skip(*, order: Order, stage: str) -> Order:
    """Record that a redelivered or replayed stage found its work done, and change nothing."""
    order_history_append(order=order, stage=stage, event=HistoryEvent.DUPLICATE_SKIPPED, detail={"status": order.status})
    log.info("stage_duplicate_skipped", order_id=str(order.id), stage=stage, status=order.status)
    return order


# ---------------------------------------------------------------------------
# Create (API) and publish (fast path and relay)
# ---------------------------------------------------------------------------
def _order_for_key(*, client_id: int, key: str, request_hash: str) -> Order | None:
    stored = IdempotencyKey.objects.select_related("order").filter(client_id=client_id, key=key).first()
    if stored is None:
        return None
    if stored.request_hash != request_hash:
        raise IdempotencyConflict(
            "X-Idempotency-Key was already used with a different request body.",
            extra={"order_id": str(stored.order_id)},
        )
    return stored.order


# One statement, so one round trip and one durable commit (autocommit): the order, its items, its
# idempotency key (if any), the outbox row and the `accepted` history entry, then NOTIFY, which
# PostgreSQL delivers at commit to the relay's LISTEN. A reused key violates the (client, key) constraint and
# the whole statement rolls back (handled by the caller); a racing twin waits for the first's commit.
_ORDER_CREATE_SQL = f"""
WITH o AS (
    INSERT INTO {Order._meta.db_table} (id, client_id, customer_id, source, status, total_amount, failure_reason, failure_kind, created_at, updated_at)
    VALUES (%(id)s, %(client_id)s, %(customer_id)s, %(source)s, 'pending', NULL, '', '', %(now)s, %(now)s)
    RETURNING id
), i AS (
    INSERT INTO {OrderItem._meta.db_table} (order_id, sku, qty, unit_price)
    SELECT o.id, t.sku, t.qty, NULL
    FROM o, unnest(%(skus)s::varchar[], %(qtys)s::int[]) WITH ORDINALITY AS t(sku, qty, n)
    ORDER BY t.n
), k AS (
    INSERT INTO {IdempotencyKey._meta.db_table} (order_id, client_id, key, request_hash, created_at)
    SELECT o.id, %(client_id)s, %(key)s, %(request_hash)s, %(now)s FROM o WHERE %(key)s::varchar IS NOT NULL
), m AS (
    INSERT INTO {OutboxMessage._meta.db_table} (id, order_id, kind, payload, created_at, published_at, publish_attempts, last_error)
    SELECT %(outbox_id)s, o.id, 'order.created', '{{}}', %(now)s, NULL, 0, '' FROM o
), h AS (
    INSERT INTO {OrderHistory._meta.db_table} (order_id, stage, event, detail, created_at)
    SELECT o.id, 'api', 'accepted', %(detail)s, %(now)s FROM o
)
SELECT pg_notify(%(channel)s, '') FROM o WHERE %(notify)s
"""


def order_create(
    *,
    client_id: int,
    customer_id: str,
    source: str,
    items: Sequence[ItemIn],
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> OrderCreateResult:
    """Accept an order: the order, its items, its idempotency key, an outbox row and the history entry
    commit together in one statement, and the commit wakes the relay (NOTIFY), which publishes the chain
    in batches. With OUTBOX_PUBLISH_INLINE this process publishes it after the commit too (the relay is
    then the safety net). If the process dies after the commit, the relay publishes the row: nothing
    accepted is lost.
    """
    order = Order(
        id=uuid.uuid4(), client_id=client_id, customer_id=customer_id, source=source, status=OrderStatus.PENDING, created_at=timezone.now()
    )
    order.updated_at = order.created_at
    outbox_id = uuid.uuid4()
    detail = {"items": len(items), "source": source}
    try:
        # One statement in autocommit is its own durable transaction (no BEGIN/COMMIT round trips);
        # inside a caller's transaction (tests) a savepoint keeps a key conflict from breaking it.
        with _statement_transaction(), connection.cursor() as cursor:
            cursor.execute(
                _ORDER_CREATE_SQL,
                {
                    "id": order.id, "client_id": client_id, "customer_id": customer_id, "source": source, "now": order.created_at,
                    "skus": [i.sku for i in items], "qtys": [i.qty for i in items],
                    "key": idempotency_key, "request_hash": request_hash, "outbox_id": outbox_id,
                    "detail": json.dumps(detail), "channel": OUTBOX_CHANNEL,
                    # Inline, the relay leaves young rows to this process: waking it would find nothing.
                    "notify": not settings.OUTBOX_PUBLISH_INLINE,
                },
            )
            # No live event from here: the publisher announces `accepted` with `published` (no Redis
            # work on the request).
            if settings.OUTBOX_PUBLISH_INLINE:
                transaction.on_commit(functools.partial(outbox_publish, message_id=outbox_id, fast_path=True, order=order))
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = _order_for_key(client_id=client_id, key=idempotency_key, request_hash=request_hash)
        if existing is None:
            raise
        return OrderCreateResult(order=existing, created=False)
    log.info("order_accepted", order_id=str(order.id), source=source, items=len(items))
    from orders import metrics

    metrics.ORDERS_ACCEPTED.labels(source=source).inc()
    return OrderCreateResult(order=order, created=True)


def _accepted_change(order: Order) -> tuple:
    """The live page's `accepted` event, sent by whoever publishes the order (after its commit)."""
    pending = Order(id=order.id, status=OrderStatus.PENDING, source=order.source, failure_reason="")
    event = _event(pending, stage="api", event=HistoryEvent.ACCEPTED, detail={"source": order.source}, at=order.created_at)
    return (order.id, event, True)


def _announce_accepted(order: Order) -> None:
    events.orders_changed_on_commit([_accepted_change(order)])


def _statement_transaction():
    return transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()


def _event(order: Order, *, stage: str, event: str, detail: dict, at) -> dict:
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
            # The fast path answers the request within OUTBOX_INLINE_TIMEOUT whatever the broker does
            # (down, blocked by an alarm, silent): the row stays unsent and the relay publishes it later.
            # A kept connection the broker closed while the process was idle is replaced once, at once.
            timeout = settings.OUTBOX_INLINE_TIMEOUT if fast_path else settings.OUTBOX_CONFIRM_TIMEOUT
            _chains_publish_confirmed([str(message.order_id)], timeout=timeout)
            message.published_at = timezone.now()
            message.publish_attempts = F("publish_attempts") + 1
            message.save(update_fields=["published_at", "publish_attempts"])
            if order is None or order.id != message.order_id:
                order = Order.objects.get(id=message.order_id)
            order_history_append(
                order=order, stage="outbox", event=HistoryEvent.PUBLISHED, detail={"via": "api" if fast_path else "relay"}
            )
            _announce_accepted(order)
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


def _chain_publish(signature, *, producer) -> None:
    """Publish a chain's first task, the rest embedded, through `producer`. Celery's chain.apply_async
    takes a `producer` argument but does not pass it on (chain.run drops it): the message would go out
    on a pooled producer, confirmed one by one, and never on this channel. So the chain is prepared as
    chain.run does and its first task published with the producer."""
    from celery.canvas import _prepare_chain_from_options

    tasks, _ = signature.prepare_steps((), {}, signature.tasks, None, None, None, signature.app, None, None, None)
    first = tasks.pop()
    first.apply_async(producer=producer, retry=False, **_prepare_chain_from_options({}, tasks, False))


class _ConfirmedPublisher:
    """One broker connection and confirm-mode channel kept across relay batches (opening them cost more
    than a batch of one), publishing a batch and waiting once for all its confirms (pipelined publisher
    confirms). Every wait is bounded: the connect and handshake by the connect timeout, each socket read
    and write by the publish's timeout (a broker that stops answering), the confirms by its deadline (a
    broker that blocks publishers never confirms). Any error drops the connection; the next publish opens
    a new one."""

    def __init__(self):
        self.conn = None
        self.channel = None
        self.producer = None
        self.published = 0  # delivery tags of this channel handed out so far
        self.upto = 0  # every tag <= upto is confirmed (multiple acks)
        self.acked: set[int] = set()
        self.nacked: set[int] = set()

    def _open(self, *, timeout: float):
        from orders_project.celery import app as current_app

        socket_timeout = min(settings.BROKER_SOCKET_TIMEOUT, timeout)
        self.conn = current_app.connection_for_write(
            connect_timeout=min(settings.CELERY_BROKER_CONNECTION_TIMEOUT, timeout),
            transport_options={"confirm_publish": False, "read_timeout": socket_timeout, "write_timeout": socket_timeout},
        )
        self.conn.connect()  # one attempt: the caller (relay loop, or the relay after the fast path) retries
        self.channel = self.conn.channel()
        self.channel.confirm_select()
        self.published, self.upto, self.acked, self.nacked = 0, 0, set(), set()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.producer = current_app.amqp.Producer(self.channel, auto_declare=False)

    def _on_ack(self, tag, multiple):
        if multiple:
            self.upto = max(self.upto, tag)
            self.acked = {t for t in self.acked if t > tag}
        else:
            self.acked.add(tag)

    def _on_nack(self, tag, multiple):
        self.nacked.add(tag)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.release()
            except Exception:
                pass
        self.conn = self.channel = self.producer = None

    def publish(self, order_ids: Sequence[str], *, timeout: float) -> None:
        import time

        deadline = time.monotonic() + timeout
        reused = self.conn is not None
        try:
            self._publish(order_ids, timeout=timeout, deadline=deadline)
        except Exception as exc:
            from kombu.exceptions import OperationalError  # what kombu turns a connection error into

            errors = (OperationalError, *(self.conn.connection_errors if self.conn is not None else ()))
            timed_out = isinstance(exc, TimeoutError) or isinstance(exc.__cause__ or exc.__context__, TimeoutError)
            stale = reused and isinstance(exc, errors) and not timed_out
            self.close()
            if not stale:
                raise
            # The broker closed the kept connection while it sat idle (missed heartbeats, a restart):
            # once more, at once, on a new one.
            try:
                self._publish(order_ids, timeout=timeout, deadline=max(deadline, time.monotonic() + timeout))
            except Exception:
                self.close()
                raise

    def _publish(self, order_ids: Sequence[str], *, timeout: float, deadline: float) -> None:
        import time

        if self.conn is None:
            self._open(timeout=timeout)
        first = self.published + 1
        for order_id in order_ids:
            _chain_publish(order_pipeline_signature(order_id), producer=self.producer)
            self.published += 1
        tags = range(first, self.published + 1)

        def unconfirmed() -> int:
            return sum(1 for tag in tags if tag > self.upto and tag not in self.acked)

        while unconfirmed() and not self.nacked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishNotConfirmed(f"{unconfirmed()} of {len(tags)} messages unconfirmed after {timeout}s")
            try:
                self.conn.drain_events(timeout=remaining)
            except socket.timeout:
                continue
        if self.nacked:
            raise PublishNotConfirmed("the broker nacked a message of the batch")
        self.acked.difference_update(tags)


_publishers = threading.local()  # a channel is not thread-safe: one publisher per thread


def _chains_publish_confirmed(order_ids: Sequence[str], *, timeout: float) -> None:
    """Publish one chain per order and wait at most `timeout` seconds for the broker's confirms of all of
    them. Raises if any is nacked or unconfirmed: the caller's transaction then rolls back and the rows
    stay unsent (never marked sent on a timeout)."""
    publisher = getattr(_publishers, "publisher", None)
    if publisher is None:
        publisher = _publishers.publisher = _ConfirmedPublisher()
    publisher.publish(order_ids, timeout=timeout)


def outbox_relay_batch(*, grace_seconds: float, batch_size: int, confirm_timeout: float | None = None) -> int:
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
            _chains_publish_confirmed([str(row.order_id) for row in rows], timeout=confirm_timeout or settings.OUTBOX_CONFIRM_TIMEOUT)
            OutboxMessage.objects.filter(id__in=ids).update(
                published_at=timezone.now(), publish_attempts=F("publish_attempts") + 1
            )
            # The live page hears of each order here, `accepted` and `published` in one message for the batch.
            order_history_append_many(
                [(row.order, "outbox", HistoryEvent.PUBLISHED, {"via": "relay"}) for row in rows],
                also_announce=[_accepted_change(row.order) for row in rows],
            )
            return len(rows)
    except Exception as exc:
        if not ids:
            raise
        _outbox_record_failure(ids, exc)
        return 0


# ---------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------
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
_STOCK_LOCKED = """
    want AS (SELECT * FROM unnest(%(skus)s::varchar[], %(qtys)s::int[]) AS w(sku, qty)),
    locked AS (
        SELECT p.id, w.qty, p.stock >= p.reserved + w.qty AS enough
        FROM {product} p JOIN want w ON w.sku = p.sku ORDER BY p.sku FOR UPDATE OF p
    )""".format(**_T)
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
    VALUES (%(id)s, 'process', 'completed', %(detail)s::jsonb, %(now)s)
), {stock},
    ok AS (SELECT count(*) FILTER (WHERE enough) = %(n)s AS ok FROM locked),
    r AS (
        UPDATE {product} p SET reserved = p.reserved + locked.qty
        FROM locked, ok WHERE ok.ok AND p.id = locked.id RETURNING p.id
    )
SELECT (SELECT ok FROM ok), (SELECT count(*) FROM r)""".format(stock=_STOCK_LOCKED.strip(), **_T)
_ENRICH_READ_SQL = """
SELECT o.status, o.customer_id, EXISTS (SELECT 1 FROM {enrichment} e WHERE e.order_id = o.id), i.sku, i.qty, i.unit_price
FROM {order} o LEFT JOIN {item} i ON i.order_id = o.id WHERE o.id = %s ORDER BY i.id""".format(**_T)
_ENRICH_STORE_SQL = """
WITH o AS (
    SELECT id, status, source, failure_reason FROM {order} WHERE id = %(id)s FOR UPDATE
), e AS (
    INSERT INTO {enrichment} (order_id, data, created_at)
    SELECT id, %(data)s::jsonb, %(now)s FROM o WHERE status = 'processing'
    ON CONFLICT (order_id) DO NOTHING RETURNING order_id
), h AS (
    INSERT INTO {history} (order_id, stage, event, detail, created_at)
    SELECT order_id, 'enrich', 'completed', %(detail)s::jsonb, %(now)s FROM e
)
SELECT o.status, o.source, o.failure_reason, (SELECT count(*) FROM e) FROM o""".format(**_T)
_FINALIZE_READ_SQL = """
SELECT o.status, o.source, o.failure_reason, e.data, i.sku, i.qty, i.unit_price
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
    VALUES (%(id)s, 'finalize', 'completed', %(detail)s::jsonb, %(now)s)
), {stock}
UPDATE {product} p SET stock = p.stock - locked.qty, reserved = p.reserved - locked.qty
FROM locked WHERE p.id = locked.id""".format(stock=_STOCK_LOCKED.strip(), **_T)


def _order_row(order_id, status: str, source: str, failure_reason: str) -> Order:
    """The order as a stage's read returned it (enough to guard, fail or announce it)."""
    order = Order(id=uuid.UUID(str(order_id)), status=status, source=source, failure_reason=failure_reason)
    order._state.adding = False  # a stored row: save(update_fields=...) updates it
    return order


def _announce(order: Order, *, stage: str, event: str, detail: dict, at) -> None:
    events.order_changed_on_commit(order_id=order.id, event=_event(order, stage=stage, event=event, detail=detail, at=at))


def order_process(*, order_id) -> Order:
    """Mark processing and reserve stock; unknown sku or short stock ends the order failed."""
    try:
        # transaction ensures reservation and the status change happen together or not at all.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_PROCESS_READ_SQL, [order_id])
            rows = cursor.fetchall()
            if not rows:
                raise Order.DoesNotExist(f"order {order_id} does not exist")
            order = _order_row(order_id, *rows[0][:3])
            if order.status != OrderStatus.PENDING:
                return order_duplicate_skip(order=order, stage="process")
            items = [(item_id, sku, qty, price) for _, _, _, item_id, sku, qty, price in rows if item_id is not None]
            unknown = sorted({sku for _, sku, _, price in items if price is None})
            if unknown:
                reason = "; ".join(f"unknown sku {sku}" for sku in unknown)
                return _order_mark_failed(order, stage="process", reason=reason, kind="business")
            wanted = _sku_totals((sku, qty) for _, sku, qty, _ in items)
            now = timezone.now()
            detail = {"reserved": dict(wanted)}
            order.total_amount = sum((price * qty for _, _, qty, price in items), Decimal("0")).quantize(CENT)
            cursor.execute(
                _PROCESS_WRITE_SQL,
                {
                    "id": order.id, "total": order.total_amount, "now": now, "detail": json.dumps(detail),
                    "item_ids": [i[0] for i in items], "prices": [i[3] for i in items],
                    **_stock_params(wanted), "n": len(wanted),
                },
            )
            enough, _ = cursor.fetchone()
            if not enough:
                raise StockShort()  # rolls all of the above back; the reason is worked out below
            order.status = OrderStatus.PROCESSING
            _announce(order, stage="process", event=HistoryEvent.COMPLETED, detail=detail, at=now)
            return order
    except StockShort:
        return order_fail(order_id=order_id, stage="process", reason=_stock_short_reason(order_id), kind="business")


def _stock_short_reason(order_id) -> str:
    wanted = quantities(OrderItem.objects.filter(order_id=order_id))
    available = {p.sku: p.available for p in Product.objects.filter(sku__in=wanted)}
    short = [(sku, qty) for sku, qty in sorted(wanted.items()) if available.get(sku, 0) < qty]
    return "; ".join(
        f"unknown sku {sku}" if sku not in available else f"not enough stock for {sku} (wanted {qty}, available {available[sku]})"
        for sku, qty in short
    ) or "not enough stock"


@dataclass(frozen=True)
class EnrichmentDue:
    """What the enrich stage needs to call the provider; `due` is False when there is nothing to do."""

    due: bool
    customer_id: str
    items: list  # (sku, qty, unit_price)


def order_enrichment_read(*, order_id) -> EnrichmentDue:
    """One read, no lock: the order's state, whether it is enriched already, and its items."""
    with connection.cursor() as cursor:
        cursor.execute(_ENRICH_READ_SQL, [order_id])
        rows = cursor.fetchall()
    if not rows:
        raise Order.DoesNotExist(f"order {order_id} does not exist")
    status, customer_id, enriched = rows[0][:3]
    items = [(sku, qty, price) for *_, sku, qty, price in rows if sku is not None]
    return EnrichmentDue(due=status == OrderStatus.PROCESSING and not enriched, customer_id=customer_id, items=items)


def order_enrichment_store(*, order_id, data: dict) -> Order:
    """Store the provider's answer once (the provider was called outside any lock). One statement:
    it takes the order's lock (waiting for a redrive's or a failure's commit), stores the enrichment
    and its history entry only while the order is processing and not enriched yet."""
    now = timezone.now()
    detail = {"customer_score": data.get("customer_score")}
    with _statement_transaction(), connection.cursor() as cursor:
        cursor.execute(
            _ENRICH_STORE_SQL, {"id": order_id, "data": json.dumps(data), "detail": json.dumps(detail), "now": now}
        )
        row = cursor.fetchone()
        if row is None:
            raise Order.DoesNotExist(f"order {order_id} does not exist")
        order = _order_row(order_id, *row[:3])
        if not row[3]:
            return order_duplicate_skip(order=order, stage="enrich")
        _announce(order, stage="enrich", event=HistoryEvent.COMPLETED, detail=detail, at=now)
        return order


def order_finalize(*, order_id) -> Order:
    """Write the invoice, move the reserved stock, mark completed: once, whatever the redeliveries."""
    # transaction ensures invoice, stock movement and status commit together.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_FINALIZE_READ_SQL, [order_id])
        rows = cursor.fetchall()
        if not rows:
            raise Order.DoesNotExist(f"order {order_id} does not exist")
        order = _order_row(order_id, *rows[0][:3])
        if order.status != OrderStatus.PROCESSING:
            return order_duplicate_skip(order=order, stage="finalize")
        data = rows[0][3]
        if data is None:
            raise EnrichmentMissing(f"order {order.id} has no enrichment yet")
        if isinstance(data, str):
            data = json.loads(data)
        items = [(sku, qty, price) for *_, sku, qty, price in rows if sku is not None]
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
                "id": order.id, "number": number, "subtotal": subtotal, "discount": discount, "total": total,
                "lines": json.dumps([{"sku": sku, "qty": qty, "unit_price": str(price)} for sku, qty, price in items]),
                "now": now, "detail": json.dumps(detail), **_stock_params(_sku_totals((sku, qty) for sku, qty, _ in items)),
            },
        )
        order.status = OrderStatus.COMPLETED
        order.total_amount = total
        _announce(order, stage="finalize", event=HistoryEvent.COMPLETED, detail=detail, at=now)
    from orders import metrics

    metrics.ORDERS_COMPLETED.labels(source=order.source).inc()
    return order


def _order_mark_failed(order: Order, *, stage: str, reason: str, kind: str, detail: dict | None = None) -> Order:
    """Inside a transaction holding the order lock: release any reservation, end failed."""
    if order.status == OrderStatus.PROCESSING:
        stock_release(quantities(order.items.all()))
    order.status = OrderStatus.FAILED
    order.failure_reason = reason
    order.failure_kind = kind
    order.save(update_fields=["status", "failure_reason", "failure_kind", "updated_at"])
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
