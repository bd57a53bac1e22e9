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


def test_the_live_event_rides_in_the_cache_pipeline_to_the_live_groups_channel():
    # given: a subscriber on the channel the layer uses for the live group
    from channels.layers import get_channel_layer

    channel, _ = events._live_channel()
    subscriber = get_redis_connection("default").pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(channel)
    try:
        subscriber.get_message(timeout=1.0)  # the subscribe confirmation
        order_id = uuid.uuid4()
        event = {"order_id": str(order_id), "status": "completed"}
        # when
        events.orders_changed(changes=[(order_id, event, False)])
        # then: the layer's own message
        message = subscriber.get_message(timeout=2.0)
        assert message is not None
        assert get_channel_layer().deserialize(message["data"]) == {"type": "order.events", "events": [event]}
    finally:
        subscriber.close()


def test_a_channel_layer_on_another_redis_server_gets_its_events_through_the_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://10.0.0.9:6379/0"}]},
        }
    }
    assert events._live_channel() is None


def test_the_same_server_under_another_db_number_is_the_same_pubsub():
    assert events._same_redis_server({"address": "redis://h:6379/3"}, "redis://h/0")
    assert not events._same_redis_server("redis://h:6380/0", "redis://h:6379/0")
    assert not events._same_redis_server("redis://:pw@h:6379/0", "redis://h:6379/0")
