"""The live feed socket (orders/consumers.py) through the real ASGI stack (origin check, session auth,
routing) and the real Redis channel layer. Each test gets its own channel-layer prefix, so nothing
else publishing to `orders.live` can reach it."""

import asyncio
import functools
import importlib.util
import json
import sys
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.test import override_settings

from orders import events
from orders.consumers import MAX_FRAME_BYTES
from orders.tests.factories import staff_user_create
from orders_project.asgi import application


@pytest.fixture(autouse=True)
def anonymous_feed(settings):
    """The demo's anonymous feed, as `make run` serves it; tests of the setting turn it off themselves."""
    settings.LIVE_FEED_ANONYMOUS = True


def _websocket_communicator():
    """`channels.testing`'s __init__ imports daphne, for its live-server test case only (unused here;
    the project serves with uvicorn). Without daphne, load the communicator module on its own."""
    try:
        from channels.testing import WebsocketCommunicator

        return WebsocketCommunicator
    except ModuleNotFoundError as exc:
        if exc.name != "daphne" and not (exc.name or "").startswith("daphne."):
            raise
    package = importlib.util.module_from_spec(importlib.util.find_spec("channels.testing"))
    sys.modules["channels.testing"] = package  # the package without running its __init__
    try:
        from channels.testing.websocket import WebsocketCommunicator
    finally:
        del sys.modules["channels.testing"]
    return WebsocketCommunicator


WebsocketCommunicator = _websocket_communicator()

# The stack reads the session (auth middleware) and closes stale connections after each frame.
pytestmark = pytest.mark.django_db

ORIGIN = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
TIMEOUT = 3


def run_async(test):
    """pytest-asyncio is not used: each async test body runs in its own event loop."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return async_to_sync(test)(*args, **kwargs)

    return wrapper


@pytest.fixture(autouse=True)
def private_channel_layer():
    layers = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "prefix": f"asgi-test-{uuid.uuid4().hex[:8]}"},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):  # channels resets its layer registry on the change
        yield


def event_for(order_id, *, status="processing", stage="process", event="completed", **extra) -> dict:
    return {
        "order_id": str(order_id),
        "status": status,
        "stage": stage,
        "event": event,
        "detail": {},
        "failure_reason": "",
        "source": "api",
        "at": "2026-01-01T00:00:00.000001+00:00",
        **extra,
    }


async def connected(headers=ORIGIN) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/orders", headers=headers)
    ok, _ = await communicator.connect(timeout=TIMEOUT)
    assert ok
    return communicator


def wait_for_subscriber(channel: str) -> None:
    import time

    from django_redis import get_redis_connection

    deadline = time.monotonic() + TIMEOUT
    while get_redis_connection("default").pubsub_numsub(channel)[0][1] == 0:
        assert time.monotonic() < deadline, f"no subscriber on {channel}"
        time.sleep(0.01)


async def send_and_receive(communicator, frame) -> dict:
    if isinstance(frame, bytes):
        await communicator.send_to(bytes_data=frame)
    else:
        await communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))
    return await communicator.receive_json_from(timeout=TIMEOUT)


async def group_send(group: str, event: dict) -> None:
    await get_channel_layer().group_send(group, {"type": "order.event", "event": event})


async def finish(communicator) -> None:
    await communicator.disconnect()
    await get_channel_layer().flush()  # closes its Redis connections (this loop ends with the test)


# --- connect and the live group ------------------------------------------------------------------
@run_async
async def test_connected_socket_receives_live_group_events():
    # given
    communicator = await connected()
    order_id = uuid.uuid4()
    # when
    await group_send(events.LIVE_GROUP, event_for(order_id))
    # then
    frame = await communicator.receive_json_from(timeout=TIMEOUT)
    assert frame == {"type": "order.event", "event": event_for(order_id)}
    await finish(communicator)


@run_async
async def test_a_batch_message_reaches_the_socket_as_one_frame_per_event():
    # given
    communicator = await connected()
    first, second = uuid.uuid4(), uuid.uuid4()
    # when: the relay's batch (several orders' events in one message)
    await get_channel_layer().group_send(
        events.LIVE_GROUP, {"type": "order.events", "events": [event_for(first), event_for(second)]}
    )
    # then
    frames = [await communicator.receive_json_from(timeout=TIMEOUT) for _ in range(2)]
    assert [f["event"]["order_id"] for f in frames] == [str(first), str(second)]
    assert all(f["type"] == "order.event" for f in frames)
    await finish(communicator)


def test_order_changed_reaches_the_socket_through_the_real_layer():
    """The services' broadcaster (sync, async_to_sync inside) and the consumer agree on the message shape."""
    order_id = uuid.uuid4()

    @run_async
    async def body():
        communicator = await connected()
        from asgiref.sync import sync_to_async

        # the event is published from this thread on another Redis connection than the socket's SUBSCRIBE:
        # wait until Redis has the subscriber (in production sockets subscribe long before any event)
        await sync_to_async(wait_for_subscriber)(events._live_channel()[0])
        await sync_to_async(events.order_changed)(order_id=order_id, event=event_for(order_id, status="completed"))
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        assert frame["type"] == "order.event"
        assert frame["event"]["order_id"] == str(order_id)
        assert frame["event"]["status"] == "completed"
        # and only once
        assert await communicator.receive_nothing(timeout=0.3)
        await finish(communicator)

    body()


@run_async
async def test_idle_socket_still_receives_after_redis_default_read_timeout():
    # given: a socket with nothing to hear for longer than redis-py's default 5 s read timeout
    communicator = await connected()
    await asyncio.sleep(6.5)  # idle time is what this checks (past redis-py's 5 s); an event must still arrive after it
    # when
    order_id = uuid.uuid4()
    await group_send(events.LIVE_GROUP, event_for(order_id))
    # then
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["event"]["order_id"] == str(order_id)
    await finish(communicator)


@run_async
async def test_anonymous_sockets_get_no_customer_fields_or_customer_detail():
    # given
    communicator = await connected()
    order_id = uuid.uuid4()
    leaky = event_for(
        order_id,
        stage="enrich",
        event="retry",
        customer_id="c-123",
        email="a@b.c",
        detail={"customer_score": 0.9, "attempt": 2},
    )
    # when
    await group_send(events.LIVE_GROUP, leaky)
    # then
    event = (await communicator.receive_json_from(timeout=TIMEOUT))["event"]
    assert "customer_id" not in event and "email" not in event
    assert event["detail"] == {"attempt": 2}
    await finish(communicator)


@run_async
async def test_socket_without_allowed_origin_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/orders", headers=[(b"origin", b"http://evil.example")])
    ok, _ = await communicator.connect(timeout=TIMEOUT)
    assert not ok
    await communicator.disconnect()


@pytest.mark.parametrize(
    "origin,allowed",
    [
        (b"http://testserver:8000", True),  # the page from web (:8000), the socket on live (:8001): LIVE_WS_PORT
        (b"https://testserver", True),
        (b"http://evil.example:8001", False),  # the live port itself proves nothing about the host
    ],
)
@run_async
async def test_origin_check_compares_hosts_not_ports(origin, allowed):
    # given: a socket to the live process's own port, opened by a page on another port or scheme
    headers = [(b"origin", origin), (b"host", b"testserver:8001")]
    communicator = WebsocketCommunicator(application, "/ws/orders", headers=headers)
    # when
    ok, _ = await communicator.connect(timeout=TIMEOUT)
    # then: an allowed host is let in whatever its port; another host is refused on any port
    assert ok is allowed
    if ok:
        assert await send_and_receive(communicator, {"type": "ping"}) == {"type": "pong"}
        await finish(communicator)
    else:
        await communicator.disconnect()


@run_async
async def test_trailing_slash_path_is_routed():
    communicator = WebsocketCommunicator(application, "/ws/orders/", headers=ORIGIN)
    ok, _ = await communicator.connect(timeout=TIMEOUT)
    assert ok
    assert await send_and_receive(communicator, {"type": "ping"}) == {"type": "pong"}
    await finish(communicator)


# --- subscribe / unsubscribe ---------------------------------------------------------------------
@run_async
async def test_subscribe_receives_that_orders_events_once_and_unsubscribe_stops_them():
    # given
    communicator = await connected()
    order_id, other_id = uuid.uuid4(), uuid.uuid4()
    assert await send_and_receive(communicator, {"type": "subscribe", "order_id": str(order_id)}) == {
        "type": "subscribed",
        "order_id": str(order_id),
    }
    # when: the order's group and the live group both carry the event (as order_changed sends it)
    await group_send(events.order_group(order_id), event_for(order_id))
    await group_send(events.LIVE_GROUP, event_for(order_id))
    await group_send(events.order_group(other_id), event_for(other_id))
    # then: delivered once, and another order's group is not heard
    frame = await communicator.receive_json_from(timeout=TIMEOUT)
    assert frame["event"]["order_id"] == str(order_id)
    assert await communicator.receive_nothing(timeout=0.3)

    # when: unsubscribed, an event only on the order's group no longer arrives
    assert (await send_and_receive(communicator, {"type": "unsubscribe", "order_id": str(order_id)}))[
        "type"
    ] == "unsubscribed"
    await group_send(events.order_group(order_id), event_for(order_id, status="completed", stage="finalize"))
    assert await communicator.receive_nothing(timeout=0.3)
    await finish(communicator)


@run_async
async def test_ping_is_answered_with_pong():
    communicator = await connected()
    assert await send_and_receive(communicator, {"type": "ping"}) == {"type": "pong"}
    await finish(communicator)


# --- bad input -------------------------------------------------------------------------------------
BAD_FRAMES = [
    ("garbage text", "}{not json at all"),
    ("json array", "[1, 2, 3]"),
    ("json string", '"subscribe"'),
    ("json null", "null"),
    ("no type", {"order_id": "x"}),
    ("unknown type", {"type": "drop_tables"}),
    ("type not a string", {"type": {"nested": True}}),
    ("bad uuid", {"type": "subscribe", "order_id": "not-a-uuid"}),
    ("uuid not a string", {"type": "subscribe", "order_id": 12345}),
    ("missing order id", {"type": "unsubscribe"}),
    ("binary", b"\x00\x01\x02\xff"),
    ("lone surrogate", '{"type": "\\ud800"}'),
    ("nested past the parser's depth", "[" * 60000),
]


@pytest.mark.parametrize("frame", [f for _, f in BAD_FRAMES], ids=[name for name, _ in BAD_FRAMES])
@run_async
async def test_bad_frame_gets_an_error_frame_and_the_socket_stays_up(frame):
    # given
    communicator = await connected()
    # when
    reply = await send_and_receive(communicator, frame)
    # then
    assert reply["type"] == "error"
    assert isinstance(reply["message"], str) and reply["message"]
    assert await send_and_receive(communicator, {"type": "ping"}) == {"type": "pong"}
    order_id = uuid.uuid4()
    await group_send(events.LIVE_GROUP, event_for(order_id))
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["event"]["order_id"] == str(order_id)
    await finish(communicator)


@pytest.mark.parametrize("kind", ["text", "bytes"])
@run_async
async def test_frame_over_64_kib_closes_with_1009(kind):
    # given
    communicator = await connected()
    # the largest allowed frame is fine
    at_limit = json.dumps({"type": "ping", "pad": "x" * (MAX_FRAME_BYTES - 30)})
    at_limit += " " * (MAX_FRAME_BYTES - len(at_limit))
    assert await send_and_receive(communicator, at_limit) == {"type": "pong"}
    # when
    if kind == "text":
        await communicator.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * MAX_FRAME_BYTES}))
    else:
        await communicator.send_to(bytes_data=b"x" * (MAX_FRAME_BYTES + 1))
    # then
    closed = await communicator.receive_output(timeout=TIMEOUT)
    assert closed["type"] == "websocket.close"
    assert closed["code"] == 1009
    await finish(communicator)


# --- anonymous access is a setting -----------------------------------------------------------------
@override_settings(LIVE_FEED_ANONYMOUS=False)
@run_async
async def test_anonymous_refused_with_4401_when_the_setting_is_off():
    communicator = WebsocketCommunicator(application, "/ws/orders", headers=ORIGIN)
    ok, _ = await communicator.connect(timeout=TIMEOUT)
    assert ok  # accepted, then closed with the code, so a browser can tell why
    closed = await communicator.receive_output(timeout=TIMEOUT)
    assert (closed["type"], closed["code"]) == ("websocket.close", 4401)
    await communicator.wait()


@override_settings(LIVE_FEED_ANONYMOUS=False)
@pytest.mark.parametrize(
    "is_staff, permissions, allowed",
    [(True, ("orders.view_every_order",), True), (True, (), False), (False, (), False)],
)
def test_only_staff_sessions_allowed_to_read_every_order_are_let_in_when_anonymous_is_off(
    client, django_user_model, is_staff, permissions, allowed
):
    # given: a logged-in user's session cookie
    username = f"u-{uuid.uuid4().hex[:6]}"
    if is_staff:
        user = staff_user_create(username, password="pw", permissions=permissions)
    else:
        user = django_user_model.objects.create_user(username=username, password="pw")
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    @run_async
    async def body():
        communicator = await connected(headers=[*ORIGIN, (b"cookie", cookie)])
        if allowed:
            assert await send_and_receive(communicator, {"type": "ping"}) == {"type": "pong"}
            await finish(communicator)
        else:
            closed = await communicator.receive_output(timeout=TIMEOUT)
            assert closed["code"] == 4401
            await communicator.wait()

    body()
