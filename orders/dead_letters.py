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
from django.db.models import Count, F, Max
from django.utils import timezone
from kombu import Connection

from core.exceptions import ApplicationError, ConflictError
from core.logging import get_logger
from orders import metrics
from orders.models import DeadLetter, DeadLetterStatus, HistoryEvent, Order, OrderHistory, OrderStatus, Product
from orders.services import _order_lock, _products_lock, _quantities, order_fail, order_history_append
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


def _as_datetime(value) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt_timezone.utc)
    return None


def _uuid_or_none(value) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError):
        return None


def parse_dead_letter(*, body: bytes, headers: dict, content_type: str) -> ParsedDeadLetter:
    deaths = headers.get("x-death") or []
    latest = deaths[0] if deaths else {}
    args, kwargs, embed, decoded = [], {}, {}, False
    if content_type == "application/json":
        try:
            payload = json.loads(body)
            args, kwargs, embed = payload
            decoded = True
        except (ValueError, TypeError):
            pass
    body_text = body.decode("utf-8") if decoded else base64.b64encode(body).decode()
    task_id = str(headers.get("id") or "")
    order_id = _uuid_or_none(args[0] if args else kwargs.get("order_id"))
    return ParsedDeadLetter(
        message_key=task_id or hashlib.sha256(body).hexdigest(),
        task_name=str(headers.get("task") or ""),
        task_id=task_id,
        order_id=order_id,
        args=list(args),
        kwargs=dict(kwargs),
        embed=dict(embed or {}),
        reason=str(latest.get("reason") or headers.get("x-first-death-reason") or "unknown"),
        queue=str(latest.get("queue") or headers.get("x-first-death-queue") or ""),
        # RabbitMQ resets x-delivery-count when it dead-letters; the queue's limit says how many there were.
        deliveries=settings.QUEUE_DELIVERY_LIMIT + 1 if latest.get("reason") == "delivery_limit" else 1,
        retries=int(headers.get("retries") or 0),
        first_death_at=_as_datetime(deaths[-1].get("time")) if deaths else None,
        last_death_at=_as_datetime(latest.get("time")),
        body_text=body_text,
        decoded=decoded,
    )


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


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
    if failure is not None:
        exception, error = failure.detail.get("exception", ""), failure.detail.get("message", "")
        attempts = failure.detail.get("attempts", parsed.retries + 1)
    elif parsed.reason == "delivery_limit":
        exception, error = "WorkerLost", f"dead-lettered after {parsed.deliveries} deliveries (worker lost each time)"
        attempts = parsed.deliveries
    elif not parsed.decoded:
        exception, error, attempts = "UndecodableMessage", f"content type {content_type!r} is not accepted", 1
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
                exception=exception,
                error_message=error,
                attempts=attempts,
                first_death_at=parsed.first_death_at,
                last_death_at=parsed.last_death_at,
                headers=_jsonable(headers),
                properties=_jsonable(properties),
                body=parsed.body_text,
                content_type=content_type,
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
        log.warning(
            "dead_letter_archived",
            order_id=parsed.order_id,
            task=parsed.task_name,
            task_id=parsed.task_id,
            reason=parsed.reason,
            exception=exception,
        )
    return dead_letter, created


def dlq_archive_batch(*, limit: int = 100, crash_after_store: bool = False) -> int:
    """Store, then ack, up to `limit` dead letters. Returns how many were taken."""
    taken = 0
    with Connection(settings.CELERY_BROKER_URL) as conn:
        channel = conn.channel()
        for _ in range(limit):
            message = channel.basic_get(broker.DEAD_LETTER_QUEUE_NAME, no_ack=False)
            if message is None:
                break
            dead_letter_archive(
                body=message.body if isinstance(message.body, bytes) else message.body.encode(),
                headers=dict(message.headers or {}),
                properties={k: v for k, v in (message.properties or {}).items() if k != "application_headers"},
                content_type=message.content_type or "",
            )
            if crash_after_store:  # fault injection for the at-least-once test and the chaos run
                os._exit(99)
            channel.basic_ack(message.delivery_tag)
            taken += 1
    return taken


def dlq_depth() -> int:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        _, count, _ = conn.channel().queue_declare(broker.DEAD_LETTER_QUEUE_NAME, passive=True)
        return count
