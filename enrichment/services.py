from django.db import close_old_connections, connection, transaction

from enrichment import provider
from orders.models import Order
from orders.services import order_duplicate_skip, order_enrichment_read, order_enrichment_store, order_lock


def order_enrich(*, order_id, attempt: int = 0) -> Order:
    """Ask the provider about the order and store its answer. The provider is called outside any
    transaction (no lock held over I/O); storing re-checks the state under the lock."""
    read = order_enrichment_read(order_id=order_id)
    if not read.due:
        # Check again under the order's lock before skipping: a redrive publishes this message inside
        # its transaction, which may not have committed yet; the lock waits for it.
        with transaction.atomic():
            order = order_lock(order_id)
            read = order_enrichment_read(order_id=order_id)
            if not read.due:
                return order_duplicate_skip(order=order, stage="enrich")
    items = [provider.ProviderItem(sku=sku, qty=qty, unit_price=str(price)) for sku, qty, price in read.items]
    if not connection.in_atomic_block:
        # A pooled connection goes back to the pool for the call (a persistent one stays open).
        close_old_connections()
    data = provider.enrich(customer_id=read.customer_id, items=items, attempt=attempt)
    return order_enrichment_store(order_id=order_id, data=data)
