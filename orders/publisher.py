"""The outbox's AMQP side: publishing the outbox's messages (order chains, refunds) with pipelined publisher confirms.

One connection and confirm-mode channel per thread, kept across batches; a batch is published and its
confirms awaited once, every wait bounded. The outbox services (orders/services/outbox.py) call
`messages_publish_confirmed` inside the transaction that marks the rows sent.
"""

import threading
import time
from collections.abc import Sequence
from typing import Any

from celery import current_app

# celery-types lack this private helper of celery.canvas (chain.run's own; see _message_publish)
from celery.canvas import Signature, _chain, _prepare_chain_from_options  # type: ignore[attr-defined]
from django.conf import settings
from kombu.exceptions import OperationalError  # what kombu turns a connection error into

from core.broker_nodes import broker_drop, broker_nodes, node_of


class PublishNotConfirmed(Exception):
    """The broker nacked a message of the batch, or did not confirm it in time."""


class PublishNacked(PublishNotConfirmed):
    """The broker nacked a message of the batch (it could not take it, for now)."""


def _message_publish(signature: Signature, *, producer: Any) -> None:
    """Publish one task, or a chain's first task with the rest embedded, through `producer`. Celery's chain.apply_async
    takes a `producer` argument but does not pass it on (chain.run drops it): the message would go out
    on a pooled producer, confirmed one by one, and never on this channel. So the chain is prepared as
    chain.run does and its first task published with the producer."""
    if not isinstance(signature, _chain):
        signature.apply_async(producer=producer, retry=False)
        return
    # celery-types: prepare_steps takes any sequence of tasks (it makes a deque of them), chain.tasks is a tuple
    tasks, _ = signature.prepare_steps(
        (),
        {},
        signature.tasks,  # type: ignore[arg-type]
        None,
        None,
        None,
        signature.app,
        None,
        None,
        None,
    )
    first = tasks.pop()
    first.apply_async(producer=producer, retry=False, **_prepare_chain_from_options({}, tasks, False))


class _ConfirmedPublisher:
    """One broker connection and confirm-mode channel kept across relay batches (opening them cost more
    than a batch of one), publishing a batch and waiting once for all its confirms (pipelined publisher
    confirms). Every wait is bounded: the connect and handshake by the connect timeout, each socket read
    and write by the publish's timeout (a broker that stops answering), the confirms by its deadline (a
    broker that blocks publishers never confirms). Any error drops the connection; the next publish opens
    a new one."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.channel: Any = None
        self.producer: Any = None
        self.published = 0  # delivery tags of this channel handed out so far
        self.upto = 0  # every tag <= upto is confirmed (multiple acks)
        self.acked: set[int] = set()
        self.nacked: set[int] = set()

    def _open(self, *, timeout: float) -> None:
        socket_timeout = min(settings.BROKER_SOCKET_TIMEOUT, timeout)
        nodes = broker_nodes()
        self.conn = current_app.connection_for_write(
            url=nodes.url(),  # the node that failed this process last
            connect_timeout=min(settings.CELERY_BROKER_CONNECTION_TIMEOUT, timeout),
            transport_options={
                "confirm_publish": False,
                "read_timeout": socket_timeout,
                "write_timeout": socket_timeout,
            },
        )
        # One attempt (the list's first node and, if it fails, the next): the caller (relay loop, or the relay
        # after the fast path) retries. Not kombu's connect(): it sleeps 2 s between the two tries, which every
        # POST with the inline publish paid on a refused broker, and the relay on each move to another node.
        self.conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0)
        nodes.connected(node_of(self.conn.as_uri()), role="publisher")
        self.channel = self.conn.channel()
        self.channel.confirm_select()
        self.published, self.upto, self.acked, self.nacked = 0, 0, set(), set()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.producer = current_app.amqp.Producer(self.channel, auto_declare=False)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.upto = max(self.upto, tag)
            self.acked = {t for t in self.acked if t > tag}
        else:
            self.acked.add(tag)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self.nacked.add(tag)

    def close(self, *, node_failed: bool = True) -> None:
        """Drop the connection after an error, without the close handshake: a node cut off by a partition
        nacks what was in flight one message every few seconds, and py-amqp's close() waits behind them
        (blocked for minutes, seen). The next publish opens a connection with this node last, unless the
        node only nacked (a queue electing a new leader nacks for a moment: the node itself is fine)."""
        if self.conn is not None:
            broker_drop(self.conn, node_failed=node_failed)
        self.conn = self.channel = self.producer = None

    def publish(self, messages: Sequence[Signature], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        reused = self.conn is not None
        try:
            self._publish(messages, timeout=timeout, deadline=deadline)
        except Exception as exc:
            errors = (OperationalError, *(self.conn.connection_errors if self.conn is not None else ()))
            timed_out = isinstance(exc, TimeoutError) or isinstance(exc.__cause__ or exc.__context__, TimeoutError)
            stale = reused and isinstance(exc, errors) and not timed_out
            self.close(node_failed=not isinstance(exc, PublishNacked))
            if not stale:
                raise
            # The broker closed the kept connection while it sat idle (missed heartbeats, a restart), or
            # its node died mid-batch: the whole batch once more, at once, on a new connection to the next
            # node (what the dead node had confirmed is published twice; the stages absorb duplicates).
            try:
                self._publish(messages, timeout=timeout, deadline=max(deadline, time.monotonic() + timeout))
            except Exception as retry_exc:
                self.close(node_failed=not isinstance(retry_exc, PublishNacked))
                raise

    def _publish(self, messages: Sequence[Signature], *, timeout: float, deadline: float) -> None:
        if self.conn is None:
            self._open(timeout=timeout)
        first = self.published + 1
        for message in messages:
            _message_publish(message, producer=self.producer)
            self.published += 1
        tags = range(first, self.published + 1)

        def unconfirmed() -> int:
            return sum(1 for tag in tags if tag > self.upto and tag not in self.acked)

        while unconfirmed() and not self.nacked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishNotConfirmed(f"{unconfirmed()} of {len(tags)} messages unconfirmed after {timeout}s")
            try:
                self.conn.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        if self.nacked:
            raise PublishNacked("the broker nacked a message of the batch")
        self.acked.difference_update(tags)


_publishers = threading.local()  # a channel is not thread-safe: one publisher per thread


def messages_publish_confirmed(messages: Sequence[Signature], *, timeout: float) -> None:
    """Publish the messages (orders/pipeline.py outbox_message) and wait at most `timeout` seconds for the broker's
    confirms of all of them. Raises if any is nacked or unconfirmed: the caller's transaction then rolls back and
    the rows stay unsent (never marked sent on a timeout)."""
    publisher = getattr(_publishers, "publisher", None)
    if publisher is None:
        publisher = _publishers.publisher = _ConfirmedPublisher()
    publisher.publish(messages, timeout=timeout)
