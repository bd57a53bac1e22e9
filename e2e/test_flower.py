"""Flower behind basic auth, with events on and the broker tab showing the three queues."""

import pytest
import requests

from devtools.procs import wait_until
from e2e.conftest import CELERY, free_port

pytestmark = pytest.mark.e2e


def test_flower_requires_auth_and_shows_workers_and_queues(processes):
    port = free_port()
    processes.pipeline()
    processes.start(
        "flower",
        [
            CELERY,
            "-A",
            "orders_project",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
        ],
        ready="Visit me at",
        # as the Procfile, compose and k8s pass them: from the environment, never the arguments (ps)
        env={"FLOWER_BASIC_AUTH": "ops:s3cret", "FLOWER_BROKER_API": "http://guest:guest@127.0.0.1:15672/api/"},
    )
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/", timeout=10).status_code == 401
    assert requests.get(f"{base}/", auth=("ops", "wrong"), timeout=10).status_code == 401
    assert requests.get(f"{base}/", auth=("ops", "s3cret"), timeout=10).status_code == 200
    workers = wait_until(
        lambda: requests.get(f"{base}/api/workers", auth=("ops", "s3cret"), timeout=10).json(),
        timeout=30,
        what="worker seen by flower",
    )
    assert any(name.startswith("enrichment-") for name in workers)

    # the broker tab lists the queues the workers consume, read through the management API
    def broker_tab_lists_queues():
        page = requests.get(f"{base}/broker", auth=("ops", "s3cret"), timeout=10).text.replace(" ", "")
        return all(f">{queue}<" in page for queue in ("process", "enrichment", "finalize"))

    wait_until(broker_tab_lists_queues, timeout=30, interval=1, what="queues on the broker tab")
