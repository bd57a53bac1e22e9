"""Issue: production readiness. JSON logs that follow one order across processes, worker /metrics,
and SIGTERM mid-load losing nothing."""

import concurrent.futures
import json
import os
import signal
import time

import pytest
import requests
from django.conf import settings

from devtools.procs import wait_until
from e2e.conftest import free_port, start_web
from orders.models import Invoice, Order, Product
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_one_order_can_be_followed_across_processes_in_json_logs(processes, tmp_path):
    # given: web and workers logging JSON, the enrichment worker serving /metrics, the relay publishing
    catalog_create()
    port, metrics_port = free_port(), free_port()
    env = {"LOG_FORMAT": "json", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    web = start_web(processes, port, env=env)
    workers = {
        "process": processes.worker("process", env=env),
        "enrichment": processes.worker(
            "enrichment", pool="threads", concurrency=4, env={**env, "METRICS_PORT": metrics_port}
        ),
        "finalize": processes.worker("finalize", env=env),
    }
    processes.manage("relay", "relay_outbox", "--heartbeat-file", "", ready="loop_started", env=env)
    # when
    response = requests.post(
        f"http://127.0.0.1:{port}/orders",
        json={"customer_id": "log-1", "items": [{"sku": "ABC", "qty": 1}]},
        headers={"Authorization": f"Bearer {settings.SECRET_TOKEN}"},
        timeout=10,
    )
    order_id = response.json()["order_id"]
    wait_until(lambda: Order.objects.get(id=order_id).status == "completed", timeout=30, what="completed")
    # then: every line that names the order is JSON, and each stage's worker logged it with task id and stage
    # (a worker logs stage_finished just after its commit: give the last one a moment to write it)
    wait_until(lambda: order_id in workers["finalize"].output(), timeout=10, what="finalize log line")
    for name, proc in {"web": web, **workers}.items():
        mentioning = [line for line in proc.output().splitlines() if order_id in line]
        assert mentioning, f"{name} never logged the order"
        assert all(line.startswith("{") for line in mentioning), mentioning
    for stage, proc in (
        ("process", workers["process"]),
        ("enrich", workers["enrichment"]),
        ("finalize", workers["finalize"]),
    ):
        finished = [
            r for r in json_lines(proc.output()) if r.get("event") == "stage_finished" and r.get("order_id") == order_id
        ]
        assert (
            len(finished) == 1
            and finished[0]["stage"] == stage
            and finished[0]["task_id"]
            and finished[0]["outcome"] == "ok"
        )
    # (gunicorn writes no access lines: accesslog is off, a line per request is the proxy's job)
    accepted = [r for r in json_lines(web.output()) if r.get("event") == "order_accepted"]
    assert [r["order_id"] for r in accepted] == [order_id]
    # and: the worker's /metrics counts the enrichment
    text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert 'order_stage_duration_seconds_count{outcome="ok",stage="enrich"} 1.0' in text


def test_sigterm_mid_load_loses_nothing(processes):
    # given: web, workers (slowish enrichment) and relay
    catalog_create()
    port = free_port()
    web = start_web(processes, port)
    slow = {"ENRICHMENT_LATENCY_MS": "300"}
    enrichment = processes.worker("enrichment", pool="threads", concurrency=4, env=slow)
    process_worker = processes.worker("process")
    processes.worker("finalize")
    relay = processes.manage("relay", "relay_outbox", "--grace", "1", "--heartbeat-file", "", ready="loop_started")
    accepted: dict[str, str] = {}
    errors: list[str] = []

    def post(n: int) -> None:
        key = f"sigterm-{n}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                response = requests.post(
                    f"http://127.0.0.1:{port}/orders",
                    json={"customer_id": f"c{n}", "items": [{"sku": "ABC", "qty": 1}]},
                    headers={"Authorization": f"Bearer {settings.SECRET_TOKEN}", "X-Idempotency-Key": key},
                    timeout=10,
                )
            except requests.ConnectionError:
                time.sleep(0.2)  # the server is restarting: retry with the same key
                continue
            if response.status_code == 202:
                accepted[key] = response.json()["order_id"]
            else:
                errors.append(f"{response.status_code} {response.text}")
            return
        errors.append(f"{key} never accepted")

    # when: orders stream in while each process kind gets SIGTERM and is replaced
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = []
        for n in range(60):
            futures.append(pool.submit(post, n))
            time.sleep(0.03)  # paces the stream (60 posts over ~2 s), so each SIGTERM below lands mid-stream
            if n == 15:
                os.killpg(enrichment.popen.pid, signal.SIGTERM)
            if n == 25:
                os.killpg(web.popen.pid, signal.SIGTERM)
                # gunicorn's workers finish their requests in hand, then the master exits
                assert web.popen.wait(timeout=30) == 0
                assert "Shutting down: Master" in web.output()
                start_web(processes, port)
                assert enrichment.popen.wait(timeout=30) == 0  # warm shutdown finished its tasks
                processes.worker("enrichment", pool="threads", concurrency=4, env=slow)
            if n == 35:
                os.killpg(process_worker.popen.pid, signal.SIGTERM)
                assert process_worker.popen.wait(timeout=30) == 0
                processes.worker("process")
            if n == 45:
                os.killpg(relay.popen.pid, signal.SIGTERM)
                assert relay.popen.wait(timeout=30) == 0
                assert "loop_stopped" in relay.output()
                processes.manage("relay", "relay_outbox", "--grace", "1", "--heartbeat-file", "", ready="loop_started")
        for future in futures:
            future.result()
    # then: every accepted order completed exactly once
    assert errors == []
    assert len(accepted) == 60
    ids = list(accepted.values())
    wait_until(
        lambda: Order.objects.filter(id__in=ids, status="completed").count() == 60,
        timeout=120,
        interval=0.5,
        what="all completed",
    )
    assert Order.objects.count() == 60
    assert Invoice.objects.count() == 60
    product = Product.objects.get(sku="ABC")
    assert (product.stock, product.reserved) == (940, 0)
