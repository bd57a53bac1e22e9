"""Named row locks. The order row is locked first, always; product rows only by the stock statements
(orders/services/stock.py), in sku order, last in their transaction."""

from typing import Any

from orders.models import Order


def order_lock(order_id: Any) -> Order:
    """The order, locked until the end of the caller's transaction."""
    return Order.objects.select_for_update().get(id=order_id)
