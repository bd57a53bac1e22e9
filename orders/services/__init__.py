"""Writes, one module per concern (HackSoft's services): callers import the names from here. The hot path's
raw SQL is in orders/statements.py.

- create.py   accepting an order (POST /orders): one durable statement, publish after commit
- outbox.py   publishing the outbox rows (fast path and relay); AMQP side in orders/publisher.py
- stages.py   the pipeline's stages: process, enrich, finalize
- cancel.py   cancelling an order: cancelled before completion, or refund_pending after (the saga)
- refund.py   the refund stage: credit note, stock returned, refunded
- reconcile.py  finding in-flight orders whose message was lost, re-publishing their stage
- failure.py  failing an order, recording a retry, re-opening an order for a redrive
- stock.py    reserving and releasing stock
- history.py  the order's history (with statements.history_insert, its only writers) and its live events
- locks.py    named row locks
"""

from orders.services.cancel import OrderCancelResult, OrderNotCancellable, order_cancel
from orders.services.create import IdempotencyConflict, ItemIn, OrderCreateResult, order_create
from orders.services.failure import OrderReopenRefused, order_fail, order_mark_failed, order_reopen, order_retry_record
from orders.services.history import order_duplicate_skip, order_history_append
from orders.services.locks import order_lock
from orders.services.outbox import outbox_publish, outbox_relay_batch
from orders.services.reconcile import ReconcileResult, orders_reconcile
from orders.services.refund import order_refund
from orders.services.stages import (
    EnrichmentDue,
    EnrichmentMissing,
    order_enrich,
    order_enrichment_read,
    order_enrichment_store,
    order_finalize,
    order_process,
)
from orders.services.stock import StockShort, quantities, stock_release, stock_reserve, stock_return
from orders.statements import OUTBOX_CHANNEL

__all__ = [
    "OUTBOX_CHANNEL",
    "EnrichmentDue",
    "EnrichmentMissing",
    "IdempotencyConflict",
    "ItemIn",
    "OrderCancelResult",
    "OrderCreateResult",
    "OrderNotCancellable",
    "OrderReopenRefused",
    "ReconcileResult",
    "StockShort",
    "order_cancel",
    "order_create",
    "order_duplicate_skip",
    "order_enrich",
    "order_enrichment_read",
    "order_enrichment_store",
    "order_fail",
    "order_finalize",
    "order_history_append",
    "order_lock",
    "order_mark_failed",
    "order_process",
    "order_refund",
    "order_reopen",
    "order_retry_record",
    "orders_reconcile",
    "outbox_publish",
    "outbox_relay_batch",
    "quantities",
    "stock_release",
    "stock_reserve",
    "stock_return",
]
