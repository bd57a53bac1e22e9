"""Issue: core pipeline, end to end over real HTTP, RabbitMQ and PostgreSQL with real workers."""

import concurrent.futures

import pytest

from devtools.procs import wait_until
from e2e.conftest import wait_terminal
from orders.models import Invoice, Order, Product
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e


def test_posted_order_completes_with_enrichment_invoice_and_history(processes, http):
    # given
    catalog_create()
    processes.pipeline()
    # when
    order_id = http.post_order([("ABC", 2), ("XYZ", 1)], customer_id="123", source="mobile", key="7f1c-e2e")
    order = wait_terminal(http, order_id)
    # then
    assert order["status"] == "completed", order
    assert order["enrichment"]["provider"] == "simulated"
    assert order["invoice"]["total"] == order["total_amount"]
    assert [i["unit_price"] for i in order["items"]] == ["12.50", "7.99"]
    events = [(h["stage"], h["event"]) for h in order["history"]]
    assert events == [
        ("api", "accepted"),
        ("outbox", "published"),
        ("process", "completed"),
        ("enrich", "completed"),
        ("finalize", "completed"),
    ]
    assert (Product.objects.get(sku="ABC").stock, Product.objects.get(sku="XYZ").stock) == (998, 999)


def test_fifty_concurrent_orders_all_complete_and_stock_moves_exactly(processes, http):
    # given
    catalog_create()
    processes.pipeline()
    # when: 50 orders posted at once
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(
            pool.map(lambda n: http.post_order([("ABC", 1 + n % 3), ("Notebook", 1)], customer_id=f"c{n}"), range(50))
        )
    # then
    wait_until(
        lambda: Order.objects.filter(id__in=ids, status="completed").count() == 50,
        timeout=120,
        interval=0.5,
        what="50 orders completed",
    )
    expected_abc = sum(1 + n % 3 for n in range(50))
    abc, notebook = Product.objects.get(sku="ABC"), Product.objects.get(sku="Notebook")
    assert (abc.stock, abc.reserved) == (1000 - expected_abc, 0)
    assert (notebook.stock, notebook.reserved) == (950, 0)
    assert Invoice.objects.filter(order_id__in=ids).count() == 50
