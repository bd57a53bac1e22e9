"""Issue: nothing stuck silently. Accepted orders whose stage queue was purged (an operator's mistake, a
broker that lost its disk) complete after the reconciler's threshold, with real workers and relay."""

import pytest
from django.conf import settings
from kombu import Connection

from devtools.procs import wait_until
from e2e.conftest import wait_terminal
from orders.models import Order, OrderEnrichment, OrderStatus
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e
RECONCILER = {"STUCK_ORDER_SECONDS": "2", "RECONCILE_INTERVAL_SECONDS": "1"}


def purge(queue: str) -> int:
    with Connection(settings.CELERY_BROKER_URL) as conn:
        return conn.default_channel.queue_purge(queue) or 0


def ready(queue: str) -> int:
    with Connection(settings.CELERY_BROKER_URL) as conn:
        return conn.default_channel.queue_declare(queue, passive=True)[1]


@pytest.mark.parametrize(
    "lost, first_workers",
    [("process", ()), ("enrichment", ("process",)), ("finalize", ("process", "enrichment"))],
)
def test_orders_whose_stage_queue_was_purged_complete_after_the_threshold(processes, http, lost, first_workers):
    # given: orders accepted and published, moved up to the stage whose queue is then purged
    catalog_create()
    processes.relay(env=RECONCILER)
    for queue in first_workers:
        processes.worker(queue, pool="threads" if queue == "enrichment" else "prefork", env=RECONCILER)
    order_ids = [http.post_order([("ABC", 1)]) for _ in range(5)]
    wait_until(lambda: ready(lost) == 5, timeout=30, what=f"5 messages waiting in {lost}")
    if lost == "finalize":
        wait_until(
            lambda: OrderEnrichment.objects.filter(order_id__in=order_ids).count() == 5, timeout=30, what="enriched"
        )
    # when: the queue loses them, and the rest of the pipeline starts
    assert purge(lost) == 5
    processes.pipeline(env=RECONCILER, relay=False)
    # then: every order completes, once, with `reconciled` in its history
    for order_id in order_ids:
        order = wait_terminal(http, order_id, timeout=60)
        assert order["status"] == "completed"
        assert [h["stage"] for h in order["history"] if h["event"] == "reconciled"][:1] == [
            {"process": "process", "enrichment": "enrich", "finalize": "finalize"}[lost]
        ]
    assert Order.objects.filter(id__in=order_ids, status=OrderStatus.COMPLETED).count() == 5
