from django.urls import re_path

from orders import ops_apis
from orders.apis import OrderCancelApi, OrderDetailApi, OrderListCreateApi, ProductListApi
from orders.dead_letters import apis as dead_letter_apis

# Optional trailing slash: both /orders and /orders/ answer, a POST is never redirected.
urlpatterns = [
    re_path(r"^orders/?$", OrderListCreateApi.as_view(), name="orders"),
    re_path(r"^orders/(?P<order_id>[^/]+)/?$", OrderDetailApi.as_view(), name="order-detail"),
    re_path(r"^orders/(?P<order_id>[^/]+)/cancel/?$", OrderCancelApi.as_view(), name="order-cancel"),
    re_path(r"^products/?$", ProductListApi.as_view(), name="products"),
]

urlpatterns += [
    re_path(r"^ops/dead-letters/?$", dead_letter_apis.DeadLetterListApi.as_view(), name="dead-letters"),
    re_path(r"^ops/dead-letters/groups/?$", dead_letter_apis.DeadLetterGroupsApi.as_view(), name="dead-letter-groups"),
    re_path(
        r"^ops/dead-letters/redrive/?$",
        dead_letter_apis.DeadLetterBulkRedriveApi.as_view(),
        name="dead-letters-redrive",
    ),
    re_path(r"^ops/dead-letters/(?P<pk>\d+)/?$", dead_letter_apis.DeadLetterDetailApi.as_view(), name="dead-letter"),
    re_path(
        r"^ops/dead-letters/(?P<pk>\d+)/redrive/?$",
        dead_letter_apis.DeadLetterRedriveApi.as_view(),
        name="dead-letter-redrive",
    ),
    re_path(
        r"^ops/dead-letters/(?P<pk>\d+)/discard/?$",
        dead_letter_apis.DeadLetterDiscardApi.as_view(),
        name="dead-letter-discard",
    ),
    re_path(r"^ops/diagnostics/?$", ops_apis.DiagnosticsApi.as_view(), name="diagnostics"),
]
