"""The worker's consumer on a cluster of broker nodes (wired in settings: CELERY_WORKER_CONSUMER).

Three things Celery 5.7's consumer does badly when its node dies (the third: ControlOnAnyNode):
- it reconnects with a new connection that starts at the first URL of `broker_url`, the dead node
  included; here the reconnect takes core.broker_nodes's list, which puts the node that failed last;
- before consuming again, its DelayedDelivery step declares the delayed-retry topology on *every* URL of
  the list, three attempts each: 18 s of not consuming after a node is killed, ~45 s while one is silently
  cut off (long enough for RabbitMQ to drop the healthy connection for missed heartbeats, and round it
  goes). The topology is cluster-wide and durable, so declaring it once per worker, over the consumer's own
  live connection, is enough; `manage.py declare_topology` declares it too, before any worker starts.
"""

from typing import Any, cast

from celery.app.amqp import AMQP as CeleryAMQP
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.consumer.control import Control
from celery.worker.consumer.delayed_delivery import DelayedDelivery
from kombu import Producer, pools
from kombu.common import Broadcast
from kombu.connection import is_connection
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


class ControlOnAnyNode(Control):
    """Celery's remote control (Flower's inspect, `celery control`) on the worker's pidbox queue, which is
    exclusive and classic: it lives on one node, owned by one connection. After the worker's node went silent,
    the old connection still owns it until the cluster gives that node up (~net_ticktime), so declaring it from
    the new node fails with RESOURCE_LOCKED, which Celery 5.7 takes as unrecoverable: the worker exited (seen).
    Here the worker goes on consuming tasks without remote control meanwhile and tries again every few seconds."""

    RETRY_SECONDS = 5.0

    def __init__(self, c: Any, **kwargs: Any):
        super().__init__(c, **kwargs)
        this = cast(Any, self)  # celery-types know neither `box` nor an instance's `start`
        self._box_start = this.box.start
        this.start = self._start_tolerant  # Control.__init__ made `start` the box's: wrapped here

    def _start_tolerant(self, c: Any) -> None:
        try:
            self._box_start(c)
        except Exception as exc:
            if isinstance(exc, tuple(c.connection_errors)):
                raise  # the connection itself: the consumer reconnects as usual
            log.warning("remote_control_unavailable", error=f"{type(exc).__name__}: {exc}", retry_in=self.RETRY_SECONDS)
            connection = c.connection
            c.timer.call_after(self.RETRY_SECONDS, self._retry, (c, connection))

    def _retry(self, c: Any, connection: Any) -> None:
        if c.connection is not connection or connection is None:
            return  # reconnected meanwhile: that start tried again
        self._start_tolerant(c)


# The event dispatcher's connection: the broker's transport options but publisher confirms.
EVENT_TRANSPORT_OPTIONS = {"confirm_publish": False}

REPLACED_STEPS = {
    "celery.worker.consumer.delayed_delivery:DelayedDelivery": "core.celery_cluster:DelayedDeliveryOnce",
    "celery.worker.consumer.control:Control": "core.celery_cluster:ControlOnAnyNode",
}


class Consumer(CeleryConsumer):
    """Reconnects along core.broker_nodes's list and reports the node it is on."""

    class Blueprint(CeleryConsumer.Blueprint):  # type: ignore[misc,valid-type]  # celery-types lack it
        default_steps = [REPLACED_STEPS.get(step, step) for step in CeleryConsumer.Blueprint.default_steps]

    def connection_for_read(self, heartbeat: Any = None) -> Any:
        nodes = broker_nodes()
        conn = self.ensure_connected(self.app.connection_for_read(url=nodes.url(), heartbeat=heartbeat))
        nodes.connected(node_of(conn.as_uri()), role="consumer")
        return conn

    def connection_for_write(self, url: Any = None, heartbeat: Any = None) -> Any:
        """The event dispatcher's only (worker heartbeats; task events while Flower or WORKER_TASK_EVENTS turns
        them on): on the consumer's node, not on the list's first, and without publisher confirms. With the
        broker's `confirm_publish`, each event waited a broker round trip in the worker's main loop, three
        per task, which dispatches every task (bench/README.md, issue 29). An event lost with a connection
        costs a monitor one state change of a task, never an order's state."""
        conn = self.app.connection_for_write(
            url=url or broker_nodes().url(), heartbeat=heartbeat, transport_options=EVENT_TRANSPORT_OPTIONS
        )
        return self.ensure_connected(conn)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        if self.connection is not None:
            broker_nodes().failed(node_of(self.connection.as_uri()))
        super().on_connection_error_after_connected(exc)


class FreshChannelProducer(Producer):
    """A producer whose retry takes a new channel. After a quorum queue's leader died, a channel of RabbitMQ
    3.10 could keep nacking every publish to that queue until the dead node came back (20 s, seen: Celery's
    callback publish retried on the same channel all along), while new channels published at once."""

    def revive(self, channel: Any) -> None:
        if is_connection(channel) and channel._default_channel is not None:
            channel.maybe_close_channel(channel._default_channel)
            channel._default_channel = None
        super().revive(channel)


class AMQP(CeleryAMQP):
    """Celery's AMQP with the producers above (wired in orders_project/celery.py)."""

    @property
    def producer_pool(self) -> Any:
        this = cast(Any, self)  # celery-types know neither `app` nor `_producer_pool` here
        if this._producer_pool is None:
            this._producer_pool = pools.ProducerPool(
                pools.connections[this.app.connection_for_write()],
                limit=this.app.pool.limit,
                Producer=FreshChannelProducer,
            )
        return this._producer_pool

    publisher_pool = producer_pool
