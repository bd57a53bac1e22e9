"""WebSocket routes: the live feed (orders/consumers.py), with or without a trailing slash."""

from django.urls import re_path

from orders.consumers import OrderFeedConsumer

websocket_urlpatterns = [
    re_path(r"^ws/orders/?$", OrderFeedConsumer.as_asgi()),
]
