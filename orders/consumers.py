"""The live feed socket, `/ws/orders`: every committed order transition (orders/events.py) goes to the
page as `{"type": "order.event", "event": {...}}`.

Client → server frames are small JSON objects:
    {"type": "subscribe", "order_id": "<uuid>"}    also join that order's group (events are published
                                                   to the live group, which every socket is in; the
                                                   order's group is for a sender that targets one order)
    {"type": "unsubscribe", "order_id": "<uuid>"}  leave it
    {"type": "ping"}                               answered by {"type": "pong"}
Anything else gets `{"type": "error", "message": ...}` and the socket stays open; a frame over
64 KiB closes it with 1009 (message too big). Anonymous access is LIVE_FEED_ANONYMOUS (the demo's; default off);
when it is off, only authenticated staff (Django session) allowed to read every client's orders
(`orders.view_every_order`) are let in, others are closed with 4401.
"""

import json
import uuid
from collections import OrderedDict

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from core.logging import get_logger
from orders.disclosure import public_live_event
from orders.events import LIVE_GROUP, order_group

log = get_logger(__name__)

# The same bound uvicorn enforces first (--ws-max-size); here for servers that do not (daphne, tests).
MAX_FRAME_BYTES = settings.LIVE_WS_MAX_BYTES
MAX_SUBSCRIPTIONS = 100
CLOSE_TOO_BIG = 1009  # RFC 6455 "message too big"
CLOSE_UNAUTHORIZED = 4401  # application range: "not allowed to watch the feed"
CLOSE_UNAVAILABLE = 1011  # the channel layer (Redis) is unreachable; the page reconnects with backoff

# What an event may carry to the page. Everything else is dropped, so a field added to the event later
# (a customer id, an address) never reaches an anonymous socket by accident.
EVENT_FIELDS = ("order_id", "status", "stage", "event", "detail", "failure_reason", "source", "at")
# An order's events reach a socket through `orders.live` and through its own group when subscribed:
# the last event keys sent are remembered so the page gets each event once.
RECENT_EVENTS = 512
MAX_EVENTS_PER_MESSAGE = 2000  # a relay batch is OUTBOX_BATCH_SIZE orders x 2 events


def public_event(event: dict, *, staff: bool) -> dict:
    shown = {key: event.get(key) for key in EVENT_FIELDS if key in event}
    detail = shown.get("detail")
    if not isinstance(detail, dict):
        shown["detail"] = {}
    elif not staff:
        return public_live_event(shown)
    return shown


class OrderFeedConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.groups = []  # the base class discards every group listed here on disconnect
        self.joined = False
        self.recent: OrderedDict = OrderedDict()
        user = self.scope.get("user")
        self.staff = False
        if user is not None and user.is_authenticated and user.is_staff:
            self.staff = bool(await database_sync_to_async(user.has_perm)("orders.view_every_order"))
        # Accept first, then close: a close before accept is an HTTP 403 and the browser never sees the code.
        await self.accept()
        if not settings.LIVE_FEED_ANONYMOUS and not self.staff:
            await self.close(code=CLOSE_UNAUTHORIZED, reason="staff login required")
            return
        try:
            await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
        except Exception as exc:
            log.warning("live_feed_join_failed", error=f"{type(exc).__name__}: {exc}")
            await self.close(code=CLOSE_UNAVAILABLE, reason="live feed unavailable")
            return
        self.groups.append(LIVE_GROUP)
        self.joined = True

    # -- client → server ---------------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if not self.joined:  # refused and closing: nothing more to say
            return
        size = len(bytes_data) if text_data is None else len(text_data.encode("utf-8", "surrogatepass"))
        if size > MAX_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_BIG, reason=f"frame over {MAX_FRAME_BYTES} bytes")
            return
        if text_data is None:
            await self.send_error("binary frames are not accepted; send JSON text")
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the parser's depth
            await self.send_error("frame is not valid JSON")
            return
        if not isinstance(content, dict):
            await self.send_error("frame must be a JSON object with a 'type'")
            return
        try:
            await self.receive_json(content)
        except Exception as exc:  # one bad frame must not take the socket (or the server) down
            log.warning("live_feed_frame_failed", error=f"{type(exc).__name__}: {exc}")
            await self.send_error("could not handle that frame")

    async def receive_json(self, content, **kwargs):
        kind = content.get("type")
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind in ("subscribe", "unsubscribe"):
            await self.subscription_change(kind, content.get("order_id"))
        else:
            shown = kind if isinstance(kind, str) and len(kind) <= 40 else "?"
            await self.send_error(f"unknown message type {shown!r}; expected subscribe, unsubscribe or ping")

    async def subscription_change(self, kind: str, raw_order_id) -> None:
        try:
            order_id = str(uuid.UUID(raw_order_id)) if isinstance(raw_order_id, str) else None
        except ValueError:
            order_id = None
        if order_id is None:
            await self.send_error(f"{kind} needs 'order_id' as a UUID")
            return
        group = order_group(order_id)
        if kind == "subscribe":
            if group not in self.groups:
                if len(self.groups) > MAX_SUBSCRIPTIONS:
                    await self.send_error(f"at most {MAX_SUBSCRIPTIONS} subscriptions per socket")
                    return
                await self.channel_layer.group_add(group, self.channel_name)
                self.groups.append(group)
            await self.send_json({"type": "subscribed", "order_id": order_id})
        else:
            if group in self.groups:
                await self.channel_layer.group_discard(group, self.channel_name)
                self.groups.remove(group)
            await self.send_json({"type": "unsubscribed", "order_id": order_id})

    async def send_error(self, message: str) -> None:
        await self.send_json({"type": "error", "message": message})

    # -- channel layer → client ---------------------------------------------------------------------
    async def order_events(self, message):
        """Several orders' events in one message (the relay announces its batch at once)."""
        events = message.get("events")
        if isinstance(events, list):
            for event in events[:MAX_EVENTS_PER_MESSAGE]:
                await self.order_event({"event": event})

    async def order_event(self, message):
        event = message.get("event")
        if not isinstance(event, dict):
            return
        key = (event.get("order_id"), event.get("stage"), event.get("event"), event.get("at"))
        if key in self.recent:
            return
        self.recent[key] = None
        if len(self.recent) > RECENT_EVENTS:
            self.recent.popitem(last=False)
        await self.send_json({"type": "order.event", "event": public_event(event, staff=self.staff)})
