"""The refund stage: compensation for a completed order that was cancelled (orders/services/cancel.py).

Like a forward stage: the provider is called outside any lock, and the effect — the credit note (the
negative of the invoice, one per order, unique in the database), the stock put back, `refunded` — is
written once, under the order's lock, only while the order is `refund_pending`. Redeliveries skip.
"""

from typing import Any

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from enrichment import provider
from orders import metrics
from orders.models import CreditNote, HistoryEvent, Invoice, Order, OrderStatus
from orders.pipeline import REFUND
from orders.services.history import order_duplicate_skip, order_history_append
from orders.services.locks import order_lock
from orders.services.stock import quantities, stock_return
from orders.webhooks.events import webhook_event_record


def _refund_due(order_id: Any) -> bool:
    return (
        Order.objects.filter(id=order_id, status=OrderStatus.REFUND_PENDING).exists()
        and not CreditNote.objects.filter(order_id=order_id).exists()
    )


def order_refund(*, order_id: Any, attempt: int = 0) -> Order:
    """Refund the order through the provider and write its credit note, once."""
    if not _refund_due(order_id):
        # Checked again under the lock before skipping: a redrive publishes inside its transaction.
        with transaction.atomic():
            order = order_lock(order_id)
            if not _refund_due(order_id):
                return order_duplicate_skip(order=order, stage=REFUND.name)
    order = Order.objects.get(id=order_id)
    invoice = Invoice.objects.get(order_id=order_id)
    if not connection.in_atomic_block:
        close_old_connections()  # a pooled connection goes back to the pool for the call
    receipt = provider.refund(
        customer_id=order.customer_id, reference=invoice.number, amount=str(invoice.total), attempt=attempt
    )
    # transaction ensures the credit note, the returned stock and the status commit together, once.
    with transaction.atomic():
        order = order_lock(order_id)
        if order.status != OrderStatus.REFUND_PENDING:
            return order_duplicate_skip(order=order, stage=REFUND.name)
        now = timezone.now()
        credit_note = CreditNote.objects.create(
            order=order,
            number=f"CN-{now:%Y%m%d}-{order.id.hex[:12].upper()}",
            total=-invoice.total,
            lines=[{**line, "qty": -int(line["qty"])} for line in invoice.lines],
        )
        stock_return(quantities(order.items.all()))
        order.status = OrderStatus.REFUNDED
        order.failure_reason, order.failure_kind = "", ""
        order.save(update_fields=["status", "failure_reason", "failure_kind", "updated_at"])
        order_history_append(
            order=order,
            stage=REFUND.name,
            event=HistoryEvent.REFUNDED,
            detail={
                "credit_note": credit_note.number,
                "total": str(credit_note.total),
                "refund_id": receipt.get("refund_id", ""),
            },
        )
        webhook_event_record(order_id=order.id, status=OrderStatus.REFUNDED)
        source = order.source
        transaction.on_commit(lambda: metrics.ORDERS_REFUNDED.labels(source=source).inc())
    return order
