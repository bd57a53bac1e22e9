"""WebSocket routes: the live feed (orders/consumers.py), with or without a trailing slash."""

from django.urls import re_path

from orders.consumers import OrderFeedConsumer

websocket_urlpatterns = [
    # django-stubs type re_path() for views only; channels routes ASGI apps with it (its documented use)
    re_path(r"^ws/orders/?$", OrderFeedConsumer.as_asgi()),  # type: ignore[arg-type]
]
