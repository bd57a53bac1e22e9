"""The base task of every pipeline stage: the retry policy, what a failure does (the order ends failed and
the message is dead-lettered), what happens after a stage (a terminal order stops its chain), and the
log/metrics context. The acks (late, rejected on failure so RabbitMQ dead-letters) are Celery settings
(settings.py "Celery"). See docs/pipeline.md "Failure handling".
"""

import time
from typing import Any

from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from core.exceptions import TransientError
from core.logging import bind_order_context, clear_context, get_logger
from orders import metrics
from orders.models import HistoryEvent, Order, OrderHistory, OrderStatus
from orders.pipeline import Stage
from orders.services import order_fail, order_retry_record

log = get_logger(__name__)

# Worth another try later; anything else fails the order at once and dead-letters its message.
TRANSIENT_ERRORS = (TransientError, SoftTimeLimitExceeded, OperationalError, InterfaceError)


class StageTask(Task):
    """A stage's task runs its service, which returns the order; this class returns the order id for the
    next task of the chain, or ends the chain when the order is terminal."""

    stage: Stage
    autoretry_for = TRANSIENT_ERRORS
    # Delay before retry n (0-based) is uniform in [0, min(BASE * 2**n, MAX)] seconds (full jitter);
    # with the defaults 1, 2, 4, 8, 16 s caps over 5 retries. Retries wait in RabbitMQ's delayed-delivery
    # queues, not in a worker slot. Exhausted or permanent: on_failure, then RabbitMQ dead-letters it.
    retry_backoff = settings.TASK_RETRY_BACKOFF_BASE
    retry_backoff_max = settings.TASK_RETRY_BACKOFF_MAX
    retry_jitter = True
    max_retries = settings.TASK_MAX_RETRIES

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        order_id = args[0] if args else kwargs.get("order_id")
        bind_order_context(
            order_id=order_id, task_id=self.request.id, stage=self.stage.name, attempt=self.request.retries
        )
        started = time.monotonic()
        outcome = "error"
        try:
            order = super().__call__(*args, **kwargs)
            self.after_stage(order)
            outcome = "ok"
            return str(order.id)
        finally:
            elapsed = time.monotonic() - started
            metrics.STAGE_DURATION.labels(stage=self.stage.name, outcome=outcome).observe(elapsed)
            log.info("stage_finished", outcome=outcome, duration_ms=round(elapsed * 1000, 1))
            clear_context()

    def retry(
        self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, max_retries=None, **options
    ):
        limit = self.max_retries if max_retries is None else max_retries
        if exc is not None and (limit is None or self.request.retries < limit):
            order_id = self.request.args[0] if self.request.args else None
            attempt = self.request.retries + 1
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "stage_retry",
                order_id=str(order_id),
                stage=self.stage.name,
                attempt=attempt,
                error=error,
                delay=countdown,
            )
            metrics.TASK_RETRIES.labels(stage=self.stage.name).inc()
            try:
                order_retry_record(
                    order_id=order_id, stage=self.stage.name, attempt=attempt, error=error, delay=countdown or 0
                )
            except Exception as history_exc:  # the retry itself must still happen
                log.warning("retry_history_failed", order_id=str(order_id), error=str(history_exc))
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        order_id = args[0] if args else kwargs.get("order_id")
        exhausted = isinstance(exc, TRANSIENT_ERRORS)
        reason = (
            f"{self.stage.name}: retries exhausted after {self.request.retries} retries: {type(exc).__name__}: {exc}"
            if exhausted
            else f"{self.stage.name}: {type(exc).__name__}: {exc}"
        )
        log.error("stage_failed", order_id=str(order_id), stage=self.stage.name, error=reason, task_id=task_id)
        # Recorded here because the dead letter itself does not carry the exception.
        try:
            order_fail(
                order_id=order_id,
                stage=self.stage.name,
                reason=reason,
                kind="retries_exhausted" if exhausted else "permanent",
                detail={
                    "task": self.name,
                    "task_id": task_id,
                    "exception": type(exc).__name__,
                    "message": str(exc),
                    "attempts": self.request.retries + 1,
                    "dead_lettered": True,
                },
            )
        except Exception as fail_exc:  # the archiver marks it failed from the dead letter
            log.error("order_fail_failed", order_id=str(order_id), error=str(fail_exc))

    def after_stage(self, order: Order) -> None:
        """A redelivered message of a task that already failed this order (its reject was lost to a
        broker restart or a worker kill after on_failure) goes to the DLQ now, not acked away; and an
        order the forward stages are done with (completed, failed, cancelled) stops the rest of the chain."""
        if (
            order.status == OrderStatus.FAILED
            and OrderHistory.objects.filter(
                order=order, event=HistoryEvent.FAILED, detail__task_id=self.request.id
            ).exists()
        ):
            log.warning(
                "stage_failure_redelivered", order_id=str(order.id), stage=self.stage.name, task_id=self.request.id
            )
            raise Reject("failed earlier; dead-lettering its redelivered message", requeue=False)
        if order.forward_done:
            self.request.chain = None
