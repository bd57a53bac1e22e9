"""Reserving stock (orders/services/stock.py): all or nothing, every short sku named."""

from collections import Counter

import pytest

from orders import services
from orders.models import Product

pytestmark = pytest.mark.django_db


def _stock(sku: str) -> tuple[int, int]:
    product = Product.objects.get(sku=sku)
    return product.stock, product.reserved


def test_stock_reserve_names_every_short_sku_and_reserves_nothing(catalog):
    with pytest.raises(
        services.StockShort, match=r"^unknown sku NOPE; not enough stock for SCARCE \(wanted 5, available 2\)$"
    ):
        services.stock_reserve(Counter({"ABC": 4, "NOPE": 1, "SCARCE": 5}))
    assert _stock("ABC") == (1000, 0)
