"""The outbox's AMQP side (orders/publisher.py): one confirm-mode channel per thread kept across batches,
and a kept connection the broker closed replaced at once."""

import json
import shutil
import subprocess

import pytest

from conftest import queue_messages
from orders.models import OutboxMessage
from orders.services import outbox_relay_batch
from orders.tests.factories import create_orders_while_broker_is_down

pytestmark = pytest.mark.django_db(transaction=True)


def published_order_ids(messages) -> list[str]:
    return [json.loads(m.body)[0][0] for m in messages]


def test_relay_publishes_a_batch_on_its_own_confirm_channel_kept_between_batches(clean_queues):
    # given: a backlog of two batches
    from orders import publisher as amqp

    create_orders_while_broker_is_down(5)
    publisher = amqp._publishers.__dict__.pop("publisher", None)
    if publisher is not None:
        publisher.close()
    # when
    first = outbox_relay_batch(grace_seconds=0, batch_size=3)
    publisher = amqp._publishers.publisher
    channel = publisher.channel
    second = outbox_relay_batch(grace_seconds=0, batch_size=3)
    # then: every message went out on the relay's channel (not a pooled producer) and was confirmed
    assert (first, second) == (3, 2)
    assert publisher.channel is channel and publisher.published == 5
    assert publisher.acked == set() and not publisher.nacked
    assert len(queue_messages("process")) == 5


def test_fast_path_publishes_after_the_broker_closed_its_pooled_connection(
    api_client, clean_queues, rabbitmq_vhost, settings
):
    settings.OUTBOX_PUBLISH_INLINE = True
    # given: the process's pooled broker connection, then closed by the broker (as on missed heartbeats)
    post = lambda: api_client.post("/orders", {"customer_id": "1", "items": [{"sku": "ABC", "qty": 1}]}, format="json")  # noqa: E731
    first = post().json()["order_id"]
    rabbitmqctl = shutil.which("rabbitmqctl")
    subprocess.run(
        [rabbitmqctl, "close_all_connections", "-p", rabbitmq_vhost, "test: stale connection"],
        check=True,
        capture_output=True,
    )
    # when
    second = post().json()["order_id"]
    # then: published at once over a new connection, not left for the relay
    assert published_order_ids(queue_messages("process")) == [first, second]
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()


def test_a_refused_broker_fails_the_publish_at_once_not_after_a_retry_sleep():
    """Nothing listens on the broker's port: the publisher tries its node (and the next, if the list has one) and
    gives up at once. kombu's connect() slept 2 s between the tries: every POST with the inline publish paid it."""
    from conftest import django_subprocess

    code = """
import time, django; django.setup()
from orders.publisher import messages_publish_confirmed
from orders.pipeline import outbox_message
started = time.monotonic()
try:
    messages_publish_confirmed([outbox_message("order.created", "00000000-0000-0000-0000-000000000001", {})], timeout=5)
except Exception as exc:
    print(type(exc).__name__, round(time.monotonic() - started, 3))
"""
    result = django_subprocess(code, CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//")
    name, seconds = result.stdout.strip().splitlines()[-1].split()
    assert name in ("OperationalError", "ConnectionRefusedError"), result.stdout + result.stderr[-2000:]
    assert float(seconds) < 1.0, seconds
