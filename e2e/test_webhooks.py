"""Issue: webhooks. Real workers (the pipeline, refund, the webhooks worker on threads), the relay, the
archiver, RabbitMQ and PostgreSQL; a real receiver on loopback that verifies every delivery with the
standardwebhooks library: every terminal order is delivered, a redelivered task carries the same
webhook-id, and a dead webhook is archived and, once redriven, arrives."""

import pytest
import requests

from clients import services as client_services
from clients.models import DEFAULT_CLIENT_ID, ApiClient
from devtools.procs import wait_until
from e2e.conftest import wait_terminal
from orders import dead_letters
from orders.models import DeadLetter
from orders.tests.factories import catalog_create
from orders.webhooks.models import WebhookEvent
from tests.webhook_receiver import Answer

pytestmark = pytest.mark.e2e


@pytest.fixture
def endpoint(transactional_db, webhook_receiver):
    """The default client's endpoint (the http fixture's orders are the default client's) is the receiver."""
    _, secret = client_services.webhook_endpoint_set(
        client=ApiClient.objects.get(id=DEFAULT_CLIENT_ID), url=webhook_receiver.url
    )
    webhook_receiver.secrets.append(secret)
    return webhook_receiver


def cancel(http, order_id: str) -> requests.Response:
    return http.post(f"{http.base_url}/orders/{order_id}/cancel", json={"reason": "e2e"}, timeout=30)


def delivered_types(receiver, order_id: str) -> list[str]:
    return [
        c.payload["type"] for c in receiver.calls if c.payload["data"]["order_id"] == order_id and c.answered == 200
    ]


def test_every_terminal_order_is_delivered_signed_once_each_through_retries(processes, http, endpoint):
    # given: an endpoint that fails its first calls (500, then 429 with Retry-After), all the workers
    catalog_create()
    endpoint.answer_next(Answer(500), Answer(429, headers={"Retry-After": "1"}))
    processes.pipeline(refund=True)
    processes.worker("webhooks", pool="threads", concurrency=4)
    # when: orders end completed, failed, cancelled and refunded
    completed = http.post_order([("ABC", 1)])
    failed = http.post_order([("NOPE", 1)])
    refunded = http.post_order([("XYZ", 1)])
    assert wait_terminal(http, refunded)["status"] == "completed"
    assert cancel(http, refunded).json()["status"] == "refund_pending"
    assert wait_terminal(http, refunded)["status"] == "refunded"
    assert wait_terminal(http, completed)["status"] == "completed" and wait_terminal(http, failed)["status"] == "failed"
    # (cancelled before any stage: accepted while the process worker is busy is racy; cancel at once instead)
    cancelled = http.post_order([("ABC", 1)])
    response = cancel(http, cancelled)
    expected = {
        completed: ["order.completed"],
        failed: ["order.failed"],
        refunded: ["order.completed", "order.refunded"],
    }
    expected[cancelled] = (
        ["order.cancelled"] if response.json()["status"] == "cancelled" else ["order.completed", "order.refunded"]
    )
    # then: each event arrives once with a 200, verified by the library, its data the order as its client reads it
    wait_until(
        lambda: all(sorted(delivered_types(endpoint, o)) == sorted(types) for o, types in expected.items()),
        timeout=90,
        interval=0.3,
        what=f"webhooks delivered: {expected}",
    )
    assert all(call.verified_by == [0] for call in endpoint.calls), [
        c.headers for c in endpoint.calls if not c.verified_by
    ]
    ok = [c for c in endpoint.calls if c.answered == 200]
    assert len({c.webhook_id for c in ok}) == len(ok) == sum(len(t) for t in expected.values())
    assert [c.answered for c in endpoint.calls[:2]] == [500, 429]  # the first two were retried
    for call in ok:
        data = call.payload["data"]
        assert call.payload["type"] == f"order.{data['status']}" or call.payload["type"] == "order.completed"
        assert "webhooks" not in data and data["history"]  # the client's view
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"delivered"}
    # staff see each event with its attempts
    staff_view = http.get_order(completed)
    assert [(w["type"], w["status"]) for w in staff_view["webhooks"]] == [("order.completed", "delivered")]


def test_a_redelivered_delivery_task_carries_the_same_webhook_id(processes, http, endpoint):
    # given: a completed order, and an endpoint that holds the first delivery's request open
    catalog_create()
    processes.pipeline()
    endpoint.answer_next(Answer(hang=8))
    worker = processes.worker("webhooks", pool="threads", concurrency=2, env={"WEBHOOK_READ_TIMEOUT": "60"})
    order_id = http.post_order([("ABC", 1)])
    endpoint.wait_for(1, timeout=60)
    # when: the webhooks worker is killed mid-request (its message unacked), and a fresh one starts
    worker.kill9()
    processes.worker("webhooks", pool="threads", concurrency=2)
    # then: the redelivered task sends the same event again: same webhook-id and body, verified
    first, second = endpoint.wait_for(2, timeout=60)[:2]
    assert first.webhook_id == second.webhook_id and first.body == second.body
    assert first.verified_by == second.verified_by == [0]
    assert first.payload["data"]["order_id"] == order_id
    wait_until(lambda: WebhookEvent.objects.get(order_id=order_id).status == "delivered", timeout=30, what="delivered")


@pytest.mark.parametrize("failure", ["gone", "exhausted"])
def test_a_dead_webhook_is_archived_and_arrives_once_redriven(processes, http, endpoint, failure):
    # given: an endpoint that answers 410 (refused at once), or 500 until the retries are exhausted
    catalog_create()
    endpoint.answer_next(*([Answer(410, body="gone")] if failure == "gone" else [Answer(500)] * 4))
    processes.pipeline()
    processes.worker("webhooks", pool="threads", concurrency=2)
    processes.manage("archiver", "archive_dead_letters", "--heartbeat-file", "", ready="loop_started")
    order_id = http.post_order([("ABC", 1)])
    # when: dead-lettered and archived
    letter = wait_until(
        lambda: DeadLetter.objects.filter(order_id=order_id, stage="webhook").first(),
        timeout=60,
        what="archived webhook",
    )
    # then: the order is untouched, the event failed, every attempt recorded
    assert (letter.queue, letter.task_name) == ("webhooks", "orders.webhook.deliver")
    order = http.get_order(order_id)
    assert order["status"] == "completed"
    (hook,) = order["webhooks"]
    assert hook["status"] == "failed"
    assert [a["status_code"] for a in hook["attempts"]] == ([410] if failure == "gone" else [500] * 4)
    before = len(endpoint.calls)
    assert before == (1 if failure == "gone" else 4)
    # when: the receiver recovered, an operator redrives it
    dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="staff:e2e")
    # then: it arrives, with the same webhook-id (counted from before the redrive: it may arrive at once)
    calls = endpoint.wait_for(before + 1, timeout=60)
    assert calls[-1].answered == 200 and calls[-1].webhook_id == calls[0].webhook_id and calls[-1].verified_by == [0]
    wait_until(lambda: http.get_order(order_id)["webhooks"][0]["status"] == "delivered", timeout=30, what="delivered")


def test_a_hanging_endpoint_delays_no_order(processes, http, endpoint):
    # given: an endpoint that hangs on every call past the read timeout
    catalog_create()
    endpoint.answer_next(*[Answer(hang=3)] * 20)
    processes.pipeline()
    processes.worker("webhooks", pool="threads", concurrency=1)
    # when: orders flow
    first = http.post_order([("ABC", 1)])
    endpoint.wait_for(1, timeout=60)
    orders = [http.post_order([("ABC", 1)]) for _ in range(5)]
    # then: they complete while the webhooks worker is stuck on the endpoint
    for order_id in [first, *orders]:
        assert wait_terminal(http, order_id, timeout=30)["status"] == "completed"
    assert WebhookEvent.objects.filter(status="delivered").count() == 0
