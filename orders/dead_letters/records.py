"""Dead letters without a RabbitMQ death: the reconciler's, for a stage whose message was lost (its dead letter
never reached the archive) or that made no progress. Their body is the stage's message as Celery's protocol 2
carries it, the format redrive.py re-publishes from, so the DLQ tools treat them like any archived one."""

import json
from datetime import datetime
from typing import Any

from celery import current_app

from orders.models import DeadLetter, HistoryEvent, Order
from orders.pipeline import STAGES, Stage
from orders.services.history import order_history_append


def stage_message_body(stage: Stage, order_id: str) -> list[Any]:
    """[args, kwargs, embed] as Celery's protocol 2 carries a stage's task: the rest of a forward chain rides in
    `embed.chain`, next task last (the order Celery pops it in)."""
    rest = list(STAGES[STAGES.index(stage) + 1 :]) if stage in STAGES else []
    chain = [dict(current_app.signature(s.task)) for s in reversed(rest)]
    return [[order_id], {}, {"callbacks": None, "errbacks": None, "chain": chain or None, "chord": None}]


def dead_letter_record(
    *,
    order: Order,
    stage: Stage,
    message_key: str,
    reason: str,
    exception: str,
    error_message: str,
    attempts: int,
    at: datetime,
    history_detail: dict | None = None,
) -> DeadLetter:
    """Inside the caller's transaction: the stage's dead letter, as if RabbitMQ had dead-lettered its message,
    and the order's `dead_lettered` history entry."""
    letter = DeadLetter.objects.create(
        message_key=message_key,
        order=order,
        task_name=stage.task,
        stage=stage.name,
        queue=stage.queue,
        reason=reason,
        exception=exception[:200],
        error_message=error_message,
        attempts=attempts,
        first_death_at=at,
        last_death_at=at,
        body=json.dumps(stage_message_body(stage, str(order.id))),
        content_type="application/json",
    )
    order_history_append(
        order=order,
        stage=stage.name,
        event=HistoryEvent.DEAD_LETTERED,
        detail={"dead_letter_id": letter.id, "reason": reason, "deliveries": 0, **(history_detail or {})},
    )
    return letter
