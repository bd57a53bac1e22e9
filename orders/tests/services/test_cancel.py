"""Cancel and refund (orders/services/cancel.py, refund.py): the saga's rules against real PostgreSQL."""

from collections import Counter
from decimal import Decimal

import pytest

from clients.tests.factories import client_with_key
from enrichment import controls
from enrichment.provider import ProviderPermanentError, ProviderTransientError
from orders import services
from orders.models import CreditNote, HistoryEvent, Invoice, Order, OrderStatus, OutboxMessage, Product
from orders.pipeline import ENRICH, FINALIZE, PROCESS, REFUND, OutboxKind
from orders.tests.factories import order_completed, order_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def provider_controls_reset():
    controls.controls_reset()
    yield
    controls.controls_reset()


def _shelf() -> dict[str, tuple[int, int]]:
    return {p.sku: (p.stock, p.reserved) for p in Product.objects.filter(sku__in=["ABC", "XYZ"])}


def _events(order: Order) -> list[tuple[str, str]]:
    return list(Order.objects.get(id=order.id).history.values_list("stage", "event"))


def test_a_pending_order_ends_cancelled_and_every_later_stage_skips(catalog):
    # given
    shelf = _shelf()
    order = order_create()
    # when: cancelled before the process stage ran, then the chain's messages arrive
    result = services.order_cancel(order_id=order.id, actor="client:default", reason="changed my mind")
    services.order_process(order_id=order.id)
    services.order_enrich(order_id=order.id)
    services.order_finalize(order_id=order.id)
    # then
    order.refresh_from_db()
    assert result.changed and order.status == OrderStatus.CANCELLED
    assert (order.cancelled_by, order.cancel_reason) == ("client:default", "changed my mind") and order.cancelled_at
    assert _shelf() == shelf
    assert not Invoice.objects.filter(order=order).exists()
    events = _events(order)
    assert ("cancel", HistoryEvent.CANCELLED) in events
    assert [stage for stage, event in events if event == HistoryEvent.DUPLICATE_SKIPPED] == [
        PROCESS.name,
        ENRICH.name,
        FINALIZE.name,
    ]


def test_a_processing_order_releases_its_reservation_once(catalog):
    # given: stock reserved by the process stage, enrichment stored
    shelf = _shelf()
    order = order_create()
    services.order_process(order_id=order.id)
    services.order_enrich(order_id=order.id)
    assert _shelf()["ABC"] == (shelf["ABC"][0], 2)
    # when: cancelled, then cancelled again, then finalize arrives
    services.order_cancel(order_id=order.id, actor="client:default")
    again = services.order_cancel(order_id=order.id, actor="client:default")
    services.order_finalize(order_id=order.id)
    # then: the reservation is gone, nothing was sold, no invoice
    assert not again.changed and again.order.status == OrderStatus.CANCELLED
    assert _shelf() == shelf
    assert not Invoice.objects.filter(order=order).exists()
    assert _events(order).count(("cancel", HistoryEvent.CANCELLED)) == 1


def test_enrichment_stored_after_a_cancel_during_the_provider_call_changes_nothing(catalog):
    # given: the enrich stage read the order (processing) and is in its provider call
    order = order_create()
    services.order_process(order_id=order.id)
    # when: the cancel commits, then the provider's answer is stored
    services.order_cancel(order_id=order.id, actor="client:default")
    services.order_enrichment_store(order_id=order.id, data={"customer_score": 10, "discount_pct": 0})
    # then
    assert Order.objects.get(id=order.id).status == OrderStatus.CANCELLED
    assert _events(order)[-1] == (ENRICH.name, HistoryEvent.DUPLICATE_SKIPPED)


def test_a_completed_order_becomes_refund_pending_with_one_refund_message(catalog):
    # given
    order = order_completed()
    # when
    first = services.order_cancel(order_id=order.id, actor="staff:alice", reason="damaged")
    second = services.order_cancel(order_id=order.id, actor="staff:alice", reason="damaged")
    # then
    assert first.changed and not second.changed
    assert second.order.status == OrderStatus.REFUND_PENDING
    assert OutboxMessage.objects.filter(order=order, kind=OutboxKind.REFUND_REQUESTED).count() == 1
    assert ("cancel", HistoryEvent.REFUND_REQUESTED) in _events(order)


def test_the_refund_writes_the_negative_invoice_returns_stock_and_ends_refunded_once(catalog):
    # given: a completed order, cancelled
    shelf = _shelf()
    order = order_completed()
    services.order_cancel(order_id=order.id, actor="client:default")
    invoice = Invoice.objects.get(order=order)
    # when: the refund stage runs, and its message is delivered again
    services.order_refund(order_id=order.id)
    services.order_refund(order_id=order.id)
    # then
    order.refresh_from_db()
    credit_note = CreditNote.objects.get(order=order)
    assert order.status == OrderStatus.REFUNDED
    assert credit_note.total == -invoice.total and credit_note.total < Decimal("0")
    assert [(line["sku"], line["qty"]) for line in credit_note.lines] == [
        (line["sku"], -line["qty"]) for line in invoice.lines
    ]
    assert _shelf() == shelf  # sold, then returned: back where it started, nothing reserved
    assert _events(order)[-1] == (REFUND.name, HistoryEvent.DUPLICATE_SKIPPED)
    assert CreditNote.objects.count() == 1


def test_a_finalize_redelivered_after_the_cancel_of_its_completed_order_changes_nothing(catalog):
    # given: finalize committed, its ack lost; the order cancelled meanwhile
    order = order_completed()
    services.order_cancel(order_id=order.id, actor="client:default")
    stock_after_sale = _shelf()
    # when: finalize's message is redelivered, then the refund runs
    services.order_finalize(order_id=order.id)
    # then: no second sale; the refund puts back exactly one sale's stock
    assert _shelf() == stock_after_sale and Invoice.objects.filter(order=order).count() == 1
    services.order_refund(order_id=order.id)
    assert _shelf()["ABC"][0] == stock_after_sale["ABC"][0] + 2


def test_a_failed_order_cannot_be_cancelled(catalog):
    order = order_create(items=[("NOPE", 1)])
    services.order_process(order_id=order.id)
    with pytest.raises(services.OrderNotCancellable, match="nothing to cancel"):
        services.order_cancel(order_id=order.id, actor="client:default")
    assert Order.objects.get(id=order.id).status == OrderStatus.FAILED


def test_another_clients_order_is_not_found(catalog):
    # given: an order of the default client, and a shop's key
    order = order_create()
    shop, _ = client_with_key("shop")
    # when / then
    with pytest.raises(Order.DoesNotExist):
        services.order_cancel(order_id=order.id, actor="client:shop", client_id=shop.id)
    assert Order.objects.get(id=order.id).status == OrderStatus.PENDING


def test_a_refund_that_fails_leaves_the_order_refund_pending_and_owed(catalog):
    # given: a completed order, cancelled; the provider rejects refunds
    order = order_completed()
    services.order_cancel(order_id=order.id, actor="client:default")
    controls.controls_set(refund="reject")
    with pytest.raises(ProviderPermanentError):
        services.order_refund(order_id=order.id)
    # when: the base task's failure handling records it
    failed = services.order_fail(order_id=order.id, stage=REFUND.name, reason="refund: rejected", kind="permanent")
    # then: still owed; a redrive re-opens it for the refund and the refund then completes
    assert failed.status == OrderStatus.REFUND_PENDING and failed.failure_reason == "refund: rejected"
    assert _events(order)[-1] == (REFUND.name, HistoryEvent.FAILED)
    controls.controls_set(refund="ok")
    services.order_reopen(order=Order.objects.get(id=order.id), stage=REFUND)
    assert services.order_refund(order_id=order.id).status == OrderStatus.REFUNDED


def test_a_forward_stage_failure_never_touches_an_order_being_refunded(catalog):
    order = order_completed()
    services.order_cancel(order_id=order.id, actor="client:default")
    assert (
        services.order_fail(order_id=order.id, stage=FINALIZE.name, reason="late", kind="permanent").status
        == OrderStatus.REFUND_PENDING
    )


def test_a_flaky_refund_raises_a_transient_error_until_its_third_attempt(catalog):
    order = order_completed()
    services.order_cancel(order_id=order.id, actor="client:default")
    controls.controls_set(refund="flaky")
    for attempt in (0, 1):
        with pytest.raises(ProviderTransientError):
            services.order_refund(order_id=order.id, attempt=attempt)
    assert services.order_refund(order_id=order.id, attempt=2).status == OrderStatus.REFUNDED


@pytest.mark.parametrize(
    "status", [OrderStatus.CANCELLED, OrderStatus.REFUND_PENDING, OrderStatus.REFUNDED, OrderStatus.COMPLETED]
)
def test_a_forward_redrive_of_an_order_past_its_pipeline_is_refused(catalog, status):
    order = order_create()
    Order.objects.filter(id=order.id).update(status=status)
    with pytest.raises(services.OrderReopenRefused):
        services.order_reopen(order=Order.objects.get(id=order.id), stage=ENRICH)


def test_the_refund_redrive_needs_a_refund_pending_order(catalog):
    order = order_completed()
    with pytest.raises(services.OrderReopenRefused, match="not refund_pending"):
        services.order_reopen(order=order, stage=REFUND)


def test_stock_return_adds_back_in_sku_order(catalog):
    before = _shelf()
    services.stock_return(Counter({"XYZ": 1, "ABC": 3}))
    after = _shelf()
    assert (after["ABC"][0] - before["ABC"][0], after["XYZ"][0] - before["XYZ"][0]) == (3, 1)
