"""A smoke run of the benchmark suite with tiny sizes: it checks that `python -m bench.run` works end to
end and writes its JSON, Markdown and PNG with every figure present and numeric. It asserts no timing:
the targets live in the bench (bench/README.md), not in the tests.

Isolation: the run uses its own database and RabbitMQ vhost (`orders_bench_smoke`, created by the run),
Redis db 12 with its own key prefixes, and writes into pytest's tmp_path; it shares nothing with
pytest-django's test database. It starts real processes (gunicorn, Celery workers, the relay, the archiver), each in its
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
# Every figure of a full run; the A/B publish figures carry the other setting's name as a suffix.
FIGURES = {
    "api_accept_rate_c16",
    "api_accept_rate_c64",
    "api_accept_rate_c16_same_server",
    "api_accept_rate_c64_same_server",
    "api_p99_c16",
    "api_errors_c16",
    "api_errors_c64",
    "pipeline_throughput",
    "pipeline_throughput_zipf",
    "enrichment_io_vs_latency0",
    "enrichment_io_vs_chain",
    "decoupling_p99",
    "e2e_latency_p50",
    "e2e_latency_p99",
    "sustained_max_rate",
    "sustained_p50_at_50",
    "sustained_p99_at_50",
    "sustained_cpu_per_order_at_50",
    "deployed_max_rate",
    "deployed_cpu_per_order",
    "cost_worker_cpu_per_1000",
    "scale_out_1",
    "scale_out_2",
    "scale_out_4",
}
AB_FIGURES = {
    "api_accept_rate_c16",
    "api_accept_rate_c64",
    "api_p99_c16",
    "api_errors_c64",
    "e2e_latency_p50",
    "e2e_latency_p99",
}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
LOCK_WAIT = 420  # another suite's smoke run of the same name may hold the lock this long
# The bench's default Redis db unless set: its keys carry the run's name anyway, but a checkout whose tests
# run beside a full bench run (same db 12) can keep them in a db of their own.
REDIS_DB = os.environ.get("BENCH_SMOKE_REDIS_DB", "12")


def numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--smoke",
            "--out",
            str(out),
            "--logs",
            str(out / "logs"),
            "--lock-wait",
            str(LOCK_WAIT),
            "--redis-db",
            REDIS_DB,
            # the page's browser uncapped (nice 19 only): under a 0.1-core cap chromium takes ~40 s to load the
            # page each time the as-deployed A/B starts it, and the smoke measures nothing
            "--browser-cpu",
            "0",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=LOCK_WAIT + 420,
    )
    assert done.returncode == 0, f"bench smoke run failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return out


def test_smoke_run_writes_json_with_every_figure_numeric(smoke_run):
    stamped = [p for p in smoke_run.glob("*.json") if p.name != "latest.json"]
    assert len(stamped) == 1
    results = json.loads((smoke_run / "latest.json").read_text())
    assert json.loads(stamped[0].read_text()) == results
    publish = results["publish"]
    assert publish["default"] in ("inline", "relay only") and publish["ab"] != publish["default"]
    expected = FIGURES | {f"{name}_{publish['ab_key']}" for name in AB_FIGURES}
    assert expected <= set(results["figures"]), expected - set(results["figures"])
    for name, figure in results["figures"].items():
        assert numeric(figure["value"]), (name, figure)
        assert numeric(figure["ceiling"]), (name, figure)
        assert numeric(figure["ratio"]) or figure["ceiling"] == 0, (
            name,
            figure,
        )  # an error count next to a ceiling of 0
        assert figure["target"] and (figure["met"] is None or isinstance(figure["met"], bool)), (name, figure)
    assert results["settings"]["smoke"] is True
    assert results["settings"]["database"] == results["settings"]["vhost"] == "orders_bench_smoke"
    machine, versions = results["machine"], results["versions"]
    assert machine["cores"] >= 1 and machine["memory_gb"] > 0 and machine["cpu_model"]
    for key in ("python", "django", "celery", "kombu", "rabbitmq", "postgresql", "gunicorn"):
        assert versions[key], key
    for label, run in results["load_runs"].items():
        assert numeric(run["generator_cpu_s"]) and numeric(run["generator_cores"]), label
        for key in ("non_2xx", "connection_errors", "errors_total"):
            assert isinstance(run[key], int), (label, key)
    workers = list(results["settings"]["procfile_workers"])
    assert workers and all(name.startswith("worker") for name in workers)
    assert set(results["settings"]["ceiling_workers"]) <= set(workers)
    for drain in ("pipeline_per_1000_orders", "pipeline_zipf_per_1000_orders"):
        cost = results["cost"][drain]
        for kind in ("web", "relay", *workers):
            assert numeric(cost[kind]["cpu_s_per_1000"]) and numeric(cost[kind]["peak_rss_mb"]), (drain, kind)
    assert results["phases"]["pipeline_drain_zipf"]["catalog"] == "zipf"
    # the fast API ceiling ran on both servers, and is the faster one of them
    from bench.scenarios import api

    runs = results["load_runs"]
    for c in (16, 64):
        rates = {s: runs[f"{api.fast_label(s)}-c{c}"]["accept_rate"] for s in ("gunicorn", "granian")}
        assert results["figures"][f"api_accept_rate_c{c}"]["ceiling"] == max(rates.values()), (c, rates)


def test_smoke_run_measures_every_sustained_step(smoke_run):
    results = json.loads((smoke_run / "latest.json").read_text())
    phase = results["phases"]["sustained"]
    workers = list(results["settings"]["procfile_workers"])
    steps = phase["steps"]
    assert [s["rate"] for s in steps] == results["settings"]["sizes"]["sustained_rates"]
    for step in steps:
        assert not step.get("skipped"), step
        for key in ("offered", "sent", "accepted", "completed", "failed", "errors", "non_2xx", "connection_errors"):
            assert isinstance(step[key], int), (step["rate"], key)
        for key in (
            "post_p50_ms",
            "post_p99_ms",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "cpu_ms_per_order_total",
            "cpu_ms_per_order_own",
        ):
            assert numeric(step[key]), (step["rate"], key)
        assert step["completed"] > 0 and isinstance(step["ok"], bool)
        per_kind = step["cpu_ms_per_order"]
        for kind in ("web", "relay", "archiver", *workers):
            assert numeric(per_kind[kind]), (step["rate"], kind)
        assert any(kind.endswith("(shared)") for kind in per_kind)
        system = {kind: ms for kind, ms in per_kind.items() if not kind.endswith("(client)")}  # the browser's
        assert abs(sum(system.values()) - step["cpu_ms_per_order_total"]) < 0.01 * len(system)
    assert numeric(phase["max_rate_p99_ok"])


def test_smoke_run_writes_markdown_table_and_png(smoke_run):
    table = (smoke_run / "latest.md").read_text()
    assert "| figure | value | ceiling (same run) | ratio | target | met |" in table
    for label in (
        "API accept rate, c=16",
        "API errors, c=64",
        "Pipeline drain, latency 0, hot catalog",
        "1,000 SKUs (Zipf)",
        "Decoupling",
        "End-to-end p99",
        "Sustained: highest rate",
        "Sustained: CPU per completed order",
        "Scale-out, 4",
        "| offered/s | offered | sent |",
        "| process kind | 10/s | 20/s |",
        "| **total** |",
        "connection errors",
    ):
        assert label in table, label
    png = (smoke_run / "latest.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_smoke_run_measures_the_system_as_deployed_and_without_flower_and_the_page(smoke_run):
    results = json.loads((smoke_run / "latest.json").read_text())
    assert results["left_out"] == []
    for step in results["phases"]["sustained"]["steps"]:
        per_kind = step["cpu_ms_per_order"]
        for kind in ("flower", "live", "proxy", "browser (client)"):
            assert numeric(per_kind[kind]), (step["rate"], kind)
        # the browser is the load's side: listed, not part of the system's CPU per order
        system = sum(v for k, v in per_kind.items() if k != "browser (client)")
        assert abs(system - step["cpu_ms_per_order_total"]) < 0.01 * len(per_kind)
    phase = results["phases"]["deployed_ab"]
    best = results["phases"]["sustained"]["max_rate_p99_ok"]
    rates = {*results["settings"]["sizes"]["deployed_ab_rates"], *([best] if best else [])}
    assert [p["rate"] for p in phase["pairs"]] == sorted(rates)
    for pair in phase["pairs"]:
        assert sorted(pair["order"]) == ["bare", "deployed", "task_events"]
        assert "flower" in pair["deployed"]["cpu_ms_per_order"] and "flower" not in pair["bare"]["cpu_ms_per_order"]
        assert "browser (client)" not in pair["bare"]["cpu_ms_per_order"]
        assert "flower" in pair["task_events"]["cpu_ms_per_order"]
        for variant in ("deployed", "bare", "task_events"):
            assert pair[variant]["completed"] > 0, (pair["rate"], variant)
