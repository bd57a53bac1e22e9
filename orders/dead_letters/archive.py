"""The archiver's work: take messages off the RabbitMQ DLQ, store each, then ack it (at-least-once; a
second store of the same message is a no-op). A dead letter for an order that is not terminal yet (a
crash loop ended by the delivery limit) ends that order failed, through the order services."""

import base64
import hashlib
from collections.abc import Callable
from typing import Any, cast

from amqp.channel import Channel
from django.db import transaction

from core.broker_nodes import broker_connection
from core.logging import get_logger
from orders import metrics, topology
from orders.dead_letters.parsing import MALFORMED, UNDECODABLE, clip, jsonable, parse_dead_letter
from orders.models import DeadLetter, HistoryEvent, Order
from orders.pipeline import STAGE_BY_TASK, Step
from orders.selectors import order_task_failure
from orders.services.failure import order_fail
from orders.services.history import order_history_append

log = get_logger(__name__)


def dead_letter_archive(*, body: bytes, headers: dict, properties: dict, content_type: str) -> tuple[DeadLetter, bool]:
    parsed = parse_dead_letter(body=body, headers=headers, content_type=content_type)
    stage = STAGE_BY_TASK.get(parsed.task_name)
    order = Order.objects.filter(id=parsed.order_id).first() if parsed.order_id else None
    # The exception is not in the dead letter: the failing task recorded it in the order's history.
    failure = order_task_failure(order=order, task_id=parsed.task_id) if order is not None and parsed.task_id else None
    if parsed.malformed:
        exception = UNDECODABLE if content_type != "application/json" else MALFORMED
        stored_as = "text" if parsed.body_text == body.decode("utf-8", "replace") else "base64"
        error, attempts = f"{parsed.malformed}; body stored as {stored_as}", 1
    elif failure is not None:
        exception, error = failure.get("exception", ""), failure.get("message", "")
        attempts = failure.get("attempts", parsed.retries + 1)
    elif parsed.reason == "delivery_limit":
        exception, error = "WorkerLost", f"dead-lettered after {parsed.deliveries} deliveries (worker lost each time)"
        attempts = parsed.deliveries
    else:
        exception, error, attempts = "", f"rejected by {parsed.queue or 'a worker'}", parsed.retries + 1

    # transaction ensures the archive row and the order's terminal state commit together.
    with transaction.atomic():
        dead_letter, created = DeadLetter.objects.get_or_create(
            message_key=parsed.message_key,
            defaults={
                "order": order,
                "task_name": parsed.task_name,
                "stage": stage.name if stage else "",
                "queue": stage.queue if stage else parsed.queue,
                "reason": parsed.reason,
                "exception": clip(exception, 200),
                "error_message": clip(error, 10_000),
                "attempts": attempts,
                "first_death_at": parsed.first_death_at,
                "last_death_at": parsed.last_death_at,
                "headers": jsonable(headers),
                "properties": jsonable(properties),
                "body": parsed.body_text,
                "content_type": clip(content_type, 100),
            },
        )
        if created and order is not None:
            reason = (
                f"dead-lettered after {parsed.deliveries} deliveries ({stage.name if stage else parsed.queue})"
                if parsed.reason == "delivery_limit"
                else f"dead-lettered: {exception or parsed.reason}: {error}"
            )
            order = order_fail(
                order_id=order.id, stage=stage.name if stage else Step.DLQ, reason=reason, kind="dead_letter"
            )
            order_history_append(
                order=order,
                stage=stage.name if stage else Step.DLQ,
                event=HistoryEvent.DEAD_LETTERED,
                detail={
                    "dead_letter_id": dead_letter.id,
                    "reason": parsed.reason,
                    "deliveries": parsed.deliveries,
                    "task_id": parsed.task_id,
                },
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


def dead_letter_store_raw(
    *, body: bytes, headers: Any, properties: Any, content_type: str, error: Exception
) -> DeadLetter:
    """The last resort when archiving failed on what the message holds: its bytes (base64) and headers,
    marked malformed, with no order touched."""
    dead_letter, created = DeadLetter.objects.get_or_create(
        message_key=hashlib.sha256(body).hexdigest(),
        defaults={
            "reason": "unknown",
            "exception": MALFORMED,
            "error_message": clip(
                f"could not be archived: {type(error).__name__}: {error}; body stored as base64", 10_000
            ),
            "headers": jsonable({"raw": repr(headers)[:100_000]}),
            "properties": jsonable({"raw": repr(properties)[:10_000]}),
            "body": base64.b64encode(body).decode(),
            "content_type": clip(content_type, 100),
        },
    )
    if created:
        metrics.DEAD_LETTERS_MALFORMED.inc()
    return dead_letter


class ArchiveFailed(Exception):
    """A dead letter could not be stored at all (the database is down?): it is back in the DLQ."""


def _archive_one(message: Any) -> None:
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode("utf-8", "surrogatepass")
    headers = dict(message.headers or {}) if isinstance(message.headers, dict) else {}
    properties = {k: v for k, v in (message.properties or {}).items() if k != "application_headers"}
    content_type = message.content_type or ""
    try:
        dead_letter_archive(body=body, headers=headers, properties=properties, content_type=content_type)
    except Exception as exc:
        log.warning("dead_letter_archive_failed", error=f"{type(exc).__name__}: {exc}")
        try:
            dead_letter_store_raw(
                body=body, headers=message.headers, properties=properties, content_type=content_type, error=exc
            )
        except Exception as store_exc:
            metrics.ARCHIVER_STORE_FAILURES.inc()
            raise ArchiveFailed(f"{type(store_exc).__name__}: {store_exc}") from store_exc


def dlq_archive_batch(*, limit: int = 100, after_store: Callable[[], None] | None = None) -> int:
    """Store, then ack, up to `limit` dead letters. Returns how many were taken. A message that cannot be
    read as a task message is stored raw (malformed) and acked like any other; one that cannot be stored
    at all goes back to the DLQ and the batch fails (ArchiveFailed), so the loop's liveness shows it.
    `after_store` runs between the store and the ack (the command's fault injection)."""
    taken = 0
    with broker_connection(role="archiver") as conn:
        channel = cast(Channel, conn.channel())  # kombu's StdChannel in the stubs: py-amqp's Channel here
        for _ in range(limit):
            message = channel.basic_get(topology.DEAD_LETTER_QUEUE_NAME, no_ack=False)
            if message is None:
                break
            try:
                _archive_one(message)
            except ArchiveFailed:
                # amqp-stubs: delivery_tag is Optional, but basic_get's messages always carry one
                channel.basic_reject(message.delivery_tag, requeue=True)  # type: ignore[arg-type]
                raise
            if after_store is not None:
                after_store()
            channel.basic_ack(message.delivery_tag)  # type: ignore[arg-type]  # as for basic_reject above
            taken += 1
    return taken


def dlq_depth() -> int:
    with broker_connection(role="probe", connect_timeout=2) as conn:
        # amqp-stubs: queue_declare returns None only with nowait=True (they have no overload for it)
        _, count, _ = cast(Channel, conn.channel()).queue_declare(  # type: ignore[misc]
            topology.DEAD_LETTER_QUEUE_NAME, passive=True
        )
        return count
