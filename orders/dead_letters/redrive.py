"""Redrive and discard: an operator sends a dead letter back to its stage (after the order services
re-open its order) or marks it discarded. The one service under the CLI, the REST API and the admin."""

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from celery import current_app
from django.db import transaction
from django.utils import timezone

from core.exceptions import ApplicationError, ConflictError
from core.logging import get_logger
from orders.dead_letters.parsing import MALFORMED, UNDECODABLE
from orders.models import DeadLetter, DeadLetterStatus, HistoryEvent
from orders.pipeline import DELIVER_WEBHOOK, STAGE_BY_TASK
from orders.services import OrderReopenRefused, order_history_append, order_lock, order_reopen
from orders.webhooks.events import webhook_event_reopen

REDRIVE_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
log = get_logger(__name__)


class RedriveRefused(ConflictError):
    code = "redrive_refused"


def dead_letter_redrive(*, dead_letter_id: int, actor: str) -> DeadLetter:
    """Re-publish one dead letter to its stage's queue with retries reset and the rest of its chain,
    after putting its order back on track. The publish happens inside the transaction: if the broker
    refuses, nothing changes; if the commit fails after it, the stages' guards absorb the message."""
    # transaction ensures the order's reopening, the history and the dead letter's status go together.
    with transaction.atomic():
        dead_letter = DeadLetter.objects.select_for_update().get(pk=dead_letter_id)
        if dead_letter.status == DeadLetterStatus.REDRIVEN:
            raise RedriveRefused(f"dead letter {dead_letter.pk} was already redriven by {dead_letter.redriven_by}")
        stage = STAGE_BY_TASK.get(dead_letter.task_name)
        if (
            stage is None
            or dead_letter.content_type != "application/json"
            or dead_letter.exception in (MALFORMED, UNDECODABLE)
        ):
            raise RedriveRefused(f"dead letter {dead_letter.pk} is not a pipeline task message; discard it instead")
        if dead_letter.order_id is None:
            raise RedriveRefused(f"dead letter {dead_letter.pk} has no order")
        order = order_lock(dead_letter.order_id)
        args, kwargs, embed = json.loads(dead_letter.body)
        try:
            if stage == DELIVER_WEBHOOK:
                # The order stays as it is; its event is pending again and sent again (same webhook-id).
                webhook_event_reopen(event_id=args[1] if len(args) > 1 else kwargs.get("event_id"))
            else:
                order_reopen(order=order, stage=stage)
        except OrderReopenRefused as exc:
            raise RedriveRefused(exc.message) from exc
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
        current_app.send_task(
            stage.task,
            args=args,
            kwargs=kwargs,
            task_id=task_id,
            retries=0,
            chain=(embed or {}).get("chain"),
            # An operator is waiting: a few quick attempts (each on the next node), not a stage's long patience.
            retry_policy=REDRIVE_PUBLISH_RETRY_POLICY,
        )
    log.info("dead_letter_redriven", order_id=str(order.id), dead_letter_id=dead_letter.pk, by=actor, task_id=task_id)
    return dead_letter


@dataclass(frozen=True)
class BulkRedriveResult:
    redriven: list[int]
    refused: dict[int, str]


def dead_letter_redrive_many(*, dead_letter_ids: Iterable[int], actor: str) -> BulkRedriveResult:
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
