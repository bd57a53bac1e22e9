"""The transactional outbox: publishing accepted orders' chains exactly when their rows say so.

A row is marked sent in the same transaction that waited for the broker's confirms, so a row is never
marked sent without its message, and a crash between the two republishes (the stages absorb duplicates).
The fast path (`outbox_publish`, after the accepting commit) and the relay (`outbox_relay_batch`, the
`relay_outbox` command) take rows with SKIP LOCKED, so any number of them never publish one row twice.
The AMQP side is orders/publisher.py; the relay's SQL is orders/statements.py (RELAY_TAKE, RELAY_MARK).
"""

import contextlib
import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from core.db import jsonb_value
from core.logging import get_logger
from orders import events, statements
from orders.models import HistoryEvent, Order, OutboxMessage
from orders.pipeline import OutboxKind, Step, outbox_message
from orders.publisher import messages_publish_confirmed
from orders.services.history import accepted_change, live_event, order_history_append

log = get_logger(__name__)


def outbox_publish(*, message_id: Any, fast_path: bool = False, order: Order | None = None) -> bool:
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
            messages_publish_confirmed(
                [outbox_message(message.kind, str(message.order_id), message.payload)], timeout=timeout
            )
            message.published_at = timezone.now()
            message.publish_attempts = F("publish_attempts") + 1
            message.save(update_fields=["published_at", "publish_attempts"])
            if order is None or order.id != message.order_id:
                order = Order.objects.get(id=message.order_id)
            order_history_append(
                order=order,
                stage=Step.OUTBOX,
                event=HistoryEvent.PUBLISHED,
                detail=_published_detail(message.kind, via="api" if fast_path else "relay"),
            )
            if message.kind == OutboxKind.ORDER_CREATED:
                events.orders_changed_on_commit([accepted_change(order)])
            return True
    except Exception as exc:
        _outbox_record_failure([message_id], exc)
        return False


def _published_detail(kind: str, *, via: str) -> dict:
    if kind == OutboxKind.ORDER_CREATED:
        return {"via": via}
    return {"via": via, "kind": kind}


def _outbox_record_failure(message_ids: list, exc: Exception) -> None:
    log.warning("outbox_publish_failed", outbox_ids=[str(i) for i in message_ids], error=f"{type(exc).__name__}: {exc}")
    # The database down too: the relay will find the rows when it is back.
    with contextlib.suppress(Exception):
        OutboxMessage.objects.filter(id__in=message_ids, published_at__isnull=True).update(
            publish_attempts=F("publish_attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:1000]
        )


def outbox_relay_batch(*, grace_seconds: float, batch_size: int, confirm_timeout: float | None = None) -> int:
    """Publish rows committed more than `grace_seconds` ago and still unsent, as one batch: rows locked
    (SKIP LOCKED, so relays and the fast path never take the same row), messages published with pipelined
    confirms, rows marked sent and history written in the same transaction. Returns how many."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    ids: list = []
    try:
        # transaction ensures rows are marked sent only if the broker confirmed every publish of the batch.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statements.RELAY_TAKE, statements.params(cutoff=cutoff, limit=batch_size))
            rows = statements.fetch_all(cursor)
            if not rows:
                return 0
            ids = [row.id for row in rows]
            messages_publish_confirmed(
                [outbox_message(row.kind, str(row.order_id), jsonb_value(row.payload)) for row in rows],
                timeout=confirm_timeout or settings.OUTBOX_CONFIRM_TIMEOUT,
            )
            orders = [
                Order(
                    id=row.order_id,
                    status=row.status,
                    source=row.source,
                    failure_reason=row.failure_reason,
                    created_at=row.created_at,
                )
                for row in rows
            ]
            details = [_published_detail(row.kind, via="relay") for row in rows]
            now = timezone.now()
            cursor.execute(
                statements.RELAY_MARK,
                statements.params(
                    now=now,
                    ids=ids,
                    stage=Step.OUTBOX.value,
                    order_ids=[order.id for order in orders],
                    details=[json.dumps(detail) for detail in details],
                ),
            )
            # The live page hears of each order here, `accepted` and `published` in one message for the batch.
            events.orders_changed_on_commit(
                [
                    *(
                        accepted_change(order)
                        for order, row in zip(orders, rows, strict=True)
                        if row.kind == OutboxKind.ORDER_CREATED
                    ),
                    *(
                        (
                            order.id,
                            live_event(order, stage=Step.OUTBOX, event=HistoryEvent.PUBLISHED, detail=detail, at=now),
                            False,
                        )
                        for order, detail in zip(orders, details, strict=True)
                    ),
                ]
            )
            return len(rows)
    except Exception as exc:
        if not ids:
            raise
        _outbox_record_failure(ids, exc)
        return 0
