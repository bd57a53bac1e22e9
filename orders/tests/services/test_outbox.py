"""Publishing the outbox rows (orders/services/outbox.py): the relay's batches and the fast path, each row
exactly once, rows left unsent (and retried) when the broker stops answering; and the relay process
(orders/management/commands/relay_outbox.py) that runs the batches. The AMQP side: test_publisher.py."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import queue_messages, subprocess_env
from orders.models import Order, OutboxMessage
from orders.services import outbox_relay_batch
from orders.tests.factories import create_orders_while_broker_is_down

# the relay's LISTEN is on the `direct` alias (a session of its own, never through a transaction pooler)
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "direct"])
ROOT = Path(__file__).resolve().parents[3]


def published_order_ids(messages) -> list[str]:
    return [json.loads(m.body)[0][0] for m in messages]


def test_unpublished_row_is_published_by_the_relay_exactly_once(clean_queues):
    # given: an order committed but never published
    create_orders_while_broker_is_down(1)
    order = Order.objects.get()
    row = OutboxMessage.objects.get(order=order)
    assert row.published_at is None and row.publish_attempts == 1 and row.last_error
    assert queue_messages("process") == []
    # when: the relay runs twice
    first = outbox_relay_batch(grace_seconds=0, batch_size=10)
    second = outbox_relay_batch(grace_seconds=0, batch_size=10)
    # then
    messages = queue_messages("process")
    assert (first, second) == (1, 0)
    assert published_order_ids(messages) == [str(order.id)]
    assert messages[0].headers["task"] == "orders.process"
    row.refresh_from_db()
    assert row.published_at is not None and row.publish_attempts == 2
    published = order.history.get(event="published")
    assert (published.stage, published.detail, published.created_at) == ("outbox", {"via": "relay"}, row.published_at)


def test_relay_leaves_rows_inside_the_grace_period(clean_queues):
    create_orders_while_broker_is_down(1)
    assert outbox_relay_batch(grace_seconds=3600, batch_size=10) == 0
    assert queue_messages("process") == []


def test_two_relays_at_once_publish_each_row_once(clean_queues):
    # given
    create_orders_while_broker_is_down(40)
    counts, barrier = [], threading.Barrier(2)

    def relay():
        from django.db import connection

        barrier.wait()
        counts.append(outbox_relay_batch(grace_seconds=0, batch_size=100))
        connection.close()

    # when
    threads = [threading.Thread(target=relay) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then
    ids = published_order_ids(queue_messages("process"))
    assert sum(counts) == 40
    assert len(ids) == 40 and len(set(ids)) == 40
    assert set(ids) == {str(i) for i in Order.objects.values_list("id", flat=True)}
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()


def test_relay_command_once_publishes_backlog(clean_queues):
    from django.core.management import call_command

    create_orders_while_broker_is_down(3)
    call_command("relay_outbox", "--once", "--grace", "0", "--heartbeat-file", "")
    assert len(queue_messages("process")) == 3


def test_post_publishes_nothing_itself_by_default_and_its_commit_wakes_the_relay(api_client, clean_queues):
    # given: the relay's LISTEN connection
    from orders.management.commands.relay_outbox import OutboxWakeup
    from orders.services import OUTBOX_CHANNEL

    wakeup = OutboxWakeup(OUTBOX_CHANNEL)
    try:
        assert wakeup.wait(0.05) is False
        # when
        response = api_client.post("/orders", {"customer_id": "1", "items": [{"sku": "ABC", "qty": 1}]}, format="json")
        # then: committed with its outbox row, nothing published on the request, the relay woken
        assert response.status_code == 202
        assert queue_messages("process") == []
        assert OutboxMessage.objects.get().published_at is None
        assert wakeup.wait(5) is True
        assert outbox_relay_batch(grace_seconds=0, batch_size=10) == 1
        assert published_order_ids(queue_messages("process")) == [response.json()["order_id"]]
    finally:
        wakeup.close()


def test_one_relay_wake_up_takes_the_notifications_of_every_commit_within_its_linger(api_client, clean_queues):
    # (with no linger, only the notifications already delivered are taken: whether all three are is a race)
    # given: the relay's LISTEN connection, and three orders committed (three notifications)
    from orders.management.commands.relay_outbox import OutboxWakeup
    from orders.services import OUTBOX_CHANNEL

    wakeup = OutboxWakeup(OUTBOX_CHANNEL)
    try:
        assert wakeup.wait(0.05) is False
        for _ in range(3):
            body = {"customer_id": "1", "items": [{"sku": "ABC", "qty": 1}]}
            assert api_client.post("/orders", body, format="json").status_code == 202
        # when: one wake-up with a linger, then one batch
        started = time.monotonic()
        assert wakeup.wait(5, linger=0.2) is True
        lingered = time.monotonic() - started
        assert outbox_relay_batch(grace_seconds=0, batch_size=10) == 3
        # then: it waited out its linger, and no notification is left to wake the relay for an empty outbox
        assert lingered >= 0.2
        assert wakeup.wait(0.05) is False
    finally:
        wakeup.close()


def test_the_relay_publishes_a_stream_of_orders_as_they_come_not_at_its_next_poll(api_client, clean_queues):
    # given: the relay running, polling only every 60 s: only its LISTEN wake-ups can publish promptly
    from devtools.procs import wait_until

    def post() -> None:
        body = {"customer_id": "1", "items": [{"sku": "ABC", "qty": 1}]}
        assert api_client.post("/orders", body, format="json").status_code == 202

    def all_published(n: int) -> bool:
        return OutboxMessage.objects.filter(published_at__isnull=False).count() == n

    env = subprocess_env(OUTBOX_POLL_SECONDS="60", RECONCILE_INTERVAL_SECONDS="0")
    cmd = [sys.executable, "manage.py", "relay_outbox", "--heartbeat-file", ""]
    relay = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        post()
        wait_until(lambda: all_published(1), timeout=30, what="the relay's first batch", interval=0.05)
        # when: orders committed while the relay is publishing earlier ones (its batches are partial)
        for _ in range(20):
            post()
            time.sleep(0.01)
        # then: every one is published within seconds, far below the poll interval
        wait_until(lambda: all_published(21), timeout=10, what="the stream published", interval=0.05)
    finally:
        relay.kill()  # SIGTERM would wait for the end of its 60 s LISTEN wait
        relay.wait(timeout=30)


def test_fast_path_publishes_after_commit(api_client, clean_queues, settings):
    settings.OUTBOX_PUBLISH_INLINE = True
    response = api_client.post("/orders", {"customer_id": "1", "items": [{"sku": "ABC", "qty": 1}]}, format="json")
    assert response.status_code == 202
    assert published_order_ids(queue_messages("process")) == [response.json()["order_id"]]
    assert OutboxMessage.objects.get().published_at is not None


# ---------------------------------------------------------------------------
# A broker that stops answering (blocked publishers, a hang): every wait is bounded
# ---------------------------------------------------------------------------
RELAY_BATCH = """
import json, time, django; django.setup()
from orders import services
started = time.monotonic()
published = services.outbox_relay_batch(grace_seconds=0, batch_size=10)
print(json.dumps({"published": published, "seconds": time.monotonic() - started}))
"""

POST_ORDER = """
import json, time, django; django.setup()
from django.conf import settings
from django.test import Client
started = time.monotonic()
response = Client().post(
    "/orders",
    {"customer_id": "1", "items": [{"sku": "ABC", "qty": 1}]},
    content_type="application/json",
    HTTP_AUTHORIZATION="Bearer " + settings.SECRET_TOKEN,
)
print(json.dumps({"status": response.status_code, "seconds": time.monotonic() - started}))
"""

SHORT_TIMEOUTS = {
    "OUTBOX_CONFIRM_TIMEOUT": "1",
    "OUTBOX_INLINE_TIMEOUT": "1",
    "BROKER_SOCKET_TIMEOUT": "1",
    "CELERY_BROKER_CONNECTION_TIMEOUT": "1",
}


def run_against(broker, code: str, **env) -> dict:
    env = subprocess_env(CELERY_BROKER_URL=broker.url, **SHORT_TIMEOUTS, **env)
    # Without the bounds these calls never return; the subprocess timeout turns that into a failure.
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def stalling_broker(request):
    from orders.tests.stalling_broker import StallingBroker

    broker = StallingBroker(answers=request.param)
    yield broker
    broker.close()


@pytest.mark.parametrize(
    "stalling_broker",
    [0, 3, 5],
    indirect=True,
    ids=["accepts-never-answers", "silent-after-handshake", "never-confirms"],
)
def test_relay_batch_gives_up_in_bounded_time_and_leaves_rows_unsent_when_the_broker_stops_answering(
    stalling_broker, clean_queues
):
    # given: a backlog
    create_orders_while_broker_is_down(2)
    # when: the relay's broker stops answering (before the handshake, after it, or before any confirm)
    batch = run_against(stalling_broker, RELAY_BATCH)
    # then: the batch ends within its bounds, its rows stay unsent with the error, the next batch retries
    assert batch["published"] == 0 and batch["seconds"] < 5
    rows = list(OutboxMessage.objects.all())
    assert all(row.published_at is None and row.publish_attempts == 2 and row.last_error for row in rows)
    assert outbox_relay_batch(grace_seconds=0, batch_size=10) == 2


@pytest.mark.parametrize("stalling_broker", [5], indirect=True, ids=["never-confirms"])
def test_inline_publish_answers_202_in_bounded_time_when_the_broker_never_confirms(stalling_broker, clean_queues):
    # when: a POST whose inline publish gets no confirm (a broker blocking publishers)
    post = run_against(stalling_broker, POST_ORDER, OUTBOX_PUBLISH_INLINE="True")
    # then: accepted within about OUTBOX_INLINE_TIMEOUT; the relay publishes the row later
    assert post["status"] == 202 and post["seconds"] < 3
    row = OutboxMessage.objects.get()
    assert row.published_at is None and row.last_error
    assert outbox_relay_batch(grace_seconds=0, batch_size=10) == 1


@pytest.mark.parametrize("stalling_broker", [0], indirect=True, ids=["accepts-never-answers"])
def test_post_never_touches_the_broker_with_the_default_relay_mode(stalling_broker):
    # when: POST /orders in a process whose broker would hang anyone who talked to it
    post = run_against(stalling_broker, POST_ORDER, OUTBOX_PUBLISH_INLINE="False")
    # then: accepted at once, and the broker never saw a connection
    assert post["status"] == 202 and post["seconds"] < 1
    assert stalling_broker.connections == 0
    assert OutboxMessage.objects.get().published_at is None
