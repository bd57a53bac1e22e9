import pytest

from orders import services
from orders.tests.factories import dead_letter_archived, order_create


@pytest.fixture
def letter(catalog):
    """An archived dead letter of an order that failed at the enrich stage."""
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    services.order_fail(order_id=order.id, stage="enrich", reason="x")
    return dead_letter_archived(order_id=order.id)


@pytest.fixture
def failed_order(catalog):
    """An order that failed at the enrich stage (the admin tests' order; no dead letter yet)."""
    order = order_create(items=[("ABC", 2)], customer_id="cust-42")
    services.order_process(order_id=order.id)
    return services.order_fail(order_id=order.id, stage="enrich", reason="enrich: retries exhausted")
