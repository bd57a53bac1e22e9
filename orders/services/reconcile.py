"""The reconciler: nothing in flight stays stuck silently.

An order in flight (pending, processing, refund_pending) whose history has had no entry for
STUCK_ORDER_SECONDS has lost its message (a purged queue, a broker that lost its disk, a policy that
dropped it). The reconciler re-publishes the message of the stage the order is at, through the outbox
(so the relay publishes it with confirms, exactly like any other), and records `reconciled`. The stages
are idempotent: a message that was not lost after all is absorbed as a duplicate.

It must not make a backlog worse; the rules, in order:
- an order whose last entry is a retry waits for that retry's delay plus the threshold;
- an order with an outbox row not yet published is the relay's, not lost;
- **a stage whose queue holds ready messages (RabbitMQ's message count of a passive declare, which counts
  ready messages only) has its orders waiting, not lost: none of them is re-published in that pass**;
- after RECONCILE_MAX_ATTEMPTS reconciliations with no other entry in between, the order ends failed
  (kind `stuck`; a refund stays owed) with a dead letter in the archive, so the DLQ tools can redrive it.

A failed order's dead letter can be lost too: the failing task records the failure, then its worker dies
before the reject reaches RabbitMQ, and the redelivered message is purged with its queue. An order failed by
a stage (its `failed` entry says `dead_lettered`) with no dead letter archived STUCK_ORDER_SECONDS later gets
one archived from its history (reason `lost`, keyed by the task id, so the real one arriving later is a
no-op), unless the DLQ holds messages (the archiver's backlog, not a loss). Failures older than
RECONCILE_LOOKBACK_SECONDS are not looked at (a partial index of the `failed` entries keeps a pass cheap).
One reconciler at a time (a transaction-level advisory lock); candidates come from a partial index of the
orders in flight. It runs in the relay's loop every RECONCILE_INTERVAL_SECONDS and as `manage.py
reconcile_orders` (cron, a Kubernetes CronJob, by hand).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core.logging import get_logger
from orders import metrics, statements
from orders.dead_letters.records import dead_letter_record
from orders.models import DeadLetter, HistoryEvent, Order, OrderEnrichment, OrderHistory, OrderStatus, OutboxMessage
from orders.pipeline import ENRICH, FINALIZE, PROCESS, REFUND, STAGE_BY_NAME, STAGES, Stage, resume_kind
from orders.services.failure import order_fail
from orders.services.history import order_history_append
from orders.topology import DEAD_LETTER_QUEUE_NAME

log = get_logger(__name__)

# Any 64-bit number the project owns: the transaction-level advisory lock of a reconcile pass.
_LOCK_KEY = 0x0D3E_5EC0_0C11_E001
# Entries that are not progress: a pass that re-published, the outbox's publish, a redelivery skipped.
_NOT_PROGRESS = (HistoryEvent.RECONCILED, HistoryEvent.PUBLISHED, HistoryEvent.DUPLICATE_SKIPPED)
STUCK_REASON = "no progress after {attempts} reconciliations at the {stage} stage: its message is lost"


@dataclass
class ReconcileResult:
    locked: bool = True  # False: another reconciler holds the lock; this pass did nothing
    found: int = 0
    republished: dict[str, int] = field(default_factory=dict)
    gave_up: int = 0
    skipped_backlog: list[str] = field(default_factory=list)  # stages left alone because their queue has messages
    dead_letters_recovered: int = 0  # failed orders whose dead letter was lost, archived from their history


def order_stage(order: Order, *, enriched: bool) -> Stage:
    """The stage an in-flight order waits for."""
    if order.status == OrderStatus.PENDING:
        return PROCESS
    if order.status == OrderStatus.REFUND_PENDING:
        return REFUND
    return FINALIZE if enriched else ENRICH


def queue_ready_messages(queue: str) -> int:
    """Ready messages in `queue` (a passive declare: it creates nothing)."""
    with current_app.connection_for_read() as conn:
        channel = cast(Any, conn.default_channel)  # an amqp Channel; celery-types says StdChannel
        _, count, _ = channel.queue_declare(queue, passive=True)
        return count


def orders_reconcile(
    *,
    now: datetime | None = None,
    stuck_seconds: float | None = None,
    max_attempts: int | None = None,
    batch_size: int | None = None,
    lookback_seconds: float | None = None,
    queue_depth: Callable[[str], int] = queue_ready_messages,
) -> ReconcileResult:
    """One pass. `now` and `queue_depth` are parameters so that tests can move time and see queues."""
    now = now or timezone.now()
    stuck = timedelta(seconds=settings.STUCK_ORDER_SECONDS if stuck_seconds is None else stuck_seconds)
    lookback = timedelta(seconds=settings.RECONCILE_LOOKBACK_SECONDS if lookback_seconds is None else lookback_seconds)
    max_attempts = settings.RECONCILE_MAX_ATTEMPTS if max_attempts is None else max_attempts
    batch_size = batch_size or settings.RECONCILE_BATCH_SIZE
    result = ReconcileResult()
    # Stages with ready messages: their orders are queued behind them, not lost.
    idle = {stage for stage in (*STAGES, REFUND) if queue_depth(stage.queue) == 0}
    result.skipped_backlog = [stage.name for stage in (*STAGES, REFUND) if stage not in idle]
    dlq_idle = queue_depth(DEAD_LETTER_QUEUE_NAME) == 0
    if not dlq_idle:
        result.skipped_backlog.append(DEAD_LETTER_QUEUE_NAME)
    statuses = {
        OrderStatus.PENDING: PROCESS in idle,
        OrderStatus.PROCESSING: ENRICH in idle or FINALIZE in idle,
        OrderStatus.REFUND_PENDING: REFUND in idle,
    }
    wanted = [status for status, ok in statuses.items() if ok]
    if not wanted and not dlq_idle:
        return result
    # transaction ensures one reconciler at a time, and that every re-publish (an outbox row) commits with its
    # history entry.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_LOCK_KEY])
            if not cursor.fetchone()[0]:
                result.locked = False
                return result
        if wanted:
            _in_flight_reconcile(
                result, wanted=wanted, idle=idle, now=now, stuck=stuck, max_attempts=max_attempts, batch=batch_size
            )
        if dlq_idle:
            result.dead_letters_recovered = _lost_dead_letters_archive(
                now=now, stuck=stuck, lookback=lookback, batch=batch_size
            )
    if result.found or result.dead_letters_recovered:
        log.warning(
            "orders_reconciled",
            found=result.found,
            republished=result.republished,
            gave_up=result.gave_up,
            dead_letters_recovered=result.dead_letters_recovered,
        )
    return result


def _in_flight_reconcile(
    result: ReconcileResult,
    *,
    wanted: list[OrderStatus],
    idle: set[Stage],
    now: datetime,
    stuck: timedelta,
    max_attempts: int,
    batch: int,
) -> None:
    candidates = list(
        Order.objects.filter(status__in=wanted, updated_at__lt=now - stuck)
        # an unsent outbox row (the first publish, or a pass's re-publish) is the relay's, not lost
        .exclude(Exists(OutboxMessage.objects.filter(order=OuterRef("pk"), published_at__isnull=True)))
        .order_by("updated_at")[:batch]
    )
    enriched = set(OrderEnrichment.objects.filter(order__in=candidates).values_list("order_id", flat=True))
    for order in candidates:
        stage = order_stage(order, enriched=order.id in enriched)
        if stage not in idle:
            continue
        recent = _recent_history(order)
        if not _is_stuck(recent, now=now, stuck=stuck):
            continue
        result.found += 1
        metrics.ORDERS_STUCK.labels(stage=stage.name).inc()
        attempts = _reconciliations_since_progress(recent)
        if attempts >= max_attempts:
            _give_up(order, stage=stage, attempts=attempts)
            result.gave_up += 1
            continue
        _republish(order, stage=stage, attempt=attempts + 1)
        result.republished[stage.name] = result.republished.get(stage.name, 0) + 1


def _lost_dead_letters_archive(*, now: datetime, stuck: timedelta, lookback: timedelta, batch: int) -> int:
    """Archive the dead letter of each failed order whose message never reached the archive."""
    failures = list(
        OrderHistory.objects.filter(
            event=HistoryEvent.FAILED,
            created_at__lt=now - stuck,
            created_at__gte=now - stuck - lookback,
            detail__dead_lettered=True,
            order__status=OrderStatus.FAILED,
        )
        # the order's latest failure only, and none that the archiver (or a redrive) has answered since
        .exclude(
            Exists(
                OrderHistory.objects.filter(
                    order=OuterRef("order"),
                    event__in=(HistoryEvent.FAILED, HistoryEvent.DEAD_LETTERED, HistoryEvent.REDRIVEN),
                    id__gt=OuterRef("id"),
                )
            )
        )
        .select_related("order")
        .order_by("created_at")[:batch]
    )
    task_ids = {str(f.detail.get("task_id")) for f in failures}
    archived = set(DeadLetter.objects.filter(message_key__in=task_ids).values_list("message_key", flat=True))
    recovered = 0
    for failure in failures:
        task_id = str(failure.detail.get("task_id"))
        stage = STAGE_BY_NAME.get(failure.stage)
        if stage is None or task_id in archived:
            continue
        _lost_dead_letter_archive(failure, stage=stage, task_id=task_id)
        recovered += 1
    return recovered


def _lost_dead_letter_archive(failure: OrderHistory, *, stage: Stage, task_id: str) -> None:
    order = failure.order
    reason = "its dead letter never reached the archive (lost with its queue or its worker); rebuilt from history"
    dead_letter_record(
        order=order,
        stage=stage,
        message_key=task_id,
        reason="lost",
        exception=str(failure.detail.get("exception", "")),
        error_message=f"{failure.detail.get('message', '')}\n({reason})",
        attempts=int(failure.detail.get("attempts") or 1),
        at=failure.created_at,
        history_detail={"task_id": task_id},
    )
    log.warning("dead_letter_recovered", order_id=str(order.id), stage=stage.name, task_id=task_id)
    name = stage.name
    transaction.on_commit(lambda: metrics.DEAD_LETTERED.labels(stage=name, reason="lost").inc())


def _recent_history(order: Order, limit: int = 50) -> list[OrderHistory]:
    """The order's latest entries, newest first."""
    return list(OrderHistory.objects.filter(order=order).order_by("-created_at", "-id")[:limit])


def _is_stuck(recent: list[OrderHistory], *, now: datetime, stuck: timedelta) -> bool:
    if not recent:
        return True
    last = recent[0]
    wait = stuck
    if last.event == HistoryEvent.RETRY:
        wait += timedelta(seconds=float(last.detail.get("next_delay_s") or 0))
    return last.created_at < now - wait


def _reconciliations_since_progress(recent: list[OrderHistory]) -> int:
    count = 0
    for entry in recent:
        if entry.event not in _NOT_PROGRESS:
            break
        count += entry.event == HistoryEvent.RECONCILED
    return count


def _republish(order: Order, *, stage: Stage, attempt: int) -> None:
    OutboxMessage.objects.create(order=order, kind=resume_kind(stage))
    order_history_append(order=order, stage=stage.name, event=HistoryEvent.RECONCILED, detail={"attempt": attempt})
    with connection.cursor() as cursor:
        cursor.execute(statements.NOTIFY, statements.params())  # delivered at commit: wakes the relay
    name = stage.name
    transaction.on_commit(lambda: metrics.ORDERS_RECONCILED.labels(stage=name).inc())


def _give_up(order: Order, *, stage: Stage, attempts: int) -> None:
    """Fail the order and archive a dead letter for its stage, as if RabbitMQ had dead-lettered it: the
    DLQ tools show it and a redrive re-publishes the stage with the rest of its chain."""
    reason = STUCK_REASON.format(attempts=attempts, stage=stage.name)
    order_fail(order_id=order.id, stage=stage.name, reason=reason, kind="stuck", detail={"reconciliations": attempts})
    now = timezone.now()
    dead_letter_record(
        order=order,
        stage=stage,
        message_key=f"reconcile:{order.id}:{now.timestamp()}",
        reason="stuck",
        exception="NoProgress",
        error_message=reason,
        attempts=attempts,
        at=now,
    )
    name = stage.name
    transaction.on_commit(lambda: metrics.ORDERS_RECONCILE_GAVE_UP.labels(stage=name).inc())
