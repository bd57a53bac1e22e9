"""Dead letters shaped exactly like the ones RabbitMQ hands the archiver (Celery protocol 2 + x-death)."""
import json
import uuid
from datetime import datetime, timezone

from orders.dead_letters import dead_letter_archive


def dead_letter_message(*, order_id, task="enrichment.enrich", queue="enrichment", reason="rejected", retries=2, task_id=None):
    task_id = task_id or str(uuid.uuid4())
    chain = [{"task": "orders.finalize", "args": [], "kwargs": {}, "options": {}, "subtask_type": None, "immutable": False}]
    body = json.dumps([[str(order_id)], {}, {"callbacks": None, "errbacks": None, "chain": chain, "chord": None}]).encode()
    now = datetime.now(timezone.utc)
    headers = {
        "task": task,
        "id": task_id,
        "retries": retries,
        "x-death": [{"count": 1, "reason": reason, "queue": queue, "exchange": "orders", "routing-keys": ["x"], "time": now}],
        "x-first-death-reason": reason,
        "x-first-death-queue": queue,
    }
    return {"body": body, "headers": headers, "properties": {"content_type": "application/json"}, "content_type": "application/json"}


def dead_letter_archived(**kwargs):
    return dead_letter_archive(**dead_letter_message(**kwargs))[0]
