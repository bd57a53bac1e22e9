"""Broker failover on the tests' own three-node RabbitMQ cluster (devtools/cluster.py with CLUSTER_NAME=ote,
10.78.0.0/16; `make cluster`'s opc cluster is never touched): a worker whose node is killed keeps consuming,
a relay whose node dies mid-batch loses and doubles nothing, and a new publisher connection gets past a
silent first node within its connect timeout.

Every cluster action runs `python -m devtools.cluster` in a subprocess with the ote environment (the module
reads CLUSTER_* at import). Needs root and `ip netns`: skipped otherwise."""

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from django.conf import settings
from django.db import connections
from django.db.models import Sum

from clients.models import DEFAULT_CLIENT_ID
from conftest import subprocess_env
from devtools.procs import Proc, wait_until
from e2e.chaos_runs import chaos_run_passes
from orders import services
from orders.models import Invoice, Order, OrderHistory, OrderItem, OrderStatus, Product
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
NAME, NET, NODES = "ote", 78, 3
CLUSTER_ENV = {"CLUSTER_NAME": NAME, "CLUSTER_NET": str(NET), "CLUSTER_NODES": str(NODES)}
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8/sbin/rabbitmq-server")
# A worker or relay whose node was killed: reconnect (RST at once), a queue leader elected, the stages run.
AFTER_KILL_BOUND = 60.0


def address(i: int) -> str:
    return f"10.{NET}.0.{i}"


def node_of_address(ip: str) -> int:
    return int(ip.rsplit(".", 1)[1])


def cluster(*args: str, timeout: float = 240) -> str:
    """`python -m devtools.cluster ARGS` on the ote cluster; its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTER_")} | CLUSTER_ENV
    result = subprocess.run(
        [sys.executable, "-m", "devtools.cluster", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"devtools.cluster {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def urls(vhost: str, order: tuple[int, ...] = (1, 2, 3)) -> str:
    """The cluster's `;`-separated list for `vhost`, in the given node order."""
    return ";".join(f"amqp://guest:guest@{address(i)}:5672/{vhost}" for i in order)


def management(method: str, path: str, **kwargs) -> requests.Response:
    """The management API of the first node that answers."""
    error: Exception | None = None
    for i in range(1, NODES + 1):
        try:
            response = requests.request(
                method, f"http://{address(i)}:15672/api/{path}", auth=("guest", "guest"), timeout=5, **kwargs
            )
            response.raise_for_status()
            return response
        except requests.RequestException as exc:
            error = exc
    raise RuntimeError(f"no node's management API answered {method} {path}: {error}")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the tests' RabbitMQ cluster needs root (network namespaces)"
    if not shutil.which("ip") or subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` is not available"
    if not shutil.which("socat"):
        return "socat is not installed (devtools.cluster's forwarders)"
    if not RABBITMQ_SERVER.exists():
        return f"{RABBITMQ_SERVER} not found (Debian's rabbitmq-server 3.10.8)"
    return None


def _every_node_whole() -> None:
    for i in range(1, NODES + 1):
        cluster("heal", str(i))
        cluster("start", str(i))


@pytest.fixture(scope="module")
def ote_cluster() -> Iterator[None]:
    """The tests' three-node cluster: started here unless already up, and then taken down after the module;
    one that was already up is healed and has every node started again, before and after."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    started = "cluster: up" not in cluster("status")
    try:
        if started:
            cluster("down")  # what a killed run of this module left of the ote cluster, if anything
            cluster("up", "--hosts", "2")  # two application hosts: the small cluster chaos run below
        else:
            _every_node_whole()
        yield
    finally:
        if started:
            cluster("down")
        else:
            _every_node_whole()


@pytest.fixture
def cluster_vhost(ote_cluster) -> Iterator[str]:
    """A fresh vhost on the cluster for guest, deleted after the test."""
    vhost = f"ote-{uuid.uuid4().hex[:8]}"
    management("PUT", f"vhosts/{vhost}")
    management("PUT", f"permissions/{vhost}/guest", json={"configure": ".*", "write": ".*", "read": ".*"})
    yield vhost
    with contextlib.suppress(Exception):
        management("DELETE", f"vhosts/{vhost}")


def topology_declare(vhost: str, *, on: int) -> None:
    """`manage.py declare_topology` connected to node `on`: the quorum queues' leaders are placed there."""
    order = (on, *(i for i in range(1, NODES + 1) if i != on))
    env = subprocess_env(CELERY_BROKER_URL=urls(vhost, order), BROKER_URL_SHUFFLE="False")
    result = subprocess.run(
        [sys.executable, "manage.py", "declare_topology"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    leader = management("GET", f"queues/{vhost}/process").json().get("leader", "")
    assert leader == f"rabbit@{NAME}-rmq{on}", leader


def broker_env(vhost: str, order: tuple[int, ...]) -> dict:
    """A process's environment for the cluster: the list in this order, kept (so the test knows its node)."""
    return {"CELERY_BROKER_URL": urls(vhost, order), "BROKER_URL_SHUFFLE": "False"}


def connected_nodes(proc: Proc, *, children: bool = False) -> set[int]:
    """The cluster nodes the process (and its pool children) has AMQP connections open to."""
    nodes = set()
    with contextlib.suppress(psutil.Error):
        main = psutil.Process(proc.pid)
        for p in [main, *(main.children(recursive=True) if children else [])]:
            with contextlib.suppress(psutil.Error):
                for conn in p.net_connections(kind="tcp"):
                    if conn.raddr and conn.raddr.port == 5672 and conn.status == psutil.CONN_ESTABLISHED:
                        if conn.raddr.ip.startswith(f"10.{NET}.0."):
                            nodes.add(node_of_address(conn.raddr.ip))
    return nodes


def orders_create(n: int, *, customer: str) -> list[str]:
    ids = []
    for k in range(n):
        result = services.order_create(
            client_id=DEFAULT_CLIENT_ID,
            customer_id=f"{customer}-{k}",
            source="api",
            items=[services.ItemIn("ABC", 1 + k % 3), services.ItemIn("Notebook", 1)],
            request_hash="h",
        )
        ids.append(str(result.order.id))
    return ids


def wait_completed(ids: list[str], *, timeout: float, what: str) -> None:
    def done() -> bool:
        return Order.objects.filter(id__in=ids, status=OrderStatus.COMPLETED).count() == len(ids)

    try:
        wait_until(done, timeout=timeout, interval=0.5, what=what)
    except TimeoutError:
        statuses = Counter(Order.objects.filter(id__in=ids).values_list("status", flat=True))
        raise AssertionError(f"{what}: not every order completed in {timeout}s: {dict(statuses)}") from None


def failover_lines(proc: Proc, role: str) -> list[str]:
    return [line for line in proc.output().splitlines() if "broker_failover" in line and f"role={role}" in line]


def test_worker_keeps_consuming_after_its_node_is_killed(ote_cluster, cluster_vhost, processes):
    # given: the whole pipeline on node 1, which also leads every queue (the facts' worst case)
    topology_declare(cluster_vhost, on=1)
    catalog_create()
    procs = processes.pipeline(env=broker_env(cluster_vhost, (1, 2, 3)))
    wait_completed(orders_create(2, customer="warm"), timeout=60, what="orders before the kill")
    nodes = connected_nodes(procs["process"])
    assert len(nodes) == 1, f"the process worker's consumer should be on one node: {nodes}"
    killed = nodes.pop()
    try:
        # when: its node is killed -9, and orders are created right after
        cluster("kill", str(killed))
        killed_at = time.monotonic()
        ids = orders_create(10, customer="after-kill")
        # then: every one completes within the bound, through a worker that moved to another node
        wait_completed(ids, timeout=AFTER_KILL_BOUND, what="orders created after the kill")
        took = time.monotonic() - killed_at
        lines = wait_until(
            lambda: failover_lines(procs["process"], "consumer"), timeout=10, what="the worker's broker_failover"
        )
        assert f"previous={address(killed)}:5672" in lines[-1], lines
        assert connected_nodes(procs["process"]) - {killed}, "the worker is not connected to another node"
        assert killed not in connected_nodes(procs["process"])
        print(f"orders created after the kill completed in {took:.1f}s; {lines[-1]}")
    finally:
        cluster("start", str(killed))


def test_relay_whose_node_dies_mid_batch_publishes_every_order_once_in_effect(ote_cluster, cluster_vhost, processes):
    # given: queues led by node 2 and the workers there, the relay on node 1
    topology_declare(cluster_vhost, on=2)
    catalog_create()
    procs = processes.pipeline(env=broker_env(cluster_vhost, (2, 3, 1)), relay=False)
    relay = processes.relay(env=broker_env(cluster_vhost, (1, 2, 3)))
    warm = orders_create(2, customer="warm")
    wait_completed(warm, timeout=60, what="orders before the kill")
    relay_nodes = connected_nodes(relay)
    assert relay_nodes == {1}, f"the relay should publish through node 1: {relay_nodes}"
    assert all(connected_nodes(procs[name]) == {2} for name in ("process", "enrichment", "finalize"))
    # when: orders created continuously (two threads) while the relay's node is killed -9
    created: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def create(worker: int) -> None:
        try:
            n = 0
            while not stop.is_set():
                created.extend(orders_create(1, customer=f"load{worker}-{n}"))
                n += 1
                time.sleep(0.02)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        before_kill = len(created)
        cluster("kill", "1")
        time.sleep(4)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    try:
        assert not errors, errors
        assert before_kill > 0 and len(created) > before_kill, (before_kill, len(created))
        # then: every order completed
        ids = warm + created
        wait_completed(ids, timeout=AFTER_KILL_BOUND + 30, what=f"{len(ids)} orders across the relay's failover")
        lines = wait_until(lambda: failover_lines(relay, "publisher"), timeout=10, what="the relay's broker_failover")
        assert f"previous={address(1)}:5672" in lines[-1], lines
        # and took effect once: one invoice each, one `completed` per stage, stock moved exactly
        assert Invoice.objects.filter(order_id__in=ids).count() == len(ids)
        completed = Counter(
            OrderHistory.objects.filter(order_id__in=ids, event="completed").values_list("stage", flat=True)
        )
        assert completed == {"process": len(ids), "enrich": len(ids), "finalize": len(ids)}, completed
        events = Counter(OrderHistory.objects.filter(order_id__in=ids).values_list("event", flat=True))
        assert set(events) <= {"accepted", "published", "completed", "duplicate_skipped", "retry"}, events
        assert events["published"] == len(ids), events  # each outbox row marked sent once
        abc_qty = OrderItem.objects.filter(order_id__in=ids, sku="ABC").aggregate(total=Sum("qty"))["total"]
        abc, notebook = Product.objects.get(sku="ABC"), Product.objects.get(sku="Notebook")
        assert (abc.stock, abc.reserved) == (1000 - abc_qty, 0)
        assert (notebook.stock, notebook.reserved) == (1000 - len(ids), 0)
        print(
            f"{len(ids)} orders ({len(created) - before_kill} created after the kill), "
            f"duplicates absorbed: {events['duplicate_skipped']}; {lines[-1]}"
        )
    finally:
        cluster("start", "1")


def _isolated_node_stays_silent(i: int) -> None:
    """Isolate takes down the node's end of each link only: the root's end keeps its route, so packets to the
    node are dropped silently and never take the machine's default route (an earlier isolate did)."""
    link = f"{NAME}r-n{i}"
    route = subprocess.run(["ip", "route", "get", address(i)], check=True, capture_output=True, text=True).stdout
    assert f"dev {link}" in route, f"{address(i)} would leave the machine's own links: {route}"


@pytest.fixture
def process_nodes(monkeypatch):
    """This process's broker list (core.broker_nodes caches one per process) replaced by the given one."""
    from core import broker_nodes as broker_nodes_module
    from core.broker_nodes import BrokerNodes

    def use(url: str) -> BrokerNodes:
        nodes = BrokerNodes(url)
        monkeypatch.setattr(broker_nodes_module, "_nodes", nodes)
        return nodes

    return use


@contextlib.contextmanager
def node_isolated(i: int) -> Iterator[None]:
    cluster("isolate", str(i))
    try:
        _isolated_node_stays_silent(i)
        yield
    finally:
        cluster("heal", str(i))


def test_new_publisher_connection_gets_past_a_silent_first_node_within_the_connect_timeout(
    ote_cluster, cluster_vhost, process_nodes
):
    from orders.publisher import _ConfirmedPublisher

    # given: node 1, the list's first, cut off without a word
    nodes = process_nodes(urls(cluster_vhost, (1, 2, 3)))
    bound = settings.CELERY_BROKER_CONNECTION_TIMEOUT + 3.0

    def connect_timed() -> float:
        publisher = _ConfirmedPublisher()
        started = time.monotonic()
        try:
            publisher._open(timeout=10)  # what a relay's or web's first publish does
            return time.monotonic() - started
        finally:
            publisher.close(node_failed=False)

    with node_isolated(1):
        # when: a new publisher connects, then another one
        first = connect_timed()
        second = connect_timed()
    # then: the first waited out node 1's connect timeout and went on to the next node; the next one
    # started at the node that worked
    assert nodes.node_by_role["publisher"] == f"{address(2)}:5672"
    assert first < bound, f"connecting past the silent node took {first:.1f}s (bound {bound}s)"
    assert second < 1.5, f"the next connection tried the silent node again: {second:.1f}s"
    print(f"first connection {first:.2f}s, next {second:.2f}s")


def test_publish_through_a_live_node_is_confirmed_while_another_node_is_silent(
    ote_cluster, cluster_vhost, process_nodes
):
    from orders import publisher as amqp
    from orders.pipeline import OutboxKind, outbox_message

    # given: the queues led by node 2, a new publisher on node 2, node 1 (a queue member) cut off
    topology_declare(cluster_vhost, on=2)
    process_nodes(urls(cluster_vhost, (2, 3, 1)))
    amqp._publishers.__dict__.pop("publisher", None)
    try:
        with node_isolated(1):
            # when
            started = time.monotonic()
            amqp.messages_publish_confirmed([outbox_message(OutboxKind.ORDER_CREATED, str(uuid.uuid4()))], timeout=5)
            took = time.monotonic() - started
    finally:
        publisher = amqp._publishers.__dict__.pop("publisher", None)
        if publisher is not None:
            publisher.close(node_failed=False)
    # then: the two live nodes are a majority of every queue: confirmed at once
    assert took < 2.0, took


def test_small_cluster_chaos_run_loses_and_doubles_nothing(ote_cluster, tmp_path):
    """`make chaos-cluster` in small: the process queue's leader killed and restarted, another node cut off,
    a host with a relay and three workers gone and back, under the chaos load; the checker finds nothing lost,
    doubled or stuck, and every worker that lost its broker consumed again."""
    data = chaos_run_passes(
        "--cluster", "--orders", "300", "--rate", "10", "--quiesce-timeout", "240",
        report=tmp_path / "chaos-cluster.json", log_name="chaos-cluster-smoke.log", timeout=900,
        env={**os.environ, "CLUSTER_NAME": NAME, "CLUSTER_NET": str(NET)},
    )  # fmt: skip
    assert {"node-kill", "node-start", "node-isolate", "node-heal", "host-vanish", "host-back"} <= {
        e["event"] for e in data["events"]
    }
    reconnects = data["worker reconnects (seconds without a broker; None: never back)"]
    assert all(gap is not None for gaps in reconnects.values() for gap in gaps), reconnects
    assert data["failovers"], "no process moved to another node"
    assert data["checks"]["every accepted order exists"]["detail"]["accepted"] >= 200
