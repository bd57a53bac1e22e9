"""A smoke run of the benchmark suite with tiny sizes: it checks that `python -m bench.run` works end to
end and writes its JSON, Markdown and PNG with every figure present and numeric. It asserts no timing:
the targets live in the bench (bench/README.md), not in the tests.

Isolation: the run uses its own database and RabbitMQ vhost (`orders_bench_smoke`, created by the run),
Redis db 12 with its own key prefixes, and writes into pytest's tmp_path; it shares nothing with
pytest-django's test database. It starts real processes (uvicorn, Celery workers, the relay), each in its
own process group, and kills them when it ends. Two suites running at once on the machine (two checkouts,
or a CI copy) would share that database and vhost: the run takes a machine-wide lock per name, so the
second smoke run waits for the first (hence the longer timeout) instead of truncating its tables.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {
    "api_accept_rate_c16", "api_accept_rate_c64", "api_p99_c16", "pipeline_throughput", "enrichment_io_vs_latency0",
    "enrichment_io_vs_chain", "decoupling_p99", "e2e_latency_p50", "e2e_latency_p99", "cost_worker_cpu_per_1000",
    "scale_out_1", "scale_out_2", "scale_out_4",
}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
LOCK_WAIT = 420  # another suite's smoke run of the same name may hold the lock this long


def numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out), "--logs", str(out / "logs"), "--lock-wait", str(LOCK_WAIT)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=LOCK_WAIT + 420,
    )
    assert done.returncode == 0, f"bench smoke run failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return out


def test_smoke_run_writes_json_with_every_figure_numeric(smoke_run):
    stamped = [p for p in smoke_run.glob("*.json") if p.name != "latest.json"]
    assert len(stamped) == 1
    results = json.loads((smoke_run / "latest.json").read_text())
    assert json.loads(stamped[0].read_text()) == results
    assert FIGURES <= set(results["figures"])
    for name in FIGURES:
        figure = results["figures"][name]
        assert numeric(figure["value"]), (name, figure)
        assert numeric(figure["ceiling"]), (name, figure)
        assert numeric(figure["ratio"]), (name, figure)
    assert results["settings"]["smoke"] is True
    assert results["settings"]["database"] == results["settings"]["vhost"] == "orders_bench_smoke"
    machine, versions = results["machine"], results["versions"]
    assert machine["cores"] >= 1 and machine["memory_gb"] > 0 and machine["cpu_model"]
    for key in ("python", "django", "celery", "kombu", "rabbitmq", "postgresql"):
        assert versions[key], key
    for label, run in results["load_runs"].items():
        assert numeric(run["generator_cpu_s"]) and numeric(run["generator_cores"]), label
    cost = results["cost"]["pipeline_per_1000_orders"]
    for kind in ("web", "relay", "worker_process", "worker_enrichment", "worker_finalize"):
        assert numeric(cost[kind]["cpu_s_per_1000"]) and numeric(cost[kind]["peak_rss_mb"]), kind


def test_smoke_run_writes_markdown_table_and_png(smoke_run):
    table = (smoke_run / "latest.md").read_text()
    assert "| figure | value | ceiling (same run) | ratio | target | met |" in table
    for label in ("API accept rate, c=16", "Pipeline throughput", "Decoupling", "End-to-end p99", "Scale-out, 4"):
        assert label in table
    png = (smoke_run / "latest.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
