"""The pipeline, defined once: its stages in chain order, with the task, queue and routing key of each.

The broker topology (orders/topology.py), Celery's routes, the chain every order is published as, the
history's `stage` values, the metrics' labels and the live page's columns all derive from `STAGES`. This
module imports nothing from Django: the settings module reads it (through broker.py) at start-up.
See docs/pipeline.md "Pipeline".
"""

from dataclasses import dataclass
from enum import StrEnum

from celery import chain, current_app
from celery.canvas import Signature


@dataclass(frozen=True)
class Stage:
    name: str  # the history's `stage`, the metrics' `stage` label, the live page's column
    task: str  # the Celery task name: the name on the wire, kept stable across releases
    queue: str
    routing_key: str

    def __str__(self) -> str:
        return self.name


PROCESS = Stage("process", "orders.process", "process", "order.created")
# Its task keeps the name it had when enrichment was an app of its own: messages already queued, retried
# or archived in the DLQ carry it.
ENRICH = Stage("enrich", "enrichment.enrich", "enrichment", "order.enrichment.requested")
FINALIZE = Stage("finalize", "orders.finalize", "finalize", "order.enriched")

# The compensating stage (a saga's compensation): a completed order that is cancelled is refunded by it.
# Same queue arguments, retries, dead-lettering, archive and redrive as the forward stages.
REFUND = Stage("refund", "orders.refund", "refund", "order.refund.requested")

# Not a stage of the order's own: a terminal order's event POSTed to its client's webhook endpoint
# (orders/webhooks/). Stage-like for the machinery: its own quorum queue with the same arguments and
# dead-lettering, its own worker, archive and redrive (a redriven dead webhook is sent again).
DELIVER_WEBHOOK = Stage("webhook", "orders.webhook.deliver", "webhooks", "order.webhook")

STAGES: tuple[Stage, ...] = (PROCESS, ENRICH, FINALIZE)  # the forward chain, in order
COMPENSATIONS: tuple[Stage, ...] = (REFUND,)
NOTIFICATIONS: tuple[Stage, ...] = (DELIVER_WEBHOOK,)
ALL_STAGES: tuple[Stage, ...] = STAGES + COMPENSATIONS + NOTIFICATIONS
STAGE_BY_NAME = {s.name: s for s in ALL_STAGES}
STAGE_BY_TASK = {s.task: s for s in ALL_STAGES}
STAGE_BY_QUEUE = {s.queue: s for s in ALL_STAGES}


class Step(StrEnum):
    """History entries written outside the chain's stages (the `stage` column's other values)."""

    API = "api"  # accepted by POST /orders
    OUTBOX = "outbox"  # published by the fast path or the relay
    DLQ = "dlq"  # archived from the dead-letter queue
    CANCEL = "cancel"  # POST /orders/{id}/cancel (or the admin's action)


def order_chain(order_id: str) -> Signature:
    """The chain one order is published as: every stage in order, each task returning the order id for
    the next (the first gets it as its argument)."""
    first, *rest = STAGES
    return chain(
        current_app.signature(first.task, args=[order_id], immutable=True),
        *(current_app.signature(stage.task) for stage in rest),
    )


class OutboxKind(StrEnum):
    """What an outbox row asks to publish."""

    ORDER_CREATED = "order.created"  # the forward chain
    REFUND_REQUESTED = "order.refund"  # the refund stage
    WEBHOOK = "order.webhook"  # one webhook event's delivery (payload: {"event_id": ...})
    # `order.resume.<stage>`: the reconciler re-publishing an order's stage (and the rest of its chain)


def resume_kind(stage: Stage) -> str:
    return f"order.resume.{stage.name}"


def chain_from(stage: Stage, order_id: str) -> Signature:
    """`stage`'s message for the order and, for a forward stage, the rest of the chain after it."""
    if stage not in STAGES:
        return current_app.signature(stage.task, args=[order_id])
    first, *rest = STAGES[STAGES.index(stage) :]
    return chain(
        current_app.signature(first.task, args=[order_id], immutable=True),
        *(current_app.signature(s.task) for s in rest),
    )


def outbox_message(kind: str, order_id: str, payload: dict | None = None) -> Signature:
    """The message an outbox row of `kind` (and its `payload`) stands for."""
    if kind == OutboxKind.WEBHOOK:
        return current_app.signature(DELIVER_WEBHOOK.task, args=[order_id, (payload or {})["event_id"]])
    if kind == OutboxKind.REFUND_REQUESTED:
        return chain_from(REFUND, order_id)
    if kind.startswith("order.resume."):
        return chain_from(STAGE_BY_NAME[kind.removeprefix("order.resume.")], order_id)
    return order_chain(order_id)
