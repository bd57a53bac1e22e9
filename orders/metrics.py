"""Prometheus metrics. With PROMETHEUS_MULTIPROC_DIR set, every process writes its own files and
/metrics aggregates them (several web and worker processes)."""

from prometheus_client import Counter, Gauge, Histogram

ORDERS_ACCEPTED = Counter("orders_accepted_total", "Orders accepted by POST /orders", ["source"])
ORDERS_COMPLETED = Counter("orders_completed_total", "Orders that reached completed", ["source"])
ORDERS_FAILED = Counter("orders_failed_total", "Orders that reached failed", ["source", "kind"])
ORDERS_CANCELLED = Counter(
    "orders_cancelled_total",
    "Cancel requests that took effect: cancelled before completion, or refund requested",
    ["outcome"],
)
ORDERS_REFUNDED = Counter(
    "orders_refunded_total", "Completed orders refunded by the refund stage (credit note written)", ["source"]
)
REFUNDS_FAILED = Counter(
    "orders_refunds_failed_total",
    "Refund stage failures (the order stays refund_pending; its message dead-lettered)",
    ["kind"],
)
ORDERS_STUCK = Counter(
    "orders_stuck_found_total", "In-flight orders found with no progress for STUCK_ORDER_SECONDS", ["stage"]
)
ORDERS_RECONCILED = Counter(
    "orders_reconciled_total", "Stuck orders whose stage message the reconciler re-published", ["stage"]
)
ORDERS_RECONCILE_GAVE_UP = Counter(
    "orders_reconcile_gave_up_total", "Stuck orders failed after RECONCILE_MAX_ATTEMPTS", ["stage"]
)
OLDEST_IN_FLIGHT_AGE = Gauge(
    "orders_oldest_in_flight_age_seconds",
    "Age of the oldest order not yet terminal (since its last change)",
    multiprocess_mode="max",
)
# POST → completed, observed when finalize commits: the latency SLO's histogram (deploy/prometheus/alerts.yml).
ORDER_COMPLETION_SECONDS = Histogram(
    "order_completion_seconds",
    "Seconds from an order's acceptance to its completion",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
STAGE_DURATION = Histogram(
    "order_stage_duration_seconds",
    "Time one stage task took",
    ["stage", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TASK_RETRIES = Counter("order_task_retries_total", "Stage retries scheduled after a transient error", ["stage"])
DEAD_LETTERED = Counter("orders_dead_lettered_total", "Dead letters archived from the DLQ", ["stage", "reason"])
OUTBOX_BACKLOG = Gauge("orders_outbox_backlog", "Outbox rows not yet published", multiprocess_mode="max")
OUTBOX_OLDEST_AGE = Gauge(
    "orders_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row", multiprocess_mode="max"
)
DLQ_DEPTH = Gauge("orders_dlq_depth", "Messages waiting in the dead-letter queue", multiprocess_mode="max")
# 1 if the service answered this process's last (cached) check, 0 if not: RabbitMQ and Redis are not in
# /readyz (web pods serve without them), so their health is watched here and on GET /ops/diagnostics.
BACKING_SERVICE_UP = Gauge(
    "orders_backing_service_up",
    "Whether a backing service answered the last check",
    ["service"],
    multiprocess_mode="mostrecent",
)
DEAD_LETTERS_MALFORMED = Counter(
    "orders_dead_letters_malformed_total",
    "Dead letters the archiver could not read as a task message (stored raw, acked)",
)
ARCHIVER_STORE_FAILURES = Counter(
    "orders_archiver_store_failures_total", "Dead letters the archiver could not store (left in the DLQ, retried)"
)
# Webhooks (orders/webhooks/): every attempt's outcome (delivered, retry, failed) and HTTP duration; the
# backlog (events neither delivered nor dead) is read at scrape time (orders/metrics_collect.py).
WEBHOOK_DELIVERIES = Counter("orders_webhook_deliveries_total", "Webhook delivery attempts, by outcome", ["outcome"])
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "orders_webhook_delivery_seconds",
    "Seconds one webhook delivery attempt took (resolve, connect, request, answer)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "orders_webhook_endpoints_disabled_total",
    "Webhook endpoints disabled for failing too long (their events wait until an operator re-enables them)",
)
WEBHOOK_BACKLOG = Gauge(
    "orders_webhook_backlog", "Webhook events not delivered yet (queued or waiting to retry)", multiprocess_mode="max"
)
