"""Property tests for the stage services (Hypothesis, real PostgreSQL).

Redelivery, replays, a second worker or a relay republish can run any stage any number of times and
in any order. Whatever happened before, once the pipeline finally runs in order the order must end
exactly as a clean in-order run would have left it, and failing an order at any point must give back
its reservation and never leave an invoice.

Each example creates its own products (unique SKUs) and orders, so examples are independent although
they share the test's transaction.
"""

import contextlib
import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients.models import DEFAULT_CLIENT_ID
from enrichment import controls
from orders import services
from orders.models import Invoice, Order, OrderEnrichment, OrderStatus, Product
from orders.services import order_enrich

pytestmark = pytest.mark.django_db

PROPERTY_SETTINGS = settings(
    max_examples=80,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the shared working tree; failures print a reproduction blob
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PRODUCTS_PER_EXAMPLE = 3
PRICES = [Decimal("12.50"), Decimal("7.99"), Decimal("3.20")]
STAGES = ("process", "enrich", "finalize")
_unique = itertools.count()

# The catalog of one example: initial stock per product (0 makes "not enough stock" reachable).
stocks = st.lists(st.integers(min_value=0, max_value=6), min_size=PRODUCTS_PER_EXAMPLE, max_size=PRODUCTS_PER_EXAMPLE)
# Order lines as (product index, qty); the same product twice is allowed (quantities add up).
lines = st.lists(
    st.tuples(st.integers(min_value=0, max_value=PRODUCTS_PER_EXAMPLE - 1), st.integers(min_value=1, max_value=3)),
    min_size=1,
    max_size=4,
)
# Duplicate and out-of-order deliveries before the pipeline finally runs in order.
chaos = st.lists(st.sampled_from(STAGES), max_size=8)


@pytest.fixture(autouse=True)
def fast_reliable_provider(settings):
    """The simulated provider with no latency and no random failures: these properties are about the
    stage guards, not about provider errors (the retry tests cover those)."""
    settings.ENRICHMENT_LATENCY_MS = 0
    settings.ENRICHMENT_FAILURE_RATE = 0.0
    controls.controls_reset()
    yield
    controls.controls_reset()


def _catalog(initial_stock: list[int]) -> list[str]:
    run = next(_unique)
    skus = [f"P{run}-{i}" for i in range(len(initial_stock))]
    for sku, stock, price in zip(skus, initial_stock, PRICES, strict=False):
        Product.objects.create(sku=sku, name=sku, price=price, stock=stock)
    return skus


def _order(skus: list[str], order_lines) -> Order:
    result = services.order_create(
        client_id=DEFAULT_CLIENT_ID,
        customer_id="prop-customer",
        source="api",
        items=[services.ItemIn(sku=skus[index], qty=qty) for index, qty in order_lines],
    )
    return result.order


def _run(order: Order, stage: str) -> None:
    """What a worker does when it gets this stage's message."""
    if stage == "process":
        services.order_process(order_id=order.id)
    elif stage == "enrich":
        order_enrich(order_id=order.id)
    elif stage == "finalize":
        # EnrichmentMissing is transient: the task retries later (nothing may have changed)
        with contextlib.suppress(services.EnrichmentMissing):
            services.order_finalize(order_id=order.id)
    else:  # pragma: no cover
        raise AssertionError(stage)


def _in_order(order: Order) -> None:
    for stage in STAGES:
        _run(order, stage)


def _state(order: Order, skus: list[str]) -> dict:
    order.refresh_from_db()
    invoices = list(Invoice.objects.filter(order=order).values_list("subtotal", "discount", "total"))
    products = {p.sku: p for p in Product.objects.filter(sku__in=skus)}
    return {
        "status": order.status,
        "total_amount": order.total_amount,
        # per catalog position, so two independent catalogs compare
        "stock": [products[sku].stock for sku in skus],
        "reserved": [products[sku].reserved for sku in skus],
        "invoices": invoices,
        "enrichments": OrderEnrichment.objects.filter(order=order).count(),
    }


@PROPERTY_SETTINGS
@given(initial_stock=stocks, order_lines=lines, deliveries=chaos)
def test_duplicate_and_out_of_order_stages_then_one_in_order_run_equal_a_clean_run(
    initial_stock, order_lines, deliveries
):
    # given: two identical catalogs and orders
    clean_skus = _catalog(initial_stock)
    clean = _order(clean_skus, order_lines)
    messy_skus = _catalog(initial_stock)
    messy = _order(messy_skus, order_lines)

    # when: the clean one runs once in order; the messy one gets any duplicates/out-of-order stages first
    _in_order(clean)
    for stage in deliveries:
        _run(messy, stage)
    _in_order(messy)

    # then
    expected, actual = _state(clean, clean_skus), _state(messy, messy_skus)
    assert actual == expected
    assert expected["status"] in (OrderStatus.COMPLETED, OrderStatus.FAILED)
    assert expected["reserved"] == [0] * PRODUCTS_PER_EXAMPLE
    assert len(expected["invoices"]) == (1 if expected["status"] == OrderStatus.COMPLETED else 0)
    assert expected["enrichments"] == (1 if expected["status"] == OrderStatus.COMPLETED else 0)
    # and a replay of the whole pipeline afterwards changes nothing
    _in_order(messy)
    assert _state(messy, messy_skus) == actual


@PROPERTY_SETTINGS
@given(
    initial_stock=stocks,
    order_lines=lines,
    before=chaos,
    after=chaos,
    fail_stage=st.sampled_from((*STAGES, "dlq")),
)
def test_fail_at_any_point_releases_the_reservation_and_never_invoices(
    initial_stock, order_lines, before, after, fail_stage
):
    # given
    skus = _catalog(initial_stock)
    order = _order(skus, order_lines)
    for stage in before:
        _run(order, stage)
    completed_before_fail = Order.objects.get(id=order.id).status == OrderStatus.COMPLETED

    # when: the order is failed (retries exhausted, poison, dead-lettered) and stages keep arriving
    services.order_fail(order_id=order.id, stage=fail_stage, reason="property test", kind="error")
    for stage in after:
        _run(order, stage)
    _in_order(order)

    # then
    state = _state(order, skus)
    assert state["reserved"] == [0] * PRODUCTS_PER_EXAMPLE, "a reservation was left behind"
    if completed_before_fail:
        # failing a completed order is a no-op: it keeps its one invoice and the stock it moved
        assert state["status"] == OrderStatus.COMPLETED
        assert len(state["invoices"]) == 1
    else:
        assert state["status"] == OrderStatus.FAILED
        assert state["invoices"] == [], "a failed order has an invoice"
        assert state["stock"] == initial_stock, "a failed order moved stock"
