"""Issue: failures. Each row of the failure table end to end: the order's final state AND what the
RabbitMQ dead-letter queue holds (read over AMQP), with real workers."""

import json
import subprocess

import pytest
from django.conf import settings

from clients.models import DEFAULT_CLIENT_ID
from conftest import queue_messages
from devtools.procs import wait_until
from e2e.conftest import wait_terminal
from enrichment import controls
from orders import pipeline, services
from orders.models import DeadLetter, Invoice, Order, OrderHistory, OrderStatus, Product
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e


def dlq() -> list[dict]:
    """Take every message off the DLQ: headers plus the decoded Celery body."""
    taken = []
    for message in queue_messages("orders.dlq"):
        args, _kwargs, embed = json.loads(message.body)
        taken.append({"headers": message.headers, "args": args, "embed": embed})
    return taken


def events(order: dict, stage: str | None = None) -> list[str]:
    return [h["event"] for h in order["history"] if stage is None or h["stage"] == stage]


def assert_stock_untouched(sku: str, stock: int = 1000) -> None:
    product = Product.objects.get(sku=sku)
    assert (product.stock, product.reserved) == (stock, 0)


def stage_succeeded(worker, stage: str, order_id: str) -> bool:
    """Whether the worker logged the stage's task of this order as finished without error (`stage_finished`
    with `outcome=ok`, orders/stage_task.py): Celery then acks its message, which therefore is never
    dead-lettered (the message of a task that raised is rejected instead)."""
    return any(
        "stage_finished" in line
        and "outcome=ok" in line
        and f"order_id={order_id}" in line
        and f"stage={stage}" in line
        for line in worker.output().splitlines()
    )


def _left_open(stage: str, event: str, detail: dict) -> bool:
    """Whether a stage's run left the order open, so that its chain went on to the next stage."""
    if event == "duplicate_skipped":
        return detail["status"] not in ("completed", "failed")
    return event == "completed" and stage != pipeline.FINALIZE.name  # a completed process or enrich: processing


def stage_messages_all_ran(order_id: str, *, chains: int) -> bool:
    """Whether every stage message of the `chains` chains published for the order has run. Each run writes
    one history entry (completed, duplicate_skipped or failed); a run that leaves the order open passes its
    chain on to the next stage, one on a completed or failed order ends its chain (orders/stage_task.py)."""
    runs: dict[str, list[bool]] = {s.name: [] for s in pipeline.STAGES}
    entries = OrderHistory.objects.filter(
        order_id=order_id, stage__in=list(runs), event__in=["completed", "duplicate_skipped", "failed"]
    )
    for stage, event, detail in entries.values_list("stage", "event", "detail"):
        runs[stage].append(_left_open(stage, event, detail))
    # the first stage runs once per chain, each later one once per run before it that left the order open
    if len(runs[pipeline.STAGES[0].name]) < chains:
        return False
    return all(
        len(runs[after.name]) == sum(runs[before.name])
        for before, after in zip(pipeline.STAGES, pipeline.STAGES[1:], strict=False)
    )


def test_transient_errors_retry_with_backoff_then_complete(processes, http):
    catalog_create()
    processes.pipeline()
    order = wait_terminal(http, http.post_order([("FLAKY", 1)]))
    assert order["status"] == "completed", order
    retries = [h for h in order["history"] if h["event"] == "retry"]
    assert [r["detail"]["attempt"] for r in retries] == [1, 2]
    assert all("ProviderTransientError" in r["detail"]["error"] and r["detail"]["next_delay_s"] <= 2 for r in retries)
    assert dlq() == []


def test_exhausted_retries_fail_the_order_and_dead_letter_its_message(processes, http):
    catalog_create()
    processes.pipeline()
    order_id = http.post_order([("DOWN", 2), ("ABC", 1)])
    order = wait_terminal(http, order_id)
    # then: failed with a clear reason, after TASK_MAX_RETRIES retries
    assert order["status"] == "failed"
    assert "retries exhausted after 2 retries" in order["failure_reason"]
    assert "provider unavailable" in order["failure_reason"]
    assert events(order, "enrich") == ["retry", "retry", "failed"]
    # and: its message is the only one in the DLQ, with what a redrive needs
    letters = wait_until(dlq, timeout=10, what="dead letter")
    assert len(letters) == 1
    letter = letters[0]
    assert letter["args"] == [order_id]
    assert letter["headers"]["task"] == "enrichment.enrich"
    assert letter["headers"]["retries"] == 2
    assert letter["headers"]["x-death"][0]["reason"] == "rejected"
    assert [s["task"] for s in letter["embed"]["chain"]] == ["orders.finalize"]
    assert_stock_untouched("ABC")


def test_poison_message_fails_at_once_and_is_dead_lettered(processes, http):
    catalog_create()
    processes.pipeline()
    order_id = http.post_order([("BOMBA", 1)])
    order = wait_terminal(http, order_id)
    assert order["status"] == "failed"
    assert order["failure_reason"] == "enrich: ProviderPermanentError: provider rejected poison item BOMBA"
    assert "retry" not in events(order)
    letters = wait_until(dlq, timeout=10, what="dead letter")
    assert [(m["args"], m["headers"]["retries"]) for m in letters] == [([order_id], 0)]
    assert_stock_untouched("BOMBA")


@pytest.mark.parametrize(
    "items, reason", [([("NOPE", 1)], "unknown sku NOPE"), ([("SCARCE", 3)], "not enough stock for SCARCE")]
)
def test_business_rule_failure_is_not_retried_nor_dead_lettered(processes, http, items, reason):
    catalog_create()
    workers = processes.pipeline()
    order_id = http.post_order(items)
    order = wait_terminal(http, order_id)
    assert order["status"] == "failed"
    assert reason in order["failure_reason"]
    assert events(order) == ["accepted", "published", "failed"]
    # the process task succeeded, so its message is acked, not dead-lettered, and the failed order ended the chain
    wait_until(
        lambda: stage_succeeded(workers["process"], pipeline.PROCESS.name, order_id),
        timeout=30,
        what="the process task to succeed",
    )
    assert dlq() == []


def test_hanging_provider_hits_soft_time_limit_retries_then_dead_letters(processes, http):
    # given: enrichment on prefork (time limits need it), a soft limit well below the provider's hang
    catalog_create()
    processes.worker("process")
    processes.worker("finalize")
    processes.worker(
        "enrichment", concurrency=2, env={"ENRICHMENT_SOFT_TIME_LIMIT": "0.5", "ENRICHMENT_PROVIDER_TIMEOUT": "30"}
    )
    processes.relay()
    # when
    order_id = http.post_order([("HANG", 1)])
    order = wait_terminal(http, order_id, timeout=90)
    # then: each attempt timed out softly, was retried, and the bound ended it failed + DLQ
    assert order["status"] == "failed"
    assert "SoftTimeLimitExceeded" in order["failure_reason"]
    assert [h["detail"]["error"].split(":")[0] for h in order["history"] if h["event"] == "retry"] == [
        "SoftTimeLimitExceeded"
    ] * 2
    assert [m["args"] for m in wait_until(dlq, timeout=10, what="dead letter")] == [[order_id]]


def test_message_that_kills_every_worker_is_dead_lettered_by_the_delivery_limit(processes, http):
    # given: a prefork enrichment worker (a dying child is replaced, the message redelivered)
    catalog_create()
    processes.worker("process")
    processes.worker("finalize")
    processes.worker("enrichment", concurrency=1)
    processes.relay()
    # when
    order_id = http.post_order([("CRASH", 1)])
    letters = wait_until(
        lambda: queue_depth("orders.dlq") >= 1 and dlq(), timeout=90, what="delivery-limit dead letter"
    )
    # then: RabbitMQ dead-lettered it after delivery-limit + 1 deliveries, not forever
    assert [m["args"] for m in letters] == [[order_id]]
    death = letters[0]["headers"]["x-death"][0]
    assert death["reason"] == "delivery_limit" and death["queue"] == "enrichment"
    # and: the archiver ends the order failed with the number of deliveries
    republish(letters[0])
    processes.manage("archiver", "archive_dead_letters", "--once", "--heartbeat-file", "").popen.wait(timeout=60)
    order = http.get_order(order_id)
    assert order["status"] == "failed"
    assert order["failure_reason"] == f"dead-lettered after {settings.QUEUE_DELIVERY_LIMIT + 1} deliveries (enrich)"
    assert DeadLetter.objects.get(order_id=order_id).reason == "delivery_limit"
    assert_stock_untouched("CRASH")


def queue_depth(name: str) -> int:
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL) as conn:
        return conn.channel().queue_declare(name, passive=True)[1]


def republish(letter: dict) -> None:
    """Put a dead letter read by the test back on the DLQ, headers intact, for the archiver."""
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL) as conn:
        conn.default_channel.basic_publish(
            conn.default_channel.prepare_message(
                json.dumps([letter["args"], {}, letter["embed"]]),
                content_type="application/json",
                content_encoding="utf-8",
                headers=letter["headers"],
            ),
            exchange="",
            routing_key="orders.dlq",
        )


def test_worker_killed_mid_task_redelivers_and_completes_exactly_once(processes, http):
    # given: a slow enrichment worker (threads pool, as in production)
    catalog_create()
    processes.worker("process")
    processes.worker("finalize")
    slow = processes.worker("enrichment", pool="threads", concurrency=4, env={"ENRICHMENT_LATENCY_MS": "5000"})
    processes.relay()
    order_id = http.post_order([("ABC", 3)])
    wait_until(
        lambda: "enrichment.enrich" in slow.output() and "received" in slow.output(), timeout=30, what="task taken"
    )
    # when: SIGKILL while it holds the task, then a fresh worker
    slow.kill9()
    processes.worker("enrichment", pool="threads", concurrency=4)
    order = wait_terminal(http, order_id, timeout=60)
    # then
    assert order["status"] == "completed"
    assert Invoice.objects.filter(order_id=order_id).count() == 1
    product = Product.objects.get(sku="ABC")
    assert (product.stock, product.reserved) == (997, 0)
    assert dlq() == []


def test_same_message_published_twice_to_two_workers_takes_effect_once(processes, http):
    # given: an order accepted without the fast path, and every stage doubled
    catalog_create()
    result = services.order_create(
        client_id=DEFAULT_CLIENT_ID,
        customer_id="dup",
        source="api",
        items=[services.ItemIn("ABC", 2)],
        request_hash="x",
    )
    order_id = str(result.order.id)
    processes.pipeline()
    processes.pipeline(relay=False)
    # when: the same task message (same task id) published twice, plus a relay-style republish
    for _ in range(2):
        pipeline.order_chain(order_id).apply_async(task_id=f"dup-{order_id}")
    services.outbox_relay_batch(grace_seconds=0, batch_size=10)
    wait_until(lambda: Order.objects.get(id=order_id).status == OrderStatus.COMPLETED, timeout=60, what="completed")
    # and the duplicates ran their (skipped) stages: three chains, two task messages and the outbox's
    wait_until(
        lambda: stage_messages_all_ran(order_id, chains=3), timeout=60, what="every duplicate stage message to run"
    )
    # then
    order = http.get_order(order_id)
    assert Invoice.objects.filter(order_id=order_id).count() == 1
    product = Product.objects.get(sku="ABC")
    assert (product.stock, product.reserved) == (998, 0)
    assert "duplicate_skipped" in events(order)
    assert events(order).count("completed") == 3  # one per stage
    assert dlq() == []


def test_random_provider_failures_under_load_end_every_order_terminal(processes, http):
    # given
    catalog_create()
    controls.controls_set(failure_rate=0.3)
    processes.pipeline()
    # when
    ids = [http.post_order([("ABC", 1 + n % 2)], customer_id=f"load{n}") for n in range(200)]
    wait_until(
        lambda: Order.objects.filter(id__in=ids, status__in=["completed", "failed"]).count() == 200,
        timeout=240,
        interval=1,
        what="200 terminal orders",
    )
    # then: none stuck; every failed order is in the DLQ, nothing else is
    failed = {str(i) for i in Order.objects.filter(status="failed").values_list("id", flat=True)}
    # a failed order's message is rejected after the order is marked failed: wait until the DLQ holds them all
    wait_until(lambda: queue_depth("orders.dlq") >= len(failed), timeout=30, what="a dead letter per failed order")
    dead = [m["args"][0] for m in dlq()]
    assert sorted(dead) == sorted(failed)
    completed_qty = sum(1 + n % 2 for n, order_id in enumerate(ids) if order_id not in failed)
    product = Product.objects.get(sku="ABC")
    assert (product.stock, product.reserved) == (1000 - completed_qty, 0)
    assert Invoice.objects.count() == 200 - len(failed)
    assert Order.objects.filter(status="failed").exclude(failure_reason__contains="retries exhausted").count() == 0


def test_broker_outage_at_post_time_is_covered_by_the_outbox(processes, http):
    # given
    catalog_create()
    processes.pipeline(relay=False)
    relay = processes.manage("relay", "relay_outbox", "--grace", "1", "--heartbeat-file", "", ready="loop_started")
    # when: RabbitMQ stops while an order is posted
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
    try:
        order_id = http.post_order([("ABC", 1)], key="outage-1")
        assert Order.objects.get(id=order_id).outbox.get().published_at is None
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    # then: the relay publishes it and the reconnected workers complete it
    order = wait_terminal(http, order_id, timeout=120)
    assert order["status"] == "completed"
    assert relay.popen.poll() is None
    assert events(order)[:2] == ["accepted", "published"]
    assert next(h for h in order["history"] if h["event"] == "published")["detail"]["via"] == "relay"


def test_redelivered_message_of_a_failed_task_is_dead_lettered_not_acked(processes, http):
    # given: an order the enrich task failed (on_failure ran), whose reject never reached RabbitMQ
    # (broker restart or worker kill in between): the same message comes back
    catalog_create()
    result = services.order_create(
        client_id=DEFAULT_CLIENT_ID,
        customer_id="lost",
        source="api",
        items=[services.ItemIn("ABC", 1)],
        request_hash="x",
    )
    order_id = str(result.order.id)
    services.order_process(order_id=order_id)
    services.order_fail(
        order_id=order_id,
        stage="enrich",
        reason="enrich: retries exhausted",
        kind="retries_exhausted",
        detail={"task_id": "lost-reject-1", "exception": "ProviderTransientError", "message": "down", "attempts": 3},
    )
    processes.pipeline()
    # when
    from orders_project.celery import app

    app.send_task("enrichment.enrich", args=[order_id], task_id="lost-reject-1")
    # then: it lands in the DLQ, and the order is untouched
    letters = wait_until(dlq, timeout=30, what="dead letter")
    assert [(m["args"], m["headers"]["id"]) for m in letters] == [([order_id], "lost-reject-1")]
    assert Order.objects.get(id=order_id).failure_reason == "enrich: retries exhausted"
