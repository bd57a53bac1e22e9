"""Accepting an order (POST /orders): one durable statement, then the publish after its commit."""

import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.db import statement_transaction
from core.exceptions import ApplicationError, ConflictError
from core.logging import get_logger
from orders import metrics, statements
from orders.models import IN_FLIGHT_STATUSES, IdempotencyKey, Order, OrderStatus
from orders.pipeline import Step
from orders.services.outbox import outbox_publish

log = get_logger(__name__)


class IdempotencyConflict(ConflictError):
    code = "idempotency_key_reused"


class TooManyOrdersInFlight(ApplicationError):
    status_code = 429
    code = "too_many_orders_in_flight"


def _in_flight_at_cap(*, client_id: int, cap: int) -> bool:
    """Whether the client has `cap` orders in flight: counted no further than the cap, on the partial index
    of in-flight orders per client, so the check costs the same however many orders the client has."""
    ids = Order.objects.filter(client_id=client_id, status__in=IN_FLIGHT_STATUSES).values("pk")[:cap]
    return ids.count() >= cap


@dataclass(frozen=True)
class ItemIn:
    sku: str
    qty: int


@dataclass(frozen=True)
class OrderCreateResult:
    order: Order
    created: bool


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
    commit together in one statement (statements.ORDER_CREATE), and the commit wakes the relay (NOTIFY),
    which publishes the chain in batches. With OUTBOX_PUBLISH_INLINE this process publishes it after the
    commit too (the relay is then the safety net). If the process dies after the commit, the relay publishes
    the row: nothing accepted is lost.

    A client with ORDERS_IN_FLIGHT_MAX orders in flight gets TooManyOrdersInFlight (429) instead, unless the
    request replays an accepted one (its idempotency key): one client cannot fill every client's queues.
    Concurrent requests of one client may pass the cap by as many as are in flight together.
    """
    cap = settings.ORDERS_IN_FLIGHT_MAX
    if cap and _in_flight_at_cap(client_id=client_id, cap=cap):
        existing = (
            _order_for_key(client_id=client_id, key=idempotency_key, request_hash=request_hash)
            if idempotency_key
            else None
        )
        if existing is not None:
            return OrderCreateResult(order=existing, created=False)
        log.warning("order_refused_in_flight_cap", client_id=client_id, in_flight_max=cap)
        raise TooManyOrdersInFlight(
            f"This client has {cap} orders in flight (not yet completed, failed, cancelled or refunded):"
            " retry once some have finished.",
            extra={"in_flight_max": cap},
        )
    order = Order(
        id=uuid.uuid4(),
        client_id=client_id,
        customer_id=customer_id,
        source=source,
        status=OrderStatus.PENDING,
        created_at=timezone.now(),
    )
    order.updated_at = order.created_at
    outbox_id = uuid.uuid4()
    detail = {"items": len(items), "source": source}
    try:
        # One statement in autocommit is its own durable transaction (no BEGIN/COMMIT round trips);
        # inside a caller's transaction (tests) a savepoint keeps a key conflict from breaking it.
        with statement_transaction(), connection.cursor() as cursor:
            cursor.execute(
                statements.ORDER_CREATE,
                statements.params(
                    id=order.id,
                    client_id=client_id,
                    customer_id=customer_id,
                    source=source,
                    now=order.created_at,
                    skus=[i.sku for i in items],
                    qtys=[i.qty for i in items],
                    key=idempotency_key,
                    request_hash=request_hash,
                    outbox_id=outbox_id,
                    detail=json.dumps(detail),
                    step=Step.API.value,
                    # Inline, the relay leaves young rows to this process: waking it would find nothing.
                    notify=not settings.OUTBOX_PUBLISH_INLINE,
                ),
            )
            # No live event from here: the publisher announces `accepted` with `published` (no Redis
            # work on the request).
            if settings.OUTBOX_PUBLISH_INLINE:
                transaction.on_commit(
                    functools.partial(outbox_publish, message_id=outbox_id, fast_path=True, order=order)
                )
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = _order_for_key(client_id=client_id, key=idempotency_key, request_hash=request_hash)
        if existing is None:
            raise
        return OrderCreateResult(order=existing, created=False)
    log.info("order_accepted", order_id=str(order.id), source=source, items=len(items))
    metrics.ORDERS_ACCEPTED.labels(source=source).inc()
    return OrderCreateResult(order=order, created=True)
