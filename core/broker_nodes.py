"""A list of broker nodes, and which one this process is on.

`CELERY_BROKER_URL` takes Celery/kombu's `;`-separated list of a cluster's nodes. kombu always opens a new
connection at the list's first URL and only moves along it when that fails, so every process of a
deployment would pile onto node 1 and, after node 1 dies, each reconnect would try the dead node first.
Here each process shuffles the list once at start (the processes spread over the nodes) and puts a node
that failed it at the end (a reconnect goes to a live node first). Every connection this process opens
(the worker's consumer, the publishers) takes its list from here and reports the node it got.
"""

import contextlib
import random
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from kombu import Connection
from prometheus_client import Counter, Gauge

from core.logging import get_logger

log = get_logger(__name__)


def node_of(url: str) -> str:
    """`host:port` of one broker URL (what the metrics and the diagnostics name a node by)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5672}"


def urls_of(url: str) -> list[str]:
    """The URLs of a `;`-separated list."""
    return [u.strip() for u in url.split(";") if u.strip()]


def urls_shuffled(url: str, *, rng: random.Random | None = None) -> str:
    """The `;`-separated list in a random order (a single URL unchanged)."""
    urls = urls_of(url)
    (rng or random.SystemRandom()).shuffle(urls)
    return ";".join(urls)


class BrokerNodes:
    """This process's view of the broker list: the order to try the nodes in, the node it is connected
    to, and how many times it moved to another node."""

    def __init__(self, url: str):
        self._urls = urls_of(url)
        self._lock = threading.Lock()
        self.node_by_role: dict[str, str] = {}
        self.failovers = 0

    @property
    def nodes(self) -> list[str]:
        return [node_of(u) for u in self._urls]

    def url(self) -> str:
        """The list to connect with: the node this process last connected to first, a node that failed it last."""
        with self._lock:
            return ";".join(self._urls)

    def failed(self, node: str) -> None:
        with self._lock:
            bad = [u for u in self._urls if node_of(u) == node]
            if bad and len(self._urls) > 1:
                self._urls = [u for u in self._urls if node_of(u) != node] + bad

    def connected(self, node: str, *, role: str) -> None:
        """A connection of `role` (consumer, publisher) is up on `node`."""
        with self._lock:
            previous = self.node_by_role.get(role)
            moved = previous is not None and node != previous
            if moved:
                self.failovers += 1
            self.node_by_role[role] = node
            # The process's next connections go to the node that works (one node per process, not one per role).
            self._urls = [u for u in self._urls if node_of(u) == node] + [u for u in self._urls if node_of(u) != node]
        if moved:
            log.warning("broker_failover", role=role, node=node, previous=previous)
        elif previous is None:
            log.info("broker_connected", role=role, node=node)
        _metrics_update(node, role=role, moved=moved)


# Per process (liveall keeps the pid): which node each connection role is on, and its moves.
BROKER_CONNECTED = Gauge(
    "broker_connected_node",
    "1 for the broker node this process's connection of this role is on, 0 for the others",
    ["role", "node"],
    multiprocess_mode="liveall",
)
BROKER_FAILOVERS = Counter("broker_failovers_total", "Times a connection moved to another broker node", ["role"])


def _metrics_update(node: str, *, role: str, moved: bool) -> None:
    for other in broker_nodes().nodes:
        BROKER_CONNECTED.labels(role=role, node=other).set(1 if other == node else 0)
    if moved:
        BROKER_FAILOVERS.labels(role=role).inc()


_nodes: BrokerNodes | None = None


def broker_nodes() -> BrokerNodes:
    """The process's list, from settings.CELERY_BROKER_URL (already shuffled at start)."""
    global _nodes
    if _nodes is None:
        from django.conf import settings

        _nodes = BrokerNodes(settings.CELERY_BROKER_URL)
    return _nodes


def broker_connect(*, role: str, **options: Any) -> Connection:
    """A connection of `role` to the first node of this process's list that answers (each tried once),
    every read and write bounded. Call `broker_drop` with it after an error."""
    from django.conf import settings

    nodes = broker_nodes()
    options.setdefault("connect_timeout", settings.CELERY_BROKER_CONNECTION_TIMEOUT)
    options.setdefault(
        "transport_options",
        {"read_timeout": settings.BROKER_SOCKET_TIMEOUT, "write_timeout": settings.BROKER_SOCKET_TIMEOUT},
    )
    conn = Connection(nodes.url(), **options)
    try:
        conn.ensure_connection(max_retries=max(len(nodes.nodes) - 1, 0), interval_start=0, interval_step=0)
    except Exception:
        broker_drop(conn)
        raise
    nodes.connected(node_of(conn.as_uri()), role=role)
    return conn


def broker_drop(conn: Connection, *, node_failed: bool = True) -> None:
    """After an error: the node goes to the end of the list (unless the node itself is fine), and the connection
    is let go without the close handshake (a node cut off by a partition may not answer it for minutes)."""
    if node_failed:
        broker_nodes().failed(node_of(conn.as_uri()))
    with contextlib.suppress(Exception):
        conn.collect(socket_timeout=0.5)


@contextlib.contextmanager
def broker_connection(*, role: str, **options: Any) -> Iterator[Connection]:
    """`broker_connect` for one piece of work: released after it, dropped after an error."""
    conn = broker_connect(role=role, **options)
    try:
        yield conn
    except BaseException:
        broker_drop(conn)
        raise
    with contextlib.suppress(Exception):
        conn.release()
