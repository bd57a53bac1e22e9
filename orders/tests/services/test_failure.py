"""Failing an order (orders/services/failure.py): the reservation is given back, no invoice, and the
first failure is final."""

import pytest

from orders import services
from orders.models import Invoice, OrderStatus, Product
from orders.tests.factories import order_create

pytestmark = pytest.mark.django_db


def _stock(sku: str) -> tuple[int, int]:
    product = Product.objects.get(sku=sku)
    return product.stock, product.reserved


def test_order_fail_releases_reservation_and_is_final(catalog):
    order = order_create(items=[("ABC", 4)])
    services.order_process(order_id=order.id)
    # when
    order = services.order_fail(order_id=order.id, stage="enrich", reason="boom")
    services.order_finalize(order_id=order.id)
    again = services.order_fail(order_id=order.id, stage="enrich", reason="other")
    # then
    assert order.status == OrderStatus.FAILED
    assert again.failure_reason == "boom"
    assert _stock("ABC") == (1000, 0)
    assert not Invoice.objects.filter(order=order).exists()
