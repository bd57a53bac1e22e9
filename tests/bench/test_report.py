from bench import report


def _run(started, git, rate, ratio, cpu):
    return {
        "started_at": started,
        "versions": {"git": git},
        "figures": {"pipeline_throughput": {"value": rate, "unit": "orders/s", "ratio": ratio, "target": ">= 0.8x"}},
        "cost": {"pipeline_per_1000_orders": {"worker_process": {"cpu_s_per_1000": cpu, "peak_rss_mb": 1.0}}},
    }


def test_compare_puts_each_figure_of_two_runs_side_by_side():
    table = report.compare(
        _run("2026-11-23T00:21:49", "aaa", 15.5, 0.188, 21.9), _run("2026-11-23T02:09:04", "bbb", 59.6, 0.26, 9.0)
    )
    assert (
        "| Pipeline drain, latency 0, hot catalog | 15.5 orders/s | 0.188 | 59.6 orders/s | 0.260 | >= 0.8x |" in table
    )
    assert "before: 2026-11-23 00:21 (git aaa)" in table and "after: 2026-11-23 02:09 (git bbb)" in table
    assert "| worker_process | 21.9 | 9.000 |" in table


def test_the_fast_api_ceiling_is_whichever_server_served_the_bare_insert_faster():
    from bench.scenarios import api

    runs = {
        "api-ceiling-fast-c16": {"accept_rate": 500.0},
        "api-ceiling-fast-granian-c16": {"accept_rate": 800.0},
        "api-ceiling-fast-c64": {"accept_rate": 700.0},
    }
    assert api.fastest_ceiling(runs, 16) == ("granian", {"accept_rate": 800.0})
    assert api.fastest_ceiling(runs, 64) == ("gunicorn", {"accept_rate": 700.0})  # granian's run missing
    assert api.fastest_ceiling(runs, 128) == (None, None)
