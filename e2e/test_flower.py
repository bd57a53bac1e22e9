"""Flower as the Procfile starts it: behind basic auth, listing the workers and the queues on its broker tab; with
FLOWER_ENABLE_EVENTS=true (flowerconfig.py: off by default, for their cost), a completed order's tasks with
their arguments and times (task events published without confirms: core/celery_cluster.py)."""

import os
import sys
import time
from pathlib import Path

import pytest
import requests

from devtools.procs import procfile_line, wait_until
from e2e.conftest import free_port
from orders.pipeline import STAGES

pytestmark = pytest.mark.e2e
AUTH = ("ops", "s3cret")


def start_flower(processes, *, task_events: bool) -> str:
    """Flower from the Procfile's line; its base URL."""
    port = free_port()
    processes.start(
        "flower",
        ["bash", "-c", procfile_line("flower")],
        ready="Visit me at",
        # as the Procfile, compose and k8s pass them: from the environment, never the arguments (ps)
        env={
            "FLOWER_BASIC_AUTH": ":".join(AUTH),
            "FLOWER_PORT": str(port),
            "FLOWER_ADDRESS": "127.0.0.1",
            "RABBITMQ_MANAGEMENT_URL": "http://guest:guest@127.0.0.1:15672/api/",
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "FLOWER_ENABLE_EVENTS": "true" if task_events else "false",
        },
    )
    return f"http://127.0.0.1:{port}"


def test_flower_from_the_procfile_requires_auth_and_shows_workers_and_queues(processes):
    processes.pipeline()
    base = start_flower(processes, task_events=False)
    assert requests.get(f"{base}/", timeout=10).status_code == 401
    assert requests.get(f"{base}/", auth=("ops", "wrong"), timeout=10).status_code == 401
    assert requests.get(f"{base}/", auth=AUTH, timeout=10).status_code == 200
    workers = wait_until(
        lambda: requests.get(f"{base}/api/workers", auth=AUTH, timeout=10).json(),
        timeout=30,
        what="worker seen by flower",
    )
    assert any(name.startswith("enrichment-") for name in workers)

    # the broker tab lists the queues the workers consume, read through the management API
    def broker_tab_lists_queues():
        page = requests.get(f"{base}/broker", auth=AUTH, timeout=10).text.replace(" ", "")
        return all(f">{queue}<" in page for queue in ("process", "enrichment", "finalize"))

    wait_until(broker_tab_lists_queues, timeout=30, interval=1, what="queues on the broker tab")


def test_flower_with_task_events_lists_a_completed_orders_tasks_with_arguments_and_times(processes, http, catalog):
    processes.pipeline()
    base = start_flower(processes, task_events=True)
    # Flower turns task events on by a broadcast after it starts: an order posted before a worker got it is
    # not seen, so another is posted every few seconds until one order's three stages are listed.
    posted: list[str] = []
    last_post = [0.0]

    def an_order_done_in_flower():
        if time.monotonic() - last_post[0] > 5:
            posted.append(http.post_order([("ABC", 1)]))
            last_post[0] = time.monotonic()
        tasks = requests.get(f"{base}/api/tasks", auth=AUTH, timeout=10).json()
        for order_id in posted:
            mine = [t for t in tasks.values() if order_id in (t.get("args") or "")]
            done = {t["name"] for t in mine if t["state"] == "SUCCESS"}
            if {stage.task for stage in STAGES} <= done:
                return mine
        return None

    mine = wait_until(an_order_done_in_flower, timeout=60, interval=1, what="an order's tasks succeeded in flower")
    for task in mine:
        assert task["received"] and task["started"] and task["succeeded"] and task["runtime"] is not None, task
        assert task["worker"] and task["worker"].split("-")[0] in ("process", "enrichment", "finalize"), task
