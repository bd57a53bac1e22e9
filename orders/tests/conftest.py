import pytest

from orders import services
from orders.tests.dead_letter_factories import dead_letter_archived
from orders.tests.factories import order_create


@pytest.fixture
def letter(catalog):
    """An archived dead letter of an order that failed at the enrich stage."""
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    services.order_fail(order_id=order.id, stage="enrich", reason="x")
    return dead_letter_archived(order_id=order.id)
