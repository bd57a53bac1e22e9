"""A small chaos run inside the test command (the full one is `make chaos`): every process kind
killed -9 once, RabbitMQ and PostgreSQL restarted, then the checker must find nothing lost or doubled."""

import pytest

from e2e.chaos_runs import chaos_run_passes

pytestmark = pytest.mark.e2e


def test_small_chaos_run_loses_and_doubles_nothing(tmp_path):
    data = chaos_run_passes(
        "--orders", "150", "--rate", "12", "--kills", "1", "--quiesce-timeout", "180",
        report=tmp_path / "chaos.json", log_name="chaos-smoke.log", timeout=600,
    )  # fmt: skip
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
