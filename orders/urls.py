from django.urls import path, re_path

from orders.apis import OrderDetailApi, OrderListCreateApi, ProductListApi

# Optional trailing slash: both /orders and /orders/ answer, a POST is never redirected.
urlpatterns = [
    re_path(r"^orders/?$", OrderListCreateApi.as_view(), name="orders"),
    re_path(r"^orders/(?P<order_id>[^/]+)/?$", OrderDetailApi.as_view(), name="order-detail"),
    re_path(r"^products/?$", ProductListApi.as_view(), name="products"),
]
