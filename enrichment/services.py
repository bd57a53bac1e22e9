from django.db import close_old_connections, connection, transaction

from enrichment import provider
from orders.models import Order
from orders.services import order_duplicate_skip, order_enrichment_due, order_enrichment_store, order_lock


def order_enrich(*, order_id, attempt: int = 0) -> Order:
    """Ask the provider about the order and store its answer. The provider is called outside any
    transaction (no lock held over I/O); storing re-checks the state under the lock."""
    order = Order.objects.get(id=order_id)
    if not order_enrichment_due(order):
        # Check again under the order's lock before skipping: a redrive publishes this message inside
        # its transaction, which may not have committed yet; the lock waits for it.
        with transaction.atomic():
            order = order_lock(order_id)
            if not order_enrichment_due(order):
                return order_duplicate_skip(order=order, stage="enrich")
    items = [provider.ProviderItem(sku=i.sku, qty=i.qty, unit_price=str(i.unit_price)) for i in order.items.all()]
    if not connection.in_atomic_block:
        # A pooled connection goes back to the pool for the call (a persistent one stays open).
        close_old_connections()
    data = provider.enrich(customer_id=order.customer_id, items=items, attempt=attempt)
    return order_enrichment_store(order_id=order.id, data=data)
