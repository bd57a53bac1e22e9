"""What happens after an order's transaction commits: cache invalidation and the live-page event.

Only services call `order_changed_on_commit`, so nothing is announced that did not commit.
"""

import asyncio
import functools
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

from django.core.cache import cache
from django.db import transaction
from django_redis import get_redis_connection

from core.logging import get_logger

log = get_logger(__name__)

LIVE_GROUP = "orders.live"


def order_group(order_id) -> str:
    return f"orders.order.{order_id}"


def _canonical(order_id: Any) -> str:
    """One spelling per order (lower case, hyphens): an id written in upper case, as `urn:uuid:...` or
    without hyphens is the same order, so it must read and bump the same cache keys."""
    try:
        return str(order_id if isinstance(order_id, uuid.UUID) else uuid.UUID(str(order_id)))
    except ValueError:
        return str(order_id)


def order_cache_version_key(order_id) -> str:
    return f"order:{_canonical(order_id)}:v"


def order_cache_key(order_id, version: int) -> str:
    return f"order:{_canonical(order_id)}:{version}"


def order_changed_on_commit(*, order_id, event: dict) -> None:
    orders_changed_on_commit([(order_id, event, False)])


def order_changed(*, order_id, event: dict) -> None:
    orders_changed(changes=[(order_id, event, False)])


def orders_changed_on_commit(changes: list[tuple]) -> None:
    """After commit, `orders_changed` for `(order_id, event, created)` changes (one, or a relay's batch)."""
    transaction.on_commit(functools.partial(orders_changed, changes=list(changes)))


def orders_changed(*, changes: list[tuple]) -> None:
    """Move readers to fresh cache keys (INCR; a missing key counts from 0) and tell the live page (one
    message for all the events), in one pipelined round trip to Redis. Never raises. A `created` order has
    nothing cached yet (an unknown id is never cached), so its key stays.

    Each version key expires ORDER_CACHE_VERSION_TTL after its last change (Redis would otherwise keep one
    per order forever). That TTL outlives every value cached under the key (ORDER_CACHE_TIMEOUT), so when
    a version key expires and counts from 0 again, nothing cached under an old version is left to be read."""
    from django.conf import settings

    keys = [
        cache.make_and_validate_key(order_cache_version_key(order_id))
        for order_id, _, created in changes
        if not created
    ]
    message = {"type": "order.events", "events": [event for _, event, _ in changes]} if changes else None
    live = _live_channel() if message else None
    if keys or live:
        try:
            pipe = get_redis_connection("default").pipeline(transaction=False)
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, settings.ORDER_CACHE_VERSION_TTL)
            if live and message:
                channel, serialize = live
                pipe.publish(channel, serialize(message))
            pipe.execute()
        except Exception as exc:  # a cache outage must not fail a committed transition
            log.warning("order_changed_announce_failed", orders=len(changes), error=f"{type(exc).__name__}: {exc}")
    if message and not live:
        _broadcaster().send(message)


def _live_channel() -> tuple[str, Callable[[dict], bytes]] | None:
    """The live group's Redis channel and the layer's serializer when the channel layer is Redis pub/sub
    on the cache's Redis server (pub/sub ignores the db number): the event then rides in the cache's
    pipeline, with no thread hop and no round trip of its own. Any other layer: None (the broadcaster)."""
    from channels.layers import get_channel_layer
    from channels_redis.pubsub import RedisPubSubChannelLayer  # type: ignore[import-untyped]
    from django.conf import settings

    layer = get_channel_layer()
    if not isinstance(layer, RedisPubSubChannelLayer):
        return None
    config = cast(dict[str, Any], settings.CHANNEL_LAYERS["default"].get("CONFIG", {}))
    hosts = config.get("hosts") or ["redis://localhost:6379"]
    if len(hosts) != 1 or not _same_redis_server(hosts[0], settings.CACHES["default"]["LOCATION"]):
        return None  # several shards: the layer hashes the group to one of them
    # channels_redis's name for a group's channel (RedisPubSubLoopLayer._get_group_channel_name);
    # orders/tests/test_consumers.py checks that a socket in the group hears what this publishes.
    return f"{config.get('prefix', 'asgi')}__group__{LIVE_GROUP}", layer.serialize


def _same_redis_server(host: Any, location: str) -> bool:
    address = host.get("address") if isinstance(host, dict) else host
    if not isinstance(address, str):
        return False
    a, b = urlsplit(address), urlsplit(location)
    if a.scheme == "unix" or b.scheme == "unix":
        return (a.scheme, a.path) == (b.scheme, b.path)
    return (a.scheme, a.hostname, a.port or 6379, a.username, a.password) == (
        b.scheme,
        b.hostname,
        b.port or 6379,
        b.username,
        b.password,
    )


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
