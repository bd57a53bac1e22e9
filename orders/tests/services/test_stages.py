from collections import Counter

import pytest

from enrichment.provider import ProviderPermanentError
from orders.services import order_enrich
from clients.models import DEFAULT_CLIENT_ID
from orders import services
from orders.models import HistoryEvent, IdempotencyKey, Invoice, OrderEnrichment, OrderStatus, OutboxMessage, Product
from orders.tests.factories import order_create

pytestmark = pytest.mark.django_db


def _stock(sku: str) -> tuple[int, int]:
    product = Product.objects.get(sku=sku)
    return product.stock, product.reserved


def _events(order) -> list[tuple[str, str]]:
    return list(order.history.values_list("stage", "event"))


def test_order_create_stores_order_items_key_outbox_and_history(catalog):
    # when
    order = order_create(items=[("ABC", 2), ("XYZ", 1)], key="key-1")
    # then
    assert order.status == OrderStatus.PENDING
    assert sorted(order.items.values_list("sku", "qty")) == [("ABC", 2), ("XYZ", 1)]
    assert IdempotencyKey.objects.get(key="key-1").order_id == order.id
    assert OutboxMessage.objects.filter(order=order, published_at__isnull=True).count() == 1
    assert _events(order) == [("api", HistoryEvent.ACCEPTED)]


def test_order_create_same_key_same_body_returns_same_order(catalog):
    first = services.order_create(client_id=DEFAULT_CLIENT_ID, customer_id="c", source="api", items=[services.ItemIn("ABC", 1)], idempotency_key="k", request_hash="h1")
    second = services.order_create(client_id=DEFAULT_CLIENT_ID, customer_id="c", source="api", items=[services.ItemIn("ABC", 1)], idempotency_key="k", request_hash="h1")
    assert first.created and not second.created
    assert second.order.id == first.order.id
    assert OutboxMessage.objects.count() == 1


def test_order_create_same_key_other_body_conflicts(catalog):
    services.order_create(client_id=DEFAULT_CLIENT_ID, customer_id="c", source="api", items=[services.ItemIn("ABC", 1)], idempotency_key="k", request_hash="h1")
    with pytest.raises(services.IdempotencyConflict):
        services.order_create(client_id=DEFAULT_CLIENT_ID, customer_id="c", source="api", items=[services.ItemIn("ABC", 2)], idempotency_key="k", request_hash="h2")


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


def test_stock_reserve_names_every_short_sku_and_reserves_nothing(catalog):
    with pytest.raises(services.StockShort, match=r"^unknown sku NOPE; not enough stock for SCARCE \(wanted 5, available 2\)$"):
        services.stock_reserve(Counter({"ABC": 4, "NOPE": 1, "SCARCE": 5}))
    assert _stock("ABC") == (1000, 0)


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
