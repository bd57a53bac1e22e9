"""The RabbitMQ topology, named once.

Celery's settings (queues, routes) and `manage.py declare_topology` both read from here,
so what the set-up declares and what workers expect can never drift apart.
See docs/pipeline.md "Failure handling" for the dead-letter design.
"""

from kombu import Exchange, Queue

# The stages are defined once, in orders/pipeline.py; their queues and routes are declared here.
from orders.pipeline import ALL_STAGES, STAGE_BY_QUEUE, STAGE_BY_TASK, STAGES  # noqa: F401  (re-exported)

ORDERS_EXCHANGE = Exchange("orders", type="topic", durable=True)
# Dead letters from every stage land in one DLQ; x-death says which queue they came from.
DEAD_LETTER_EXCHANGE = Exchange("orders.dlx", type="topic", durable=True)
DEAD_LETTER_QUEUE_NAME = "orders.dlq"


def work_queue_arguments(delivery_limit: int, *, dead_letter_exchange: str = DEAD_LETTER_EXCHANGE.name) -> dict:
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": dead_letter_exchange,
        # Quorum queues dead-letter at-most-once unless told otherwise; at-least-once needs reject-publish.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        # A message that kills every worker that takes it stops after this many redeliveries.
        "x-delivery-limit": delivery_limit,
    }


def work_queues(delivery_limit: int, *, no_declare: bool = False) -> list[Queue]:
    """The stage queues. Celery gets them with `no_declare`: declare_topology owns them, and a publisher or
    worker re-declaring (and re-binding) on each new connection waited ~net_ticktime for a silent node."""
    args = work_queue_arguments(delivery_limit)
    return [
        Queue(
            s.queue,
            ORDERS_EXCHANGE,
            routing_key=s.routing_key,
            durable=True,
            queue_arguments=args,
            no_declare=no_declare,
        )
        for s in ALL_STAGES
    ]


def dead_letter_queue_arguments(*, max_length: int = 0, max_bytes: int = 0) -> dict:
    """A bounded DLQ that never drops: when full it refuses new dead letters (`reject-publish`; the
    default, `drop-head`, would silently discard the oldest), and since the work queues dead-letter
    at-least-once, a refused dead letter stays in its source queue, retried until the archiver makes room."""
    args: dict[str, str | int] = {"x-queue-type": "quorum"}
    if max_length:
        args["x-max-length"] = max_length
    if max_bytes:
        args["x-max-length-bytes"] = max_bytes
    if max_length or max_bytes:
        args["x-overflow"] = "reject-publish"
    return args


def dead_letter_queue(
    *,
    max_length: int = 0,
    max_bytes: int = 0,
    name: str = DEAD_LETTER_QUEUE_NAME,
    exchange: Exchange = DEAD_LETTER_EXCHANGE,
) -> Queue:
    return Queue(
        name,
        exchange,
        routing_key="#",
        durable=True,
        queue_arguments=dead_letter_queue_arguments(max_length=max_length, max_bytes=max_bytes),
    )


def task_routes() -> dict:
    return {
        s.task: {"queue": s.queue, "exchange": ORDERS_EXCHANGE.name, "routing_key": s.routing_key} for s in ALL_STAGES
    }
