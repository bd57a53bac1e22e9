"""The delivery task (DELIVER_WEBHOOK: queue `webhooks`, its own worker `worker_webhooks`, threads pool): one
attempt per run. Transient failures are retried with exponential backoff and full jitter, or after the
endpoint's Retry-After (capped), waiting in RabbitMQ's delayed-delivery queues; exhausted or refused, the
task fails and, like every stage's, its message is rejected to the DLQ (acks in settings.py "Celery"),
where the archiver stores it and an operator can redrive it."""

import math
import random
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from core.logging import bind_order_context, clear_context, get_logger
from orders.pipeline import DELIVER_WEBHOOK
from orders.webhooks import delivery

log = get_logger(__name__)


def retry_delay(*, retries: int, retry_after: float | None = None) -> int:
    """Whole seconds before retry n (0-based): the endpoint's Retry-After if it sent one, else uniform in
    [0, min(BASE * 2**n, MAX)]; never more than WEBHOOK_RETRY_BACKOFF_MAX. Whole: RabbitMQ's delayed
    delivery (quorum queues) counts in seconds, and refuses a delay under one (0 is no delay)."""
    cap = settings.WEBHOOK_RETRY_BACKOFF_MAX
    if retry_after is not None:
        return math.ceil(min(max(retry_after, 0.0), cap))
    return round(random.uniform(0, min(settings.WEBHOOK_RETRY_BACKOFF_BASE * 2**retries, cap)))  # noqa: S311  (jitter)


class WebhookTask(Task):
    stage = DELIVER_WEBHOOK
    max_retries = settings.WEBHOOK_MAX_RETRIES

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        bind_order_context(
            order_id=args[0] if args else kwargs.get("order_id"),
            task_id=self.request.id,
            stage=self.stage.name,
            attempt=self.request.retries,
        )
        try:
            return super().__call__(*args, **kwargs)
        finally:
            clear_context()

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        event_id = args[1] if len(args) > 1 else kwargs.get("event_id")
        error = f"{type(exc).__name__}: {exc}"
        log.error(
            "webhook_failed",
            order_id=str(args[0] if args else ""),
            event_id=str(event_id),
            error=error,
            task_id=task_id,
        )
        try:
            delivery.webhook_event_fail(event_id=event_id, error=error)
        except Exception as fail_exc:  # the dead letter is archived anyway; the event stays pending
            log.error("webhook_fail_record_failed", event_id=str(event_id), error=str(fail_exc))


@shared_task(bind=True, base=WebhookTask, name=DELIVER_WEBHOOK.task)
def webhook_deliver(self: WebhookTask, order_id: str, event_id: str) -> None:
    retries = self.request.retries
    try:
        delivery.webhook_deliver(event_id=event_id, attempt=retries + 1, retries_left=retries < self.max_retries)
    except delivery.WebhookRetryable as exc:
        # Past max_retries Celery raises `exc` itself: the task fails and its message is dead-lettered.
        raise self.retry(exc=exc, countdown=retry_delay(retries=retries, retry_after=exc.retry_after)) from exc
    except (OperationalError, InterfaceError) as exc:  # the database, not the endpoint
        raise self.retry(exc=exc, countdown=retry_delay(retries=retries)) from exc
