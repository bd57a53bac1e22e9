"""The pipeline's stages (orders/services/stages.py): process, enrich, finalize, each doing its work once
whatever the redeliveries. (Properties over any order of deliveries: test_stages_properties.py.)"""

import threading
import time

import pytest
from django.db import connection, transaction

from enrichment.provider import ProviderPermanentError
from orders import services
from orders.models import HistoryEvent, Invoice, OrderEnrichment, OrderStatus, Product
from orders.services import order_enrich
from orders.tests.factories import order_create

pytestmark = pytest.mark.django_db


def _stock(sku: str) -> tuple[int, int]:
    product = Product.objects.get(sku=sku)
    return product.stock, product.reserved


def _events(order) -> list[tuple[str, str]]:
    return list(order.history.values_list("stage", "event"))


def test_order_process_reserves_stock_and_prices_items(catalog):
    order = order_create(items=[("ABC", 2), ("XYZ", 1), ("ABC", 1)])
    # when
    order = services.order_process(order_id=order.id)
    # then
    assert order.status == OrderStatus.PROCESSING
    assert _stock("ABC") == (1000, 3)
    assert _stock("XYZ") == (1000, 1)
    assert str(order.total_amount) == "45.49"  # 3 x 12.50 + 7.99
    assert set(order.items.values_list("unit_price", flat=True)) == {catalog["ABC"].price, catalog["XYZ"].price}


def test_order_process_twice_reserves_once_and_records_the_duplicate(catalog):
    order = order_create(items=[("ABC", 2)])
    services.order_process(order_id=order.id)
    # when
    services.order_process(order_id=order.id)
    # then
    assert _stock("ABC") == (1000, 2)
    assert ("process", HistoryEvent.DUPLICATE_SKIPPED) in _events(order)


def test_order_process_unknown_sku_fails_without_reserving(catalog):
    order = order_create(items=[("ABC", 1), ("NOPE", 1)])
    order = services.order_process(order_id=order.id)
    assert order.status == OrderStatus.FAILED
    assert order.failure_reason == "unknown sku NOPE"
    assert _stock("ABC") == (1000, 0)


def test_order_process_not_enough_stock_fails_with_reason(catalog):
    order = order_create(items=[("SCARCE", 3)])
    order = services.order_process(order_id=order.id)
    assert order.status == OrderStatus.FAILED
    assert "not enough stock for SCARCE (wanted 3, available 2)" in order.failure_reason
    assert _stock("SCARCE") == (2, 0)


def test_order_process_short_on_one_sku_reserves_none_of_the_others(catalog):
    # given: ABC is available, SCARCE has 2 of the 3 wanted
    order = order_create(items=[("ABC", 1), ("SCARCE", 3), ("XYZ", 2)])
    # when
    order = services.order_process(order_id=order.id)
    # then: all or nothing
    assert order.status == OrderStatus.FAILED
    assert order.failure_reason == "not enough stock for SCARCE (wanted 3, available 2)"
    assert [_stock(sku)[1] for sku in ("ABC", "SCARCE", "XYZ")] == [0, 0, 0]
    assert ("process", HistoryEvent.COMPLETED) not in _events(order)


def test_order_enrich_stores_provider_answer_once(catalog):
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    # when
    order_enrich(order_id=order.id)
    order_enrich(order_id=order.id)
    # then
    enrichment = OrderEnrichment.objects.get(order=order)
    assert enrichment.data["provider"] == "simulated"
    assert 0 <= enrichment.data["customer_score"] < 100
    assert _events(order).count(("enrich", HistoryEvent.DUPLICATE_SKIPPED)) == 1


def test_order_enrich_poison_item_raises_permanent_error(catalog):
    order = order_create(items=[("BOMBA", 1)])
    services.order_process(order_id=order.id)
    with pytest.raises(ProviderPermanentError):
        order_enrich(order_id=order.id)
    assert not OrderEnrichment.objects.filter(order=order).exists()


@pytest.mark.django_db(transaction=True)
def test_enrich_delivered_before_the_redrive_that_published_it_commits_waits_for_it(catalog):
    # given: an order that failed at enrich, and a redrive holding its lock, not committed yet
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    services.order_fail(order_id=order.id, stage="enrich", reason="provider down")
    locked, release = threading.Event(), threading.Event()

    def redrive_in_flight():
        try:
            with transaction.atomic():
                reopened = services.order_lock(order.id)
                reopened.status = OrderStatus.PROCESSING
                reopened.save(update_fields=["status"])
                locked.set()
                release.wait(5)
                time.sleep(0.3)  # the message is already out; the commit comes a little later
        finally:
            connection.close()

    redrive = threading.Thread(target=redrive_in_flight)
    redrive.start()
    assert locked.wait(5)
    release.set()
    # when: the redriven message is delivered at once
    result = order_enrich(order_id=order.id)
    redrive.join()
    # then: it waited for the commit and enriched, instead of skipping the order as failed
    assert OrderEnrichment.objects.filter(order=order).exists()
    assert result.status == OrderStatus.PROCESSING
    assert ("enrich", HistoryEvent.DUPLICATE_SKIPPED) not in list(order.history.values_list("stage", "event"))


@pytest.mark.django_db
def test_enrich_of_a_failed_order_is_skipped(catalog):
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    services.order_fail(order_id=order.id, stage="enrich", reason="x")
    assert order_enrich(order_id=order.id).status == OrderStatus.FAILED
    assert not OrderEnrichment.objects.filter(order=order).exists()


def test_order_finalize_writes_invoice_moves_stock_and_completes(catalog):
    order = order_create(items=[("ABC", 2), ("XYZ", 1)])
    services.order_process(order_id=order.id)
    services.order_enrichment_store(order_id=order.id, data={"discount_pct": 10, "customer_score": 90})
    # when
    order = services.order_finalize(order_id=order.id)
    # then
    invoice = Invoice.objects.get(order=order)
    assert order.status == OrderStatus.COMPLETED
    assert (str(invoice.subtotal), str(invoice.discount), str(invoice.total)) == ("32.99", "3.30", "29.69")
    assert _stock("ABC") == (998, 0)
    assert _stock("XYZ") == (999, 0)


def test_every_stage_twice_moves_stock_once_and_writes_one_invoice(catalog):
    order = order_create(items=[("ABC", 5)])
    for _ in range(2):
        services.order_process(order_id=order.id)
        order_enrich(order_id=order.id)
        services.order_finalize(order_id=order.id)
    # then
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert Invoice.objects.filter(order=order).count() == 1
    assert _stock("ABC") == (995, 0)
    assert _events(order).count(("finalize", HistoryEvent.DUPLICATE_SKIPPED)) == 1


def test_order_finalize_before_enrichment_raises_transient(catalog):
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    with pytest.raises(services.EnrichmentMissing):
        services.order_finalize(order_id=order.id)
    assert not Invoice.objects.filter(order=order).exists()


def test_stage_on_completed_order_changes_nothing(catalog):
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    order_enrich(order_id=order.id)
    services.order_finalize(order_id=order.id)
    # when: a replayed process message after completion
    services.order_process(order_id=order.id)
    services.order_fail(order_id=order.id, stage="process", reason="late failure")
    # then
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert _stock("ABC") == (999, 0)
