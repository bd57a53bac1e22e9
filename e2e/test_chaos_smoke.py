"""A small chaos run inside the test command (the full one is `make chaos`): every process kind
killed -9 once, RabbitMQ and PostgreSQL restarted, then the checker must find nothing lost or doubled."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


def test_small_chaos_run_loses_and_doubles_nothing(tmp_path):
    report = tmp_path / "chaos.json"
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "chaos.run",
                "--orders",
                "150",
                "--rate",
                "12",
                "--kills",
                "1",
                "--quiesce-timeout",
                "180",
                "--report",
                str(report),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        # PostgreSQL was restarted under us: drop this process's dead connections.
        from django.db import connections

        connections.close_all()
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / "chaos-smoke.log").write_text(result.stdout + result.stderr)
    assert report.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(report.read_text())
    failed = {name: check["detail"] for name, check in data["checks"].items() if not check["ok"]}
    assert failed == {}, failed
    assert result.returncode == 0
    kinds_killed = {e["event"].removeprefix("kill -9 ") for e in data["events"] if e["event"].startswith("kill -9")}
    assert kinds_killed == {
        "web",
        "worker_process",
        "worker_enrichment",
        "worker_finalize",
        "worker_refund",
        "relay",
        "archiver",
    }
    assert {"restart rabbitmq", "restart postgres"} <= {e["event"] for e in data["events"]}
    assert any(e["event"].startswith("purge ") for e in data["events"])
    # cancels at every moment were made, and both outcomes happened
    cancels = data["checks"]["every cancel ends cancelled or refunded (409 only for a failed order)"]["detail"]
    assert cancels["cancels"] >= 5 and {"cancelled", "refunded"} <= set(cancels["by_final_status"])
    assert data["checks"]["every accepted order exists"]["detail"]["accepted"] >= 100
