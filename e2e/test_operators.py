"""Issue: operators. A dead-lettered order is archived, seen in CLI, REST and admin, and redriven
to completion once its cause is fixed, with real workers, archiver and RabbitMQ."""

import base64
import io

import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import call_command

from conftest import queue_messages
from devtools.procs import wait_until
from e2e.conftest import wait_terminal
from enrichment import controls
from orders.models import DeadLetter, DeadLetterStatus, Invoice, Product
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e


def test_down_order_is_archived_visible_everywhere_and_redriven_to_completion(processes, http, live_server, client):
    # given: the pipeline and the archiver
    catalog_create()
    processes.pipeline()
    processes.manage("archiver", "archive_dead_letters", "--heartbeat-file", "", ready="loop_started")
    order_id = http.post_order([("DOWN", 1), ("ABC", 2)])
    # when: the provider stays down
    order = wait_terminal(http, order_id)
    letter = wait_until(
        lambda: DeadLetter.objects.filter(order_id=order_id).first(), timeout=20, what="archived dead letter"
    )
    # then: archived, and the DLQ itself is empty
    assert order["status"] == "failed"
    assert (letter.reason, letter.exception, letter.attempts) == ("rejected", "ProviderTransientError", 3)
    assert queue_messages("orders.dlq") == []
    # visible in the CLI ...
    out = io.StringIO()
    call_command("dlq", "list", stdout=out)
    assert order_id in out.getvalue() and "enrichment.enrich:ProviderTransientError" in out.getvalue()
    # ... in REST (staff) ...
    User.objects.create_superuser("ops", "ops@example.com", "pw")
    auth = {"Authorization": "Basic " + base64.b64encode(b"ops:pw").decode()}
    json_auth = {**auth, "Content-Type": "application/json"}  # a POST under Basic says JSON (core/operator_auth.py)
    listing = requests.get(f"{live_server.url}/ops/dead-letters", headers=auth, timeout=10).json()
    assert [d["order"] for d in listing["results"]] == [order_id]
    assert requests.get(f"{live_server.url}/ops/dead-letters", timeout=10).status_code == 401
    # ... and in the admin
    client.login(username="ops", password="pw")
    assert order_id in client.get("/admin/orders/deadletter/").content.decode()

    # when: the provider is fixed and an operator redrives over REST
    controls.controls_set(fixed=True)
    response = requests.post(f"{live_server.url}/ops/dead-letters/{letter.pk}/redrive", headers=json_auth, timeout=10)
    assert response.status_code == 200, response.text
    # then: completed exactly once
    order = wait_until(
        lambda: (o := http.get_order(order_id))["status"] == "completed" and o, timeout=60, what="completed"
    )
    assert Invoice.objects.filter(order_id=order_id).count() == 1
    abc = Product.objects.get(sku="ABC")
    assert (abc.stock, abc.reserved) == (998, 0)
    events = [h["event"] for h in order["history"]]
    assert events.count("redriven") == 1
    # staff see who redrove it; the client that owns the order does not
    assert next(h for h in order["history"] if h["event"] == "redriven")["detail"]["by"] == "staff:ops"
    client_view = http.get_order(order_id, as_client=True)
    assert "by" not in next(h for h in client_view["history"] if h["event"] == "redriven")["detail"]
    # and a second redrive of the now-completed order is refused
    assert (
        requests.post(
            f"{live_server.url}/ops/dead-letters/{letter.pk}/redrive", headers=json_auth, timeout=10
        ).status_code
        == 409
    )


def test_archiver_killed_between_store_and_ack_keeps_one_record(processes, http):
    # given: a dead-lettered poison order and an archiver that dies right after storing
    catalog_create()
    processes.pipeline()
    order_id = http.post_order([("BOMBA", 1)])
    wait_terminal(http, order_id)
    wait_until(lambda: queue_depth() == 1, timeout=20, what="dead letter in the DLQ")
    crashing = processes.manage(
        "archiver", "archive_dead_letters", "--heartbeat-file", "", env={"DEAD_LETTER_FAULT_AFTER_STORE": "True"}
    )
    assert crashing.popen.wait(timeout=60) == 99
    assert DeadLetter.objects.filter(order_id=order_id).count() == 1
    # when: restarted, it gets the unacked message again
    wait_until(lambda: queue_depth() == 1, timeout=20, what="message back in the DLQ")
    processes.manage("archiver", "archive_dead_letters", "--once", "--heartbeat-file", "").popen.wait(timeout=60)
    # then
    assert DeadLetter.objects.filter(order_id=order_id).count() == 1
    assert DeadLetter.objects.get(order_id=order_id).status == DeadLetterStatus.ARCHIVED
    assert queue_depth() == 0


def queue_depth() -> int:
    from orders.dead_letters import dlq_depth

    return dlq_depth()
