"""The worker's consumer on a cluster of broker nodes (wired in orders_project/celery.py).

Two things Celery 5.7's consumer does badly when its node dies:
- it reconnects with a new connection that starts at the first URL of `broker_url`, the dead node
  included; here the reconnect takes core.broker_nodes's list, which puts the node that failed last;
- before consuming again, its DelayedDelivery step declares the delayed-retry topology on *every* URL of
  the list, three attempts each: 18 s of not consuming after a node is killed, ~45 s while one is silently
  cut off (long enough for RabbitMQ to drop the healthy connection for missed heartbeats, and round it
  goes). The topology is cluster-wide and durable, so declaring it once per worker, over the consumer's own
  live connection, is enough; `manage.py declare_topology` declares it too, before any worker starts.
"""

from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.consumer.delayed_delivery import DelayedDelivery
from kombu.common import Broadcast
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

from core.broker_nodes import broker_nodes, node_of
from core.logging import get_logger

log = get_logger(__name__)


class _OneChannel:
    """kombu's helpers open a channel per call and never close it: give them one, closed after."""

    def __init__(self, connection: Any):
        self._channel = connection.channel()

    def channel(self) -> Any:
        return self._channel

    def close(self) -> None:
        self._channel.close()


def delayed_delivery_declare(connection: Any, queues: Any, *, queue_type: str = "quorum") -> None:
    """Celery's delayed-delivery exchanges and queues, and every work queue bound to them, on one connection."""
    one = _OneChannel(connection)
    try:
        declare_native_delayed_delivery_exchanges_and_queues(one, queue_type)  # type: ignore[arg-type]
        for queue in queues:
            if not isinstance(queue, Broadcast):
                bind_queue_to_native_delayed_delivery_exchange(one, queue)  # type: ignore[arg-type]
    finally:
        one.close()


class DelayedDeliveryOnce(DelayedDelivery):
    """Celery's DelayedDelivery step, over the consumer's own connection, once per worker process: not again on
    each reconnect (while a node is silent, a declare or bind waits until the cluster gives that node up)."""

    done = False

    def start(self, c: Any) -> None:
        if DelayedDeliveryOnce.done:
            return
        app = c.app
        self._validate_configuration(app)  # type: ignore[attr-defined]  # celery-types lack it
        try:
            delayed_delivery_declare(
                c.connection, app.amqp.queues.values(), queue_type=app.conf.broker_native_delayed_delivery_queue_type
            )
            DelayedDeliveryOnce.done = True
        except Exception as exc:  # the consumer goes on; retries then wait until declare_topology has run
            log.warning("delayed_delivery_setup_failed", error=f"{type(exc).__name__}: {exc}")


class Consumer(CeleryConsumer):
    """Reconnects along core.broker_nodes's list and reports the node it is on."""

    class Blueprint(CeleryConsumer.Blueprint):  # type: ignore[misc,valid-type]  # celery-types lack it
        default_steps = [
            "core.celery_cluster:DelayedDeliveryOnce"
            if step == "celery.worker.consumer.delayed_delivery:DelayedDelivery"
            else step
            for step in CeleryConsumer.Blueprint.default_steps
        ]

    def connection_for_read(self, heartbeat: Any = None) -> Any:
        nodes = broker_nodes()
        conn = self.ensure_connected(self.app.connection_for_read(url=nodes.url(), heartbeat=heartbeat))
        nodes.connected(node_of(conn.as_uri()), role="consumer")
        return conn

    def connection_for_write(self, url: Any = None, heartbeat: Any = None) -> Any:
        # The event dispatcher's (worker heartbeats): on the consumer's node, not on the list's first.
        return super().connection_for_write(url=url or broker_nodes().url(), heartbeat=heartbeat)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        if self.connection is not None:
            broker_nodes().failed(node_of(self.connection.as_uri()))
        super().on_connection_error_after_connected(exc)
