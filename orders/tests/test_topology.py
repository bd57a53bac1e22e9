"""The topology's DLQ bound (orders/topology.py) and declare_topology
(orders/management/commands/declare_topology.py) on a live queue, in this test run's own vhost of the
real RabbitMQ."""

import io
import shutil
import subprocess
import time
from typing import cast

import pytest
from amqp.channel import Channel
from django.conf import settings
from django.core.management import call_command
from kombu import Connection, Exchange, Queue

from devtools.procs import wait_until
from orders import topology


def queue_lengths(vhost: str) -> dict[str, int]:
    out = subprocess.run(
        [shutil.which("rabbitmqctl"), "list_queues", "-q", "-p", vhost, "name", "messages"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = (line.split("\t") for line in out.splitlines() if "\t" in line)
    return {name: int(count) for name, count in rows if count.isdigit()}


def get_one(channel, queue: str, timeout: float = 5.0):
    """The next message of `queue` (a quorum queue takes a moment to commit a publish)."""
    deadline = time.monotonic() + timeout
    while (message := channel.basic_get(queue, no_ack=False)) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # paces the poll
    return message


@pytest.fixture
def bounded_dead_lettering(rabbitmq_vhost):
    """A work queue dead-lettering (as the real ones do) into a DLQ bounded to 2 messages."""
    dlx = Exchange("test.bounded.dlx", type="topic", durable=True)
    with Connection(settings.CELERY_BROKER_URL) as conn:
        channel = conn.channel()
        dlx(channel).declare()
        topology.dead_letter_queue(max_length=2, name="test.bounded.dlq", exchange=dlx)(channel).declare()
        source = Queue(
            "test.bounded.work",
            Exchange(""),
            routing_key="test.bounded.work",
            durable=True,
            queue_arguments=topology.work_queue_arguments(3, dead_letter_exchange=dlx.name),
        )
        source(channel).declare()
        yield conn, channel
        for name in ("test.bounded.dlq", "test.bounded.work"):
            cast(Channel, channel).queue_delete(name)  # stubs: StdChannel; run time: amqp Channel
        cast(Channel, channel).exchange_delete(dlx.name)


def test_a_full_dlq_refuses_dead_letters_and_their_source_queue_keeps_them(bounded_dead_lettering, rabbitmq_vhost):
    conn, channel = bounded_dead_lettering
    # given: six messages rejected by a worker
    producer = conn.Producer(channel)
    for n in range(6):
        producer.publish({"n": n}, routing_key="test.bounded.work", exchange="")
    for _ in range(6):
        message = get_one(channel, "test.bounded.work")
        channel.basic_reject(message.delivery_tag, requeue=False)

    # then: the DLQ stopped near its bound (quorum queues check it asynchronously) instead of dropping
    # its oldest, and every dead letter it refused is still held by its source queue (rabbitmqctl's
    # counts include the messages waiting to be dead-lettered; they lag by a few seconds)
    def all_six_counted() -> dict[str, int] | None:
        lengths = queue_lengths(rabbitmq_vhost)
        return lengths if lengths.get("test.bounded.dlq", 0) + lengths.get("test.bounded.work", 0) == 6 else None

    # once a second: each rabbitmqctl call starts an Erlang VM
    lengths = wait_until(
        all_six_counted, timeout=20, interval=1, what="the six dead letters counted in the DLQ or their source"
    )
    assert 2 <= lengths["test.bounded.dlq"] < 6
    assert lengths["test.bounded.dlq"] + lengths["test.bounded.work"] == 6


def test_dlq_arguments_bound_it_with_reject_publish():
    args = topology.dead_letter_queue(max_length=10, max_bytes=1000).queue_arguments
    assert args == {
        "x-queue-type": "quorum",
        "x-max-length": 10,
        "x-max-length-bytes": 1000,
        "x-overflow": "reject-publish",
    }
    # every work queue dead-letters at-least-once, which RabbitMQ allows only with reject-publish on it
    work = topology.work_queue_arguments(3)
    assert (work["x-dead-letter-strategy"], work["x-overflow"]) == ("at-least-once", "reject-publish")


def test_declare_topology_keeps_a_live_dlq_with_other_arguments_and_prints_the_policy_to_apply(rabbitmq_vhost):
    # given: a DLQ declared before it had a bound (an existing deployment)
    with Connection(settings.CELERY_BROKER_URL) as conn:
        channel = conn.channel()
        cast(Channel, channel).queue_delete(
            topology.DEAD_LETTER_QUEUE_NAME
        )  # stubs: StdChannel; run time: amqp Channel
        topology.dead_letter_queue()(channel).declare()
        try:
            # when
            out, err = io.StringIO(), io.StringIO()
            call_command("declare_topology", stdout=out, stderr=err)
            # then: set-up goes on (every process can start), says how to apply the bound, keeps the binding
            assert "topology declared" in out.getvalue()
            assert f"queue {topology.DEAD_LETTER_QUEUE_NAME} exists with other arguments" in err.getvalue()
            assert (
                f'"max-length": {settings.DLQ_MAX_LENGTH}' in err.getvalue()
                and '"overflow": "reject-publish"' in err.getvalue()
            )
            conn.Producer(channel).publish({}, exchange=topology.DEAD_LETTER_EXCHANGE.name, routing_key="process")
            assert get_one(channel, topology.DEAD_LETTER_QUEUE_NAME) is not None
        finally:
            cast(Channel, channel).queue_delete(topology.DEAD_LETTER_QUEUE_NAME)
            call_command("declare_topology", stdout=io.StringIO())
