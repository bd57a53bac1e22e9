"""The process's broker node list (core/broker_nodes.py): the order nodes are tried in, the node each
connection role is on, and the failover metrics, against the system RabbitMQ (127.0.0.1:5672) with a dead
port and a loopback proxy standing in for the other nodes of a cluster."""

import json
import random
import time
from collections.abc import Iterator

import pytest
from django.conf import settings
from kombu import Connection
from kombu.exceptions import OperationalError
from prometheus_client import REGISTRY

from conftest import queue_messages
from core import broker_nodes as broker_nodes_module
from core.broker_nodes import BrokerNodes, broker_connect, node_of, urls_shuffled
from orders import publisher as amqp
from orders.pipeline import OutboxKind, outbox_message
from orders.tests.stalling_broker import StallingBroker

DEAD = "127.0.0.1:1"  # nothing listens there: the connect is refused at once
LIVE = "127.0.0.1:5672"  # the system broker


def node_url(node: str) -> str:
    """The tests' vhost on `node`, with the system broker's credentials."""
    real = Connection(settings.CELERY_BROKER_URL)
    return f"amqp://{real.userid}:{real.password}@{node}/{real.virtual_host}"


def failovers(role: str) -> float:
    return REGISTRY.get_sample_value("broker_failovers_total", {"role": role}) or 0.0


def connected_gauge(role: str, node: str) -> float | None:
    return REGISTRY.get_sample_value("broker_connected_node", {"role": role, "node": node})


@pytest.fixture
def process_nodes(monkeypatch) -> Iterator:
    """Replace the process's list (core.broker_nodes caches one per process) with the test's own; the
    thread's kept publisher is dropped before and after, so every test opens its own connection."""

    def use(*nodes: str) -> BrokerNodes:
        listed = BrokerNodes(";".join(node_url(n) for n in nodes))
        monkeypatch.setattr(broker_nodes_module, "_nodes", listed)
        return listed

    def drop_publisher() -> None:
        publisher = amqp._publishers.__dict__.pop("publisher", None)
        if publisher is not None:
            publisher.close(node_failed=False)

    drop_publisher()
    yield use
    drop_publisher()


# --- the list itself --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, node",
    [
        ("amqp://guest:guest@10.78.0.2:5672/orders_test", "10.78.0.2:5672"),
        ("amqp://guest:guest@rabbit-1:5673//", "rabbit-1:5673"),
        ("amqp://guest:guest@rabbit-2/", "rabbit-2:5672"),
        ("amqp://guest:**@127.0.0.1:5672/orders_test", "127.0.0.1:5672"),
    ],
)
def test_node_of_names_a_node_by_host_and_port_with_5672_by_default(url: str, node: str) -> None:
    assert node_of(url) == node


def test_urls_shuffled_keeps_every_url_once_and_drops_empty_entries() -> None:
    urls = [f"amqp://guest:guest@10.78.0.{i}:5672/v" for i in range(1, 6)]
    # given: a list with stray separators and spaces
    raw = " ; ".join(urls) + ";;"
    orders = set()
    for seed in range(20):
        # when
        shuffled = urls_shuffled(raw, rng=random.Random(seed)).split(";")
        # then: the same URLs, each once, in some order
        assert sorted(shuffled) == sorted(urls)
        orders.add(tuple(shuffled))
    assert len(orders) > 1  # it does reorder
    assert urls_shuffled(urls[0]) == urls[0]


def test_a_failed_node_goes_last_and_the_others_keep_their_order() -> None:
    # given
    nodes = BrokerNodes("amqp://u:p@a:5672//;amqp://u:p@b:5672//;amqp://u:p@c:5672//")
    # when
    nodes.failed("a:5672")
    # then
    assert nodes.nodes == ["b:5672", "c:5672", "a:5672"]
    assert nodes.url() == "amqp://u:p@b:5672//;amqp://u:p@c:5672//;amqp://u:p@a:5672//"
    # when: then b fails, and a node not on the list
    nodes.failed("b:5672")
    nodes.failed("z:5672")
    # then
    assert nodes.nodes == ["c:5672", "a:5672", "b:5672"]


def test_a_single_node_stays_when_it_fails() -> None:
    nodes = BrokerNodes("amqp://u:p@a:5672//")
    nodes.failed("a:5672")
    assert nodes.url() == "amqp://u:p@a:5672//"


def test_a_failover_is_counted_only_when_a_role_moves_to_another_node(process_nodes) -> None:
    # given: the process's list (the gauges are labelled with its nodes)
    nodes = process_nodes(DEAD, LIVE)
    before = failovers("consumer"), failovers("publisher")
    # when: the first connection of each role, a reconnect to the same node, then a move
    nodes.connected(DEAD, role="consumer")
    nodes.connected(LIVE, role="publisher")
    nodes.connected(DEAD, role="consumer")
    assert nodes.failovers == 0
    nodes.connected(LIVE, role="consumer")
    # then: one move, of the consumer; each role's node and gauge say where it is
    assert nodes.failovers == 1
    assert nodes.node_by_role == {"consumer": LIVE, "publisher": LIVE}
    assert (failovers("consumer"), failovers("publisher")) == (before[0] + 1, before[1])
    assert (connected_gauge("consumer", LIVE), connected_gauge("consumer", DEAD)) == (1.0, 0.0)


# --- connections along the list, on the real broker ---------------------------------------------------------


def test_broker_connect_skips_a_dead_first_node_and_records_the_live_one(process_nodes) -> None:
    # given: the first node refuses connections
    nodes = process_nodes(DEAD, LIVE)
    # when
    conn = broker_connect(role="test-connect")
    try:
        # then: connected to the second node, and usable
        assert node_of(conn.as_uri()) == LIVE
        conn.default_channel.queue_declare("process", passive=True)
        assert nodes.node_by_role["test-connect"] == LIVE
        assert (connected_gauge("test-connect", LIVE), connected_gauge("test-connect", DEAD)) == (1.0, 0.0)
        assert nodes.failovers == 0  # the role's first connection is no move
    finally:
        conn.release()


def test_the_next_connection_starts_at_the_node_that_worked(process_nodes) -> None:
    # given: the first node refuses connections
    nodes = process_nodes(DEAD, LIVE)
    # when
    broker_connect(role="test-connect").release()
    # then: the node that answered leads the list (a silent first node would cost a connect timeout each time)
    assert nodes.nodes == [LIVE, DEAD]
    assert nodes.url().startswith(node_url(LIVE))


def test_broker_connect_fails_fast_when_no_node_answers(process_nodes) -> None:
    process_nodes(DEAD, "127.0.0.1:2")
    started = time.monotonic()
    with pytest.raises(OperationalError, match="refused"):
        broker_connect(role="test-connect", connect_timeout=1)
    assert time.monotonic() - started < 5  # each node tried once, no back-off between them


@pytest.mark.django_db(transaction=True)
def test_publisher_moves_to_the_next_node_when_its_node_dies_and_counts_the_failover(
    process_nodes, clean_queues
) -> None:
    # given: a dead first node, a node A (a loopback proxy to the real broker) and the real broker as node B
    node_a = StallingBroker(answers=10**9)
    try:
        a = f"127.0.0.1:{node_a.port}"
        nodes = process_nodes(DEAD, a, LIVE)
        moved_before = failovers("publisher")
        first, second = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
        # when: a batch published (the dead node skipped), node A dies, and the next batch is published
        amqp.messages_publish_confirmed([outbox_message(OutboxKind.ORDER_CREATED, first)], timeout=5)
        on_a = nodes.node_by_role["publisher"]
        node_a.close()
        amqp.messages_publish_confirmed([outbox_message(OutboxKind.ORDER_CREATED, second)], timeout=5)
    finally:
        node_a.close()
    # then: the first batch went through A, the second through B after one failover, A now last
    assert on_a == a
    assert nodes.node_by_role["publisher"] == LIVE
    assert failovers("publisher") == moved_before + 1
    assert (connected_gauge("publisher", LIVE), connected_gauge("publisher", a)) == (1.0, 0.0)
    assert nodes.nodes == [LIVE, DEAD, a]  # the node that works first, the one that died last
    published = [json.loads(m.body)[0][0] for m in queue_messages("process")]
    assert sorted(set(published)) == [first, second]
