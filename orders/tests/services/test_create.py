"""Accepting an order (orders/services/create.py): one statement stores the order, its items, its
idempotency key, its outbox row and its history; a repeated key returns the same order or conflicts."""

import pytest

from clients.models import DEFAULT_CLIENT_ID
from orders import services
from orders.models import HistoryEvent, IdempotencyKey, OrderStatus, OutboxMessage
from orders.tests.factories import order_create

pytestmark = pytest.mark.django_db


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


def _create_with_key(*, qty: int, request_hash: str) -> services.OrderCreateResult:
    return services.order_create(
        client_id=DEFAULT_CLIENT_ID,
        customer_id="c",
        source="api",
        items=[services.ItemIn("ABC", qty)],
        idempotency_key="k",
        request_hash=request_hash,
    )


def test_order_create_same_key_same_body_returns_same_order(catalog):
    first = _create_with_key(qty=1, request_hash="h1")
    second = _create_with_key(qty=1, request_hash="h1")
    assert first.created and not second.created
    assert second.order.id == first.order.id
    assert OutboxMessage.objects.count() == 1


def test_order_create_same_key_other_body_conflicts(catalog):
    _create_with_key(qty=1, request_hash="h1")
    with pytest.raises(services.IdempotencyConflict):
        _create_with_key(qty=2, request_hash="h2")
