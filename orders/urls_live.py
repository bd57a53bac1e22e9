from django.urls import path

from orders.live import live_page

urlpatterns = [
    path("", live_page, name="live"),
]
