# WebSocket routes for the live page (issue: live page). Filled in by orders/consumers.py.
websocket_urlpatterns: list = []
