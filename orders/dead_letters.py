"""The dead-letter archive and redrive: the one service under the CLI, the REST API and the admin.

The archiver takes messages off the RabbitMQ DLQ (`orders.dlq`), stores each one, and only then acks
it (at-least-once; a second store of the same message is a no-op). A dead letter for an order that is
not terminal yet (a crash loop ended by the delivery limit) ends that order failed.
"""
import base64
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from kombu import Connection

from core.exceptions import ApplicationError, ConflictError
from core.logging import get_logger
from orders import metrics
from orders.models import DeadLetter, DeadLetterStatus, HistoryEvent, Order, OrderHistory, OrderStatus
from orders.services import StockShort, order_fail, order_history_append, order_lock, quantities, stock_reserve
from orders_project import broker

log = get_logger(__name__)


class RedriveRefused(ConflictError):
    code = "redrive_refused"


# ---------------------------------------------------------------------------
# Reading a dead letter
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedDeadLetter:
    message_key: str
    task_name: str
    task_id: str
    order_id: str | None
    args: list
    kwargs: dict
    embed: dict
    reason: str
    queue: str
    deliveries: int
    retries: int
    first_death_at: datetime | None
    last_death_at: datetime | None
    body_text: str
    decoded: bool
    malformed: str = ""


MALFORMED = "MalformedMessage"  # a dead letter that is not a Celery task message: stored raw, never redriven
UNDECODABLE = "UndecodableMessage"  # a content type workers refuse (pickle, ...)


def _as_datetime(value) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt_timezone.utc)
    return None


def _uuid_or_none(value) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError):
        return None


def _text(value, limit: int) -> str:
    """A header value as a column can hold it: a string, no NUL (PostgreSQL refuses it), cut to size."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).replace("\x00", "\ufffd")[:limit]


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (ValueError, TypeError):
        return default


def _celery_payload(body: bytes) -> tuple[list, dict, dict] | None:
    """(args, kwargs, embed) of a Celery protocol-2 JSON body, or None if it is anything else."""
    try:
        payload = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return None
    if not (isinstance(payload, list) and len(payload) == 3):
        return None
    args, kwargs, embed = payload
    if not (isinstance(args, list) and isinstance(kwargs, dict) and isinstance(embed, (dict, type(None)))):
        return None
    return args, kwargs, embed or {}


def _body_text(body: bytes) -> str:
    """The body as text when it is UTF-8 without NULs, else base64 (`body_encoding` says which)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(body).decode()
    return text if "\x00" not in text else base64.b64encode(body).decode()


def parse_dead_letter(*, body: bytes, headers: dict, content_type: str) -> ParsedDeadLetter:
    """Whatever the message holds: headers of any type, any body. What is not a Celery task message comes
    back with `malformed` saying why (the archiver stores it raw and acks it; it never stops on one)."""
    headers = headers if isinstance(headers, dict) else {}
    deaths = [d for d in headers.get("x-death") or [] if isinstance(d, dict)] if isinstance(headers.get("x-death"), list) else []
    latest = deaths[0] if deaths else {}
    payload = _celery_payload(body) if content_type == "application/json" else None
    if content_type != "application/json":
        malformed = f"content type {content_type!r} is not accepted"
    elif payload is None:
        malformed = "body is not a Celery task message (JSON [args, kwargs, embed])"
    else:
        malformed = ""
    args, kwargs, embed = payload or ([], {}, {})
    task_id = _text(headers.get("id"), 64)
    order_id = _uuid_or_none(args[0] if args else kwargs.get("order_id"))
    reason = _text(latest.get("reason") or headers.get("x-first-death-reason") or "unknown", 40)
    return ParsedDeadLetter(
        message_key=task_id or hashlib.sha256(body).hexdigest(),
        task_name=_text(headers.get("task"), 200),
        task_id=task_id,
        order_id=order_id,
        args=list(args),
        kwargs=dict(kwargs),
        embed=dict(embed),
        reason=reason,
        queue=_text(latest.get("queue") or headers.get("x-first-death-queue"), 100),
        # RabbitMQ resets x-delivery-count when it dead-letters; the queue's limit says how many there were.
        deliveries=settings.QUEUE_DELIVERY_LIMIT + 1 if reason == "delivery_limit" else 1,
        retries=max(_int(headers.get("retries")), 0),
        first_death_at=_as_datetime(deaths[-1].get("time")) if deaths else None,
        last_death_at=_as_datetime(latest.get("time")),
        body_text=body.decode("utf-8") if not malformed else _body_text(body),
        decoded=not malformed,
        malformed=malformed,
    )


def _jsonable(value):
    """JSON a jsonb column takes: anything else as its str(), and no NUL (PostgreSQL refuses \\u0000)."""
    text = json.dumps(value, default=str)
    return json.loads(text.replace("\\u0000", "\\ufffd")) if "\\u0000" in text else json.loads(text)


# ---------------------------------------------------------------------------
# Archive
# ---------------------------------------------------------------------------
def dead_letter_archive(*, body: bytes, headers: dict, properties: dict, content_type: str) -> tuple[DeadLetter, bool]:
    parsed = parse_dead_letter(body=body, headers=headers, content_type=content_type)
    stage = broker.STAGE_BY_TASK.get(parsed.task_name)
    order = Order.objects.filter(id=parsed.order_id).first() if parsed.order_id else None
    # The exception is not in the dead letter: the failing task recorded it in the order's history.
    failure = None
    if order is not None and parsed.task_id:
        failure = (
            OrderHistory.objects.filter(order=order, event=HistoryEvent.FAILED, detail__task_id=parsed.task_id)
            .order_by("-created_at")
            .first()
        )
    if parsed.malformed:
        exception = UNDECODABLE if content_type != "application/json" else MALFORMED
        stored_as = "text" if parsed.body_text == body.decode("utf-8", "replace") else "base64"
        error, attempts = f"{parsed.malformed}; body stored as {stored_as}", 1
    elif failure is not None:
        exception, error = failure.detail.get("exception", ""), failure.detail.get("message", "")
        attempts = failure.detail.get("attempts", parsed.retries + 1)
    elif parsed.reason == "delivery_limit":
        exception, error = "WorkerLost", f"dead-lettered after {parsed.deliveries} deliveries (worker lost each time)"
        attempts = parsed.deliveries
    else:
        exception, error, attempts = "", f"rejected by {parsed.queue or 'a worker'}", parsed.retries + 1

    # transaction ensures the archive row and the order's terminal state commit together.
    with transaction.atomic():
        dead_letter, created = DeadLetter.objects.get_or_create(
            message_key=parsed.message_key,
            defaults=dict(
                order=order,
                task_name=parsed.task_name,
                stage=stage.name if stage else "",
                queue=stage.queue if stage else parsed.queue,
                reason=parsed.reason,
                exception=_text(exception, 200),
                error_message=_text(error, 10_000),
                attempts=attempts,
                first_death_at=parsed.first_death_at,
                last_death_at=parsed.last_death_at,
                headers=_jsonable(headers),
                properties=_jsonable(properties),
                body=parsed.body_text,
                content_type=_text(content_type, 100),
            ),
        )
        if created and order is not None:
            reason = (
                f"dead-lettered after {parsed.deliveries} deliveries ({stage.name if stage else parsed.queue})"
                if parsed.reason == "delivery_limit"
                else f"dead-lettered: {exception or parsed.reason}: {error}"
            )
            order = order_fail(order_id=order.id, stage=stage.name if stage else "dlq", reason=reason, kind="dead_letter")
            order_history_append(
                order=order,
                stage=stage.name if stage else "dlq",
                event=HistoryEvent.DEAD_LETTERED,
                detail={"dead_letter_id": dead_letter.id, "reason": parsed.reason, "deliveries": parsed.deliveries, "task_id": parsed.task_id},
            )
    if created:
        metrics.DEAD_LETTERED.labels(stage=dead_letter.stage or "unknown", reason=parsed.reason).inc()
        if parsed.malformed:
            metrics.DEAD_LETTERS_MALFORMED.inc()
        log.warning(
            "dead_letter_archived",
            order_id=parsed.order_id,
            task=parsed.task_name,
            task_id=parsed.task_id,
            reason=parsed.reason,
            exception=exception,
        )
    return dead_letter, created


def dead_letter_store_raw(*, body: bytes, headers, properties, content_type: str, error: Exception) -> DeadLetter:
    """The last resort when archiving failed on what the message holds: its bytes (base64) and headers,
    marked malformed, with no order touched."""
    dead_letter, created = DeadLetter.objects.get_or_create(
        message_key=hashlib.sha256(body).hexdigest(),
        defaults=dict(
            reason="unknown",
            exception=MALFORMED,
            error_message=_text(f"could not be archived: {type(error).__name__}: {error}; body stored as base64", 10_000),
            headers=_jsonable({"raw": repr(headers)[:100_000]}),
            properties=_jsonable({"raw": repr(properties)[:10_000]}),
            body=base64.b64encode(body).decode(),
            content_type=_text(content_type, 100),
        ),
    )
    if created:
        metrics.DEAD_LETTERS_MALFORMED.inc()
    return dead_letter


class ArchiveFailed(Exception):
    """A dead letter could not be stored at all (the database is down?): it is back in the DLQ."""


def _archive_one(message) -> None:
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode("utf-8", "surrogatepass")
    headers = dict(message.headers or {}) if isinstance(message.headers, dict) else {}
    properties = {k: v for k, v in (message.properties or {}).items() if k != "application_headers"}
    content_type = message.content_type or ""
    try:
        dead_letter_archive(body=body, headers=headers, properties=properties, content_type=content_type)
    except Exception as exc:
        log.warning("dead_letter_archive_failed", error=f"{type(exc).__name__}: {exc}")
        try:
            dead_letter_store_raw(body=body, headers=message.headers, properties=properties, content_type=content_type, error=exc)
        except Exception as store_exc:
            metrics.ARCHIVER_STORE_FAILURES.inc()
            raise ArchiveFailed(f"{type(store_exc).__name__}: {store_exc}") from store_exc


def dlq_archive_batch(*, limit: int = 100, crash_after_store: bool = False) -> int:
    """Store, then ack, up to `limit` dead letters. Returns how many were taken. A message that cannot be
    read as a task message is stored raw (malformed) and acked like any other; one that cannot be stored
    at all goes back to the DLQ and the batch fails (ArchiveFailed), so the loop's liveness shows it."""
    taken = 0
    with Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT,
        transport_options={"read_timeout": settings.BROKER_SOCKET_TIMEOUT, "write_timeout": settings.BROKER_SOCKET_TIMEOUT},
    ) as conn:
        channel = conn.channel()
        for _ in range(limit):
            message = channel.basic_get(broker.DEAD_LETTER_QUEUE_NAME, no_ack=False)
            if message is None:
                break
            try:
                _archive_one(message)
            except ArchiveFailed:
                channel.basic_reject(message.delivery_tag, requeue=True)
                raise
            if crash_after_store:  # fault injection for the at-least-once test and the chaos run
                os._exit(99)
            channel.basic_ack(message.delivery_tag)
            taken += 1
    return taken


def dlq_depth() -> int:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        _, count, _ = conn.channel().queue_declare(broker.DEAD_LETTER_QUEUE_NAME, passive=True)
        return count


# ---------------------------------------------------------------------------
# Redrive and discard
# ---------------------------------------------------------------------------
def _order_reopen(*, order: Order, stage: str) -> None:
    """Put a failed order back on track for `stage`: re-reserve its stock when the stage runs after
    process (a failure released it), or back to pending when process itself is redriven."""
    if order.status == OrderStatus.COMPLETED:
        raise RedriveRefused(f"order {order.id} is already completed; nothing to redrive")
    if order.status == OrderStatus.PENDING or (order.status == OrderStatus.PROCESSING and stage != "process"):
        return  # still on its way; the redriven stage's own guard decides
    if stage == "process":
        order.status = OrderStatus.PENDING
    else:
        try:
            stock_reserve(quantities(order.items.all()))
        except StockShort as exc:
            raise RedriveRefused(f"not enough stock to redrive order {order.id}: {exc}") from exc
        order.status = OrderStatus.PROCESSING
    order.failure_reason = ""
    order.save(update_fields=["status", "failure_reason", "updated_at"])


def dead_letter_redrive(*, dead_letter_id: int, actor: str) -> DeadLetter:
    """Re-publish one dead letter to its stage's queue with retries reset and the rest of its chain,
    after putting its order back on track. The publish happens inside the transaction: if the broker
    refuses, nothing changes; if the commit fails after it, the stages' guards absorb the message."""
    from orders_project.celery import app

    # transaction ensures the order's reopening, the history and the dead letter's status go together.
    with transaction.atomic():
        dead_letter = DeadLetter.objects.select_for_update().get(pk=dead_letter_id)
        if dead_letter.status == DeadLetterStatus.REDRIVEN:
            raise RedriveRefused(f"dead letter {dead_letter.pk} was already redriven by {dead_letter.redriven_by}")
        stage = broker.STAGE_BY_TASK.get(dead_letter.task_name)
        if stage is None or dead_letter.content_type != "application/json" or dead_letter.exception in (MALFORMED, UNDECODABLE):
            raise RedriveRefused(f"dead letter {dead_letter.pk} is not a pipeline task message; discard it instead")
        if dead_letter.order_id is None:
            raise RedriveRefused(f"dead letter {dead_letter.pk} has no order")
        order = order_lock(dead_letter.order_id)
        _order_reopen(order=order, stage=stage.name)
        args, kwargs, embed = json.loads(dead_letter.body)
        task_id = str(uuid.uuid4())
        order_history_append(
            order=order,
            stage=stage.name,
            event=HistoryEvent.REDRIVEN,
            detail={"by": actor, "dead_letter_id": dead_letter.pk, "task_id": task_id},
        )
        dead_letter.status = DeadLetterStatus.REDRIVEN
        dead_letter.redriven_at = timezone.now()
        dead_letter.redriven_by = actor
        dead_letter.redrive_task_id = task_id
        dead_letter.save(update_fields=["status", "redriven_at", "redriven_by", "redrive_task_id"])
        app.send_task(
            stage.task, args=args, kwargs=kwargs, task_id=task_id, retries=0, chain=(embed or {}).get("chain")
        )
    log.info("dead_letter_redriven", order_id=str(order.id), dead_letter_id=dead_letter.pk, by=actor, task_id=task_id)
    return dead_letter


@dataclass(frozen=True)
class BulkRedriveResult:
    redriven: list[int]
    refused: dict[int, str]


def dead_letter_redrive_many(*, dead_letter_ids, actor: str) -> BulkRedriveResult:
    redriven, refused = [], {}
    for dead_letter_id in dead_letter_ids:
        try:
            dead_letter_redrive(dead_letter_id=dead_letter_id, actor=actor)
            redriven.append(dead_letter_id)
        except (ApplicationError, DeadLetter.DoesNotExist) as exc:
            refused[dead_letter_id] = getattr(exc, "message", None) or str(exc)
    return BulkRedriveResult(redriven=redriven, refused=refused)


def dead_letter_discard(*, dead_letter_id: int, actor: str) -> DeadLetter:
    with transaction.atomic():
        dead_letter = DeadLetter.objects.select_for_update().get(pk=dead_letter_id)
        if dead_letter.status != DeadLetterStatus.ARCHIVED:
            raise RedriveRefused(f"dead letter {dead_letter.pk} is {dead_letter.status}, not archived")
        dead_letter.status = DeadLetterStatus.DISCARDED
        dead_letter.redriven_by = actor
        dead_letter.save(update_fields=["status", "redriven_by"])
    log.info("dead_letter_discarded", dead_letter_id=dead_letter.pk, by=actor)
    return dead_letter


# ---------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------
def dead_letter_list(*, status: str | None = None, group: str | None = None, order_id=None):
    qs = DeadLetter.objects.select_related("order").order_by("-archived_at")
    if status:
        qs = qs.filter(status=status)
    if order_id:
        qs = qs.filter(order_id=order_id)
    if group:
        task_name, _, failure = group.partition(":")
        qs = qs.filter(task_name=task_name).filter(_failure_q(failure))
    return qs


def _failure_q(failure: str):
    return Q(exception=failure) | (Q(exception="") & Q(reason=failure))


def dead_letter_groups(*, status: str | None = DeadLetterStatus.ARCHIVED) -> list[dict]:
    """Failure groups (same task + exception type) with counts, biggest first."""
    qs = DeadLetter.objects.all()
    if status:
        qs = qs.filter(status=status)
    rows = qs.values("task_name", "exception", "reason").annotate(count=Count("id"), last=Max("archived_at"))
    groups: dict[str, dict] = {}
    for row in rows:
        key = f"{row['task_name']}:{row['exception'] or row['reason']}"
        entry = groups.setdefault(key, {"group": key, "task": row["task_name"], "failure": row["exception"] or row["reason"], "count": 0, "last_archived_at": row["last"]})
        entry["count"] += row["count"]
        entry["last_archived_at"] = max(entry["last_archived_at"], row["last"])
    return sorted(groups.values(), key=lambda g: (-g["count"], g["group"]))
