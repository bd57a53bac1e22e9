"""Issue: cancel and refund. Every interleaving of a cancel with the pipeline, with real workers, relay,
archiver and RabbitMQ: the order ends cancelled with its reservation released and no invoice, or
refunded with one credit note and its stock returned; never both, never neither."""

import pytest
import requests

from conftest import queue_messages
from devtools.procs import wait_ready, wait_until
from e2e.conftest import wait_terminal
from enrichment import controls
from orders import dead_letters
from orders.models import CreditNote, DeadLetter, Invoice, Product
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e


def cancel(http, order_id: str, reason: str = "e2e") -> requests.Response:
    return http.post(f"{http.base_url}/orders/{order_id}/cancel", json={"reason": reason}, timeout=30)


def has_event(http, order_id: str, stage: str, event: str) -> bool:
    return any(h["stage"] == stage and h["event"] == event for h in http.get_order(order_id)["history"])


def shelf(sku: str) -> tuple[int, int]:
    product = Product.objects.get(sku=sku)
    return product.stock, product.reserved


def test_a_cancel_before_the_process_stage_wins_and_the_chain_skips(processes, http):
    # given: an order accepted while no worker runs
    catalog_create()
    order_id = http.post_order([("ABC", 2)])
    # when: cancelled, then the pipeline starts and its message arrives
    response = cancel(http, order_id)
    processes.pipeline()
    # then
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    wait_until(lambda: has_event(http, order_id, "process", "duplicate_skipped"), timeout=30, what="process skipped")
    order = http.get_order(order_id)
    assert order["status"] == "cancelled" and order["invoice"] is None
    assert shelf("ABC") == (1000, 0)


def test_a_cancel_during_the_enrich_providers_call_releases_the_reservation_once(processes, http):
    # given: a slow provider, and an order past the process stage (stock reserved)
    catalog_create()
    processes.pipeline(env={"ENRICHMENT_LATENCY_MS": "4000"})
    order_id = http.post_order([("ABC", 2)])
    wait_until(lambda: http.get_order(order_id)["status"] == "processing", timeout=30, what="processing")
    assert shelf("ABC") == (1000, 2)
    # when: cancelled while enrich waits for the provider
    assert cancel(http, order_id).json()["status"] == "cancelled"
    # then: the provider's answer is not stored, finalize never runs, the reservation was released once
    wait_until(lambda: has_event(http, order_id, "enrich", "duplicate_skipped"), timeout=30, what="enrich skipped")
    order = http.get_order(order_id)
    assert order["status"] == "cancelled" and order["invoice"] is None and order["enrichment"] is None
    assert shelf("ABC") == (1000, 0)


def test_a_cancel_during_a_retry_wait_ends_the_retries(processes, http):
    # given: a provider that is down, with long enough waits between retries
    catalog_create()
    processes.pipeline(env={"TASK_MAX_RETRIES": "8", "TASK_RETRY_BACKOFF_BASE": "3", "TASK_RETRY_BACKOFF_MAX": "3"})
    order_id = http.post_order([("DOWN", 1), ("ABC", 1)])
    wait_until(lambda: has_event(http, order_id, "enrich", "retry"), timeout=30, what="a retry")
    # when
    assert cancel(http, order_id).json()["status"] == "cancelled"
    # then: the retried message finds it cancelled; nothing reaches the DLQ
    wait_until(lambda: has_event(http, order_id, "enrich", "duplicate_skipped"), timeout=30, what="the retry skipped")
    assert http.get_order(order_id)["status"] == "cancelled"
    assert shelf("ABC") == (1000, 0) and shelf("DOWN") == (1000, 0)
    assert queue_messages("orders.dlq") == []


def test_a_completed_order_is_refunded_through_the_refund_stage(processes, http):
    # given: a completed order
    catalog_create()
    processes.pipeline(refund=True)
    order_id = http.post_order([("ABC", 2), ("XYZ", 1)])
    assert wait_terminal(http, order_id)["status"] == "completed"
    assert shelf("ABC") == (998, 0)
    # when: cancelled (twice: the second answers the same)
    first, second = cancel(http, order_id), cancel(http, order_id)
    # then
    assert first.status_code == 202 and first.json()["status"] == "refund_pending"
    assert second.status_code in (200, 202) and second.json()["status"] in ("refund_pending", "refunded")
    order = wait_terminal(http, order_id)
    assert order["status"] == "refunded"
    assert order["credit_note"]["total"] == "-" + order["invoice"]["total"]
    assert shelf("ABC") == (1000, 0) and shelf("XYZ") == (1000, 0)
    assert CreditNote.objects.filter(order_id=order_id).count() == 1
    assert [h["event"] for h in order["history"] if h["stage"] == "refund"] == ["refunded"]


def test_a_refund_that_keeps_failing_is_dead_lettered_archived_and_redriven(processes, http):
    # given: a completed order, a provider that refuses refunds for now, and the archiver
    catalog_create()
    processes.pipeline(refund=True)
    processes.manage("archiver", "archive_dead_letters", "--heartbeat-file", "", ready="loop_started")
    order_id = http.post_order([("ABC", 1)])
    assert wait_terminal(http, order_id)["status"] == "completed"
    controls.controls_set(refund="down")
    # when: cancelled; the refund retries, then its message is dead-lettered and archived
    cancel(http, order_id)
    letter = wait_until(
        lambda: DeadLetter.objects.filter(order_id=order_id).first(), timeout=60, what="archived refund"
    )
    # then: still owed, visible to the operators' tools like any stage's dead letter
    order = http.get_order(order_id)
    assert order["status"] == "refund_pending"
    assert (letter.stage, letter.queue, letter.exception) == ("refund", "refund", "ProviderTransientError")
    assert [h["event"] for h in order["history"] if h["stage"] == "refund"][-2:] == ["failed", "dead_lettered"]
    # when: the provider is back and an operator redrives it
    controls.controls_set(refund="ok")
    dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="staff:e2e")
    # then
    order = wait_terminal(http, order_id)
    assert order["status"] == "refunded" and order["credit_note"] is not None
    assert shelf("ABC") == (1000, 0)


def test_a_refund_worker_killed_mid_task_refunds_once_after_redelivery(processes, http):
    # given: a completed order, and a refund worker whose provider call hangs
    catalog_create()
    processes.pipeline()
    order_id = http.post_order([("ABC", 3)])
    assert wait_terminal(http, order_id)["status"] == "completed"
    controls.controls_set(refund="hang")
    worker = processes.worker("refund", pool="threads", concurrency=2, env={"ENRICHMENT_PROVIDER_TIMEOUT": "60"})
    cancel(http, order_id)
    wait_ready([worker], "Task orders.refund[", timeout=30)
    # when: SIGKILL while it holds the task, then the provider recovers and a fresh worker starts
    worker.kill9()
    controls.controls_set(refund="ok")
    processes.worker("refund", pool="threads", concurrency=2)
    # then: the redelivered message refunds it, once
    order = wait_terminal(http, order_id)
    assert order["status"] == "refunded"
    assert CreditNote.objects.filter(order_id=order_id).count() == 1
    assert shelf("ABC") == (1000, 0)
    assert Invoice.objects.filter(order_id=order_id).count() == 1
