"""What happens after an order's transaction commits: cache invalidation and the live-page event.

Only services call `order_changed_on_commit`, so nothing is announced that did not commit.
"""

import asyncio
import functools
import os
import threading

from django.core.cache import cache
from django.db import transaction
from django_redis import get_redis_connection

from core.logging import get_logger

log = get_logger(__name__)

LIVE_GROUP = "orders.live"


def order_group(order_id) -> str:
    return f"orders.order.{order_id}"


def order_cache_version_key(order_id) -> str:
    return f"order:{order_id}:v"


def order_cache_key(order_id, version: int) -> str:
    return f"order:{order_id}:{version}"


def order_changed_on_commit(*, order_id, event: dict) -> None:
    orders_changed_on_commit([(order_id, event, False)])


def order_changed(*, order_id, event: dict) -> None:
    orders_changed(changes=[(order_id, event, False)])


def orders_changed_on_commit(changes: list[tuple]) -> None:
    """After commit, `orders_changed` for `(order_id, event, created)` changes (one, or a relay's batch)."""
    transaction.on_commit(functools.partial(orders_changed, changes=list(changes)))


def orders_changed(*, changes: list[tuple]) -> None:
    """Move readers to fresh cache keys (one pipelined INCR; a missing key counts from 0) and tell the
    live page (one message for all the events). Never raises. A `created` order has nothing cached yet
    (an unknown id is never cached), so its key stays.

    Each version key expires ORDER_CACHE_VERSION_TTL after its last change (Redis would otherwise keep one
    per order forever). That TTL outlives every value cached under the key (ORDER_CACHE_TIMEOUT), so when
    a version key expires and counts from 0 again, nothing cached under an old version is left to be read."""
    from django.conf import settings

    keys = [
        cache.make_and_validate_key(order_cache_version_key(order_id))
        for order_id, _, created in changes
        if not created
    ]
    if keys:
        try:
            pipe = get_redis_connection("default").pipeline(transaction=False)
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, settings.ORDER_CACHE_VERSION_TTL)
            pipe.execute()
        except Exception as exc:  # a cache outage must not fail a committed transition
            log.warning("order_cache_invalidate_failed", orders=len(keys), error=str(exc))
    if changes:
        _broadcaster().send({"type": "order.events", "events": [event for _, event, _ in changes]})


class _Broadcaster:
    """Hands live-page events to one long-lived event loop in a daemon thread: the caller (a request
    or a worker task) does not wait for Redis, and the channel layer keeps its connection instead of
    opening one per event (what async_to_sync from a plain thread would do). Events are best-effort:
    the page catches up from the API after a gap."""

    def __init__(self):
        self.config = None
        self.layer = None
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="live-broadcast", daemon=True).start()

    def send(self, message: dict) -> None:
        asyncio.run_coroutine_threadsafe(self._send(message), self.loop)

    def current_layer(self):
        """Its own layer instance (its connection pool belongs to this loop alone), rebuilt when the
        CHANNEL_LAYERS setting changes, as channels does for its shared one."""
        # types-channels lacks DEFAULT_CHANNEL_LAYER (channels.layers defines it)
        from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers  # type: ignore[attr-defined]
        from django.conf import settings

        config = getattr(settings, "CHANNEL_LAYERS", None)
        if config is not self.config:
            self.config = config
            self.layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER) if config else None
        return self.layer

    async def _send(self, message: dict) -> None:
        layer = self.current_layer()
        if layer is None:
            return
        try:
            # Every socket is in the live group, so one PUBLISH reaches every page; a per-order send as well
            # would only be a duplicate (the consumer drops those) at the cost of a second round trip.
            await layer.group_send(LIVE_GROUP, message)
        except Exception as exc:
            log.warning("order_broadcast_failed", events=len(message["events"]), error=str(exc))


_broadcasters: dict[int, _Broadcaster] = {}
_broadcasters_lock = threading.Lock()


def _broadcaster() -> _Broadcaster:
    # One per process: a prefork child must not reuse its parent's loop thread (threads do not survive fork).
    pid = os.getpid()
    with _broadcasters_lock:
        if pid not in _broadcasters:
            _broadcasters[pid] = _Broadcaster()
        return _broadcasters[pid]
