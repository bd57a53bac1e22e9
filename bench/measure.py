"""What the scenarios measure with: the load generator (bench/load.py, its own process), the waits for
orders to be published and terminal, the drain rate and the POST -> completed latencies of a set of
orders. Functions of the run's context (bench/context.py)."""

import json
import subprocess
import time

from bench.env import PY, ROOT, TOKEN
from bench.load import ZIPF_SKUS
from bench.queues import PIPELINE_QUEUES
from devtools.procs import wait_until


def load(
    ctx,
    label: str,
    path: str,
    *,
    port: int,
    concurrency: int = 0,
    rate: float = 0.0,
    seconds: float | None = None,
    count: int | None = None,
    ids: bool = False,
    catalog: str = "hot",
) -> dict:
    """One run of the load generator, recorded as results["load_runs"][label]: closed loop at
    `concurrency`, or open loop at `rate`; with `ids`, the accepted orders' ids too (not recorded)."""
    sizes = ctx.sizes
    argv = [
        PY,
        "-m",
        "bench.load",
        "--url",
        f"http://127.0.0.1:{port}{path}",
        "--token",
        TOKEN,
        "--duration",
        str(seconds if seconds is not None else sizes.phase_timeout),
        "--seed",
        str(len(ctx.results["load_runs"])),
        "--catalog",
        catalog,
        "--zipf-s",
        str(sizes.zipf_s),
        "--zipf-skus",
        str(ZIPF_SKUS),
    ]
    argv += ["--concurrency", str(concurrency)] if concurrency else ["--rate", str(rate)]
    if count:
        argv += ["--count", str(count)]
    ids_file = ctx.logs / f"ids-{label}.txt"
    if ids:
        argv += ["--ids-file", str(ids_file)]
    done = subprocess.run(argv, cwd=ROOT, env=ctx.env, capture_output=True, text=True, timeout=sizes.phase_timeout + 60)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["path"] = path
    ctx.results["load_runs"][label] = result
    errors = (
        f", {result['errors_total']} errors ({result['statuses']}, {result['errors']})"
        if result["errors_total"]
        else ""
    )
    ctx.log(
        f"load {label}: {result['accepted']}/{result['sent']} accepted, {result['accept_rate']}/s, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms{errors}, generator {result['generator_cores']} cores"
    )
    if ids:
        result = {**result, "ids": [line for line in ids_file.read_text().splitlines() if line]}
    return result


def terminal_count(ctx) -> int:
    return ctx.db.sql("SELECT count(*) FROM orders_order WHERE status IN ('completed', 'failed')")[0][0]


def pipeline_waiting(ctx) -> int:
    """Work that can still complete an order: unpublished outbox rows and messages in the queues."""
    outbox = ctx.db.sql("SELECT count(*) FROM orders_outboxmessage WHERE published_at IS NULL")[0][0]
    return outbox + ctx.queues.ready_messages(PIPELINE_QUEUES)


def wait_progress(ctx, count, target: int, waiting, what: str) -> str:
    """Wait until count() >= target: 'done'. Stop early, 'stalled', when the count has not moved for
    `stall_seconds` while waiting() says nothing is left to do (what is missing was lost, or is stuck
    in a worker: waiting longer measures nothing). 'timed_out' after `phase_timeout` in any case."""
    s = ctx.sizes
    deadline = time.monotonic() + s.phase_timeout
    last, moved = -1, time.monotonic()
    while True:
        value = count()
        now = time.monotonic()
        if value >= target:
            return "done"
        if value != last:
            last, moved = value, now
        elif now - moved > s.stall_seconds and waiting() == 0:
            ctx.log(
                f"warning: {what}: {value}/{target} and no progress for {s.stall_seconds:g} s with nothing left waiting"
            )
            return "stalled"
        if now > deadline:
            ctx.log(f"warning: {what}: {value}/{target} at the {s.phase_timeout:g} s deadline")
            return "timed_out"
        time.sleep(0.25)


def wait_terminal(ctx, target: int, what: str) -> str:
    """wait_progress on the orders that reached completed or failed."""
    return wait_progress(ctx, lambda: terminal_count(ctx), target, lambda: pipeline_waiting(ctx), what)


def wait_published(ctx) -> None:
    """Orders accepted while the relay catches up (fast path failed or relay-only publish)."""
    try:
        wait_until(
            lambda: ctx.db.sql("SELECT count(*) FROM orders_outboxmessage WHERE published_at IS NULL")[0][0] == 0,
            timeout=min(60.0, ctx.sizes.phase_timeout),
            what="outbox empty",
            interval=0.2,
        )
    except TimeoutError:
        ctx.log("warning: outbox not empty at the deadline")


def fill(ctx, label: str, port: int, orders: int, catalog: str = "hot") -> int:
    """A backlog of `orders` POSTed at c=16, published; how many were accepted."""
    result = load(ctx, label, "/orders", port=port, concurrency=16, count=orders, catalog=catalog)
    wait_published(ctx)
    return result["accepted"]


def drain(ctx, expected: int, started_at: float) -> dict:
    """Wait (bounded) until `expected` orders are terminal; the rate is read from the finalize
    timestamps between 10 % and 90 % of the orders, so worker start-up does not count."""
    status = wait_terminal(ctx, expected, "drain")
    timed_out = status != "done"
    wall = time.monotonic() - started_at
    times = [
        row[0]
        for row in ctx.db.sql(
            "SELECT extract(epoch FROM created_at) FROM orders_orderhistory "
            "WHERE stage = 'finalize' AND event = 'completed' ORDER BY created_at"
        )
    ]
    failed = ctx.db.sql("SELECT count(*) FROM orders_order WHERE status = 'failed'")[0][0]
    return {
        "expected": expected,
        "completed": len(times),
        "failed": failed,
        "timed_out": timed_out,
        "end": status,
        "wall_s": round(wall, 2),
        "rate": steady_rate(times, len(times) / wall if wall else 0.0),
    }


def open_loop(ctx, label: str, port: int, rate: float, seconds: float, *, catalog: str = "hot") -> dict:
    """Open loop at `rate` for `seconds` against running workers, then wait (bounded) until every
    accepted order is terminal; latency per order = history `accepted` -> finalize `completed`."""
    result = load(ctx, label, "/orders", port=port, rate=rate, seconds=seconds, ids=True, catalog=catalog)
    ids = result.pop("ids")
    terminal = lambda: ctx.db.sql(  # noqa: E731
        "SELECT count(*) FROM orders_order WHERE id = ANY(%s::uuid[]) AND status IN ('completed','failed')", [ids]
    )[0][0]
    end = wait_progress(ctx, terminal, len(ids), lambda: pipeline_waiting(ctx), f"{label} orders terminal")
    rows = ctx.db.sql(
        "SELECT extract(epoch FROM f.created_at - a.created_at) FROM orders_orderhistory a "
        "JOIN orders_orderhistory f ON f.order_id = a.order_id AND f.stage = 'finalize' AND f.event = 'completed' "
        "WHERE a.event = 'accepted' AND a.order_id = ANY(%s::uuid[])",
        [ids],
    )
    latencies = sorted(float(r[0]) for r in rows)
    summary = latency_summary(latencies, len(ids))
    summary["failed"] = ctx.db.sql(
        "SELECT count(*) FROM orders_order WHERE id = ANY(%s::uuid[]) AND status = 'failed'", [ids]
    )[0][0]
    summary["end"] = end
    summary["post"] = {
        k: result[k]
        for k in (
            "sent",
            "accepted",
            "accept_rate",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "errors_total",
            "non_2xx",
            "connection_errors",
            "generator_cores",
        )
    }
    return summary


def steady_rate(times: list[float], fallback: float) -> float:
    """Completions per second between the 10th and the 90th percentile of the finish times."""
    times = sorted(float(t) for t in times)
    if len(times) < 10:
        return round(fallback, 2)
    lo, hi = int(len(times) * 0.1), int(len(times) * 0.9)
    span = times[hi] - times[lo]
    return round((hi - lo) / span, 2) if span > 0 else round(fallback, 2)


def latency_summary(latencies: list[float], expected: int) -> dict:
    from bench.load import percentile

    ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
    return {
        "orders": expected,
        "measured": len(latencies),
        "p50_ms": ms(percentile(latencies, 50)),
        "p90_ms": ms(percentile(latencies, 90)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(latencies[-1] if latencies else None),
    }
