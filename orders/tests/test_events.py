import uuid

from django.core.cache import cache
from django_redis import get_redis_connection

from orders import events


def _version_key_ttl(order_id) -> int:
    return get_redis_connection("default").ttl(cache.make_and_validate_key(events.order_cache_version_key(order_id)))


def test_order_cache_version_key_expires_after_the_values_cached_under_it(settings):
    # given
    order_id = uuid.uuid4()
    event = {"order_id": str(order_id), "status": "processing"}
    # when: the order changes (its version key is created by the INCR)
    events.orders_changed(changes=[(order_id, event, False)])
    # then: the key has a TTL, longer than a cached value's
    ttl = _version_key_ttl(order_id)
    assert settings.CACHES["default"]["TIMEOUT"] < ttl <= settings.ORDER_CACHE_VERSION_TTL


def test_each_change_renews_the_version_keys_ttl(settings):
    order_id = uuid.uuid4()
    key = cache.make_and_validate_key(events.order_cache_version_key(order_id))
    events.orders_changed(changes=[(order_id, {}, False)])
    get_redis_connection("default").expire(key, 5)
    # when
    events.orders_changed(changes=[(order_id, {}, False)])
    # then
    assert _version_key_ttl(order_id) > settings.CACHES["default"]["TIMEOUT"]
    assert cache.get(events.order_cache_version_key(order_id)) == 2
