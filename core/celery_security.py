"""Workers take JSON only (CELERY_ACCEPT_CONTENT = ["json"]); a refused message must end in the DLQ.

What Celery 5.7 does with a message whose content type is not accepted (pickle, yaml, ...):
- it carries Celery's `task` header (protocol 2, what `apply_async` writes): the strategy raises
  ContentDisallowed and the consumer's `on_invalid_task` rejects it without requeue, so RabbitMQ
  dead-letters it to orders.dlq. Nothing to add.
- it has no `task` header (protocol 1 shape, or a foreign publisher): the consumer has to decode the
  body to find the task name, fails, and `Consumer.on_decode_error` logs and ACKS it: the message
  vanishes with only a log line.

`RejectUndecodableMessages` makes that second path reject without requeue as well, so every message
a worker refuses is dead-lettered and the archiver stores it ("UndecodableMessage"), never silently
dropped and never deserialized. Wired in orders_project/celery.py: `app.steps["consumer"].add(...)`.
"""

from typing import Any

from celery import bootsteps
from celery.worker.consumer import Consumer
from kombu import Message
from kombu.utils.encoding import safe_repr

from core.logging import get_logger

log = get_logger(__name__)


def reject_undecodable(consumer: Consumer, message: Message, exc: Exception) -> None:
    log.critical(
        "message_rejected_undecodable",
        error=f"{type(exc).__name__}: {exc}",
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        headers=safe_repr(message.headers),
        routing_key=(message.delivery_info or {}).get("routing_key"),
    )
    # requeue=False: the queue's dead-letter exchange (orders.dlx) routes it to orders.dlq.
    # celery-types' Consumer lacks connection_errors (Celery sets it in Consumer.__init__)
    message.reject_log_error(log, consumer.connection_errors)  # type: ignore[attr-defined]


class RejectUndecodableMessages(bootsteps.Step):
    """Consumer bootstep: replaces the ack-and-drop `on_decode_error` before the task consumer is
    created (steps are instantiated when the blueprint is applied, before any of them starts)."""

    name = "orders.reject_undecodable_messages"

    def __init__(self, consumer: Consumer, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)
        # Replacing this consumer's bound method is the point (see above); mypy refuses any method assignment.
        consumer.on_decode_error = lambda message, exc: reject_undecodable(consumer, message, exc)  # type: ignore[method-assign]
