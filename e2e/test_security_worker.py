"""Issue: security. Workers accept JSON only: a pickled task message is never deserialized nor
executed, and RabbitMQ dead-letters it (read back over AMQP from `orders.dlq`), with a real worker."""

import os
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from kombu import Connection, Producer

from clients.models import DEFAULT_CLIENT_ID
from conftest import queue_messages
from devtools.procs import wait_until
from orders import topology
from orders.dead_letters import dead_letter_archive
from orders.models import Order, OrderHistory, OrderItem, OrderStatus
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e

PROCESS = topology.STAGE_BY_TASK["orders.process"]


class Canary:
    """Unpickling this creates a directory: proof that nobody deserialized the message."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def pending_order() -> Order:
    """A real pending order, written without an outbox row so nothing else publishes it."""
    order = Order.objects.create(client_id=DEFAULT_CLIENT_ID, customer_id="sec", source="api")
    OrderItem.objects.create(order=order, sku="ABC", qty=1)
    return order


def publish(body, *, serializer: str, headers: dict | None) -> None:
    with Connection(settings.CELERY_BROKER_URL) as conn:
        Producer(conn.channel()).publish(
            body,
            serializer=serializer,
            exchange=topology.ORDERS_EXCHANGE.name,
            routing_key=PROCESS.routing_key,
            headers=headers or {},
            delivery_mode=2,
        )


def celery_headers(task_id: str, order_id: str) -> dict:
    """Protocol 2 headers, as `apply_async` writes them."""
    return {
        "lang": "py",
        "task": PROCESS.task,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "argsrepr": repr([order_id]),
        "kwargsrepr": "{}",
        "origin": "e2e-security",
    }


def dlq_depth() -> int:
    with Connection(settings.CELERY_BROKER_URL) as conn:
        return conn.channel().queue_declare(topology.DEAD_LETTER_QUEUE_NAME, passive=True).message_count


@pytest.fixture
def canary_path(tmp_path) -> Path:
    return tmp_path / f"unpickled-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("with_task_headers", [True, False], ids=["protocol2-headers", "no-headers"])
def test_pickled_task_message_is_not_executed_and_is_dead_lettered(processes, canary_path, with_task_headers):
    # given: a worker on the process queue and two real pending orders
    catalog_create()
    worker = processes.worker("process")
    target, control = pending_order(), pending_order()
    task_id = str(uuid.uuid4())
    body = (
        [str(target.id)],
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None, "canary": Canary(str(canary_path))},
    )
    if not with_task_headers:  # protocol 1 shape: everything in the (pickled) body
        body = {
            "task": PROCESS.task,
            "id": task_id,
            "args": [str(target.id)],
            "kwargs": {},
            "canary": Canary(str(canary_path)),
        }

    # when: a pickled message for the target is published to the process queue
    publish(body, serializer="pickle", headers=celery_headers(task_id, str(target.id)) if with_task_headers else None)
    # and: a JSON task for the control order after it (proves the worker kept consuming)
    from orders_project.celery import app

    app.send_task(PROCESS.task, args=[str(control.id)])

    # then: the control order is processed, the pickled one is dead-lettered
    wait_until(
        lambda: Order.objects.get(id=control.id).status == OrderStatus.PROCESSING,
        timeout=30,
        what="control order processed",
    )
    wait_until(lambda: dlq_depth() >= 1, timeout=15, what="pickled message in the DLQ")
    # the pickled message has left the process queue for the DLQ: no worker can take it any more, so the
    # target's state below is final
    target.refresh_from_db()
    assert target.status == OrderStatus.PENDING
    assert not OrderHistory.objects.filter(order=target, stage="process").exists()
    assert not canary_path.exists(), "the worker unpickled the message"

    letters = queue_messages(topology.DEAD_LETTER_QUEUE_NAME)
    assert len(letters) == 1
    letter = letters[0]
    assert letter.content_type == "application/x-python-serialize"
    death = letter.headers["x-death"][0]
    assert (death["reason"], death["queue"]) == ("rejected", PROCESS.queue)
    if with_task_headers:
        assert letter.headers["id"] == task_id
    assert "ContentDisallowed" in worker.output() or "Refusing to deserialize" in worker.output()

    # and: the archiver keeps it as undecodable without touching any order (it cannot read the order id)
    dead_letter, created = dead_letter_archive(
        body=letter.body,
        headers=dict(letter.headers),
        properties={"content_type": letter.content_type},
        content_type=letter.content_type,
    )
    assert created and dead_letter.exception == "UndecodableMessage" and dead_letter.order_id is None
    assert not canary_path.exists()
    target.refresh_from_db()
    assert target.status == OrderStatus.PENDING
