"""What happens after an order's transaction commits: cache invalidation and the live-page event.

Only services call `order_changed_on_commit`, so nothing is announced that did not commit.
"""
import functools

from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.db import transaction

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
    transaction.on_commit(functools.partial(order_changed, order_id=order_id, event=event))


def order_changed(*, order_id, event: dict) -> None:
    """Bump the cache version (readers then miss) and tell the live page. Never raises."""
    try:
        key = order_cache_version_key(order_id)
        # add() is a no-op when the key exists; incr then moves every reader to a fresh key.
        cache.add(key, 0, timeout=None)
        cache.incr(key)
    except Exception as exc:  # a cache outage must not fail a committed transition
        log.warning("order_cache_invalidate_failed", order_id=str(order_id), error=str(exc))
    try:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        message = {"type": "order.event", "event": event}
        async_to_sync(layer.group_send)(LIVE_GROUP, message)
        async_to_sync(layer.group_send)(order_group(order_id), message)
    except Exception as exc:
        log.warning("order_broadcast_failed", order_id=str(order_id), error=str(exc))
