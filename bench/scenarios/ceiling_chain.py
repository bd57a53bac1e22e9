"""Phase 3, the bare-chain ceiling: bench/ceiling_celery.py's 3-task Celery chain (no database) on its own
queues bench.a/b/c, consumed by the Procfile's workers mapped onto them (same pools, concurrencies, flags).
Its drain rate is the pipeline drains' ceiling (phase "ceiling_chain_drain"), its end-to-end latency at
e2e_rate the end-to-end figures' (phase "ceiling_chain_e2e"). No figures of its own."""

import time

from bench.measure import latency_summary, steady_rate, wait_progress
from devtools.procs import wait_until


def run(ctx) -> None:
    workers = measure_drain(ctx)
    measure_latency(ctx)
    ctx.workers.stop(workers)


def measure_drain(ctx) -> list:
    """`drain_orders` chains published with no worker running, then the workers start: chains/s between
    10 % and 90 % of them. The workers keep running (returned) for the latency measure."""
    n = ctx.sizes.drain_orders
    ctx.reset()
    publish_backlog(ctx, n)
    ctx.sampler.begin()
    started_at = time.monotonic()
    workers = ctx.workers.start_ceiling()
    status = wait_progress(ctx, lambda: done_count(ctx), n, lambda: waiting(ctx), "bare-chain drain")
    wall = time.monotonic() - started_at
    cost = ctx.sampler.end()
    times = sorted(done for done, _ in done_times(ctx))
    drained = {
        "expected": n,
        "completed": len(times),
        "timed_out": status != "done",
        "end": status,
        "wall_s": round(wall, 2),
        "rate": steady_rate(times, len(times) / wall if wall else 0.0),
        "cost": cost,
    }
    ctx.results["phases"]["ceiling_chain_drain"] = drained
    ctx.log(f"ceiling chain: {drained['completed']} chains at {drained['rate']}/s")
    return workers


def measure_latency(ctx) -> None:
    """End-to-end latency of the bare chain at the same steady rate as the pipeline's (publish with
    confirms, as the API does), on the running workers."""
    from bench.ceiling_celery import QUEUES

    ctx.redis().delete(ctx.done_key)
    total = int(ctx.sizes.e2e_rate * ctx.sizes.e2e_seconds)
    publish_at_rate(ctx, total, ctx.sizes.e2e_rate)
    if wait_progress(ctx, lambda: done_count(ctx), total, lambda: waiting(ctx), "bare-chain e2e") != "done":
        ctx.log(
            f"warning: queue depths {[ctx.queues.depth(q) for q in QUEUES]}, "
            f"consumers {[ctx.queues.consumers(q) for q in QUEUES]}"
        )
    latencies = sorted(done - sent for done, sent in done_times(ctx))
    ctx.results["phases"]["ceiling_chain_e2e"] = latency_summary(latencies, total)
    ctx.log(f"ceiling chain e2e: {ctx.results['phases']['ceiling_chain_e2e']}")


def publish_backlog(ctx, count: int) -> None:
    """The bare-chain backlog: real Celery chain messages, published without waiting for confirms."""
    from bench.ceiling_celery import app
    from bench.ceiling_tasks import ceiling_chain

    with app.connection_for_write(transport_options={"confirm_publish": False}) as conn:
        producer = app.amqp.Producer(conn.default_channel, auto_declare=False)
        for n in range(count):
            ceiling_chain(n).apply_async(producer=producer)
    try:
        wait_until(lambda: ctx.queues.depth("bench.a") >= count, timeout=60, what="ceiling backlog", interval=0.2)
    except TimeoutError:
        raise RuntimeError(
            f"bench.a holds {ctx.queues.depth('bench.a')} of the {count} chains published; "
            f"consumers on it: {ctx.queues.consumers('bench.a')}"
        ) from None


def publish_at_rate(ctx, total: int, rate: float) -> None:
    """`total` chains, one every 1/rate s, each carrying its send time."""
    from bench.ceiling_celery import app
    from bench.ceiling_tasks import ceiling_chain

    start = time.monotonic()
    with app.connection_for_write() as conn:  # publisher confirms, as the product's publishers
        producer = app.amqp.Producer(conn.default_channel, auto_declare=False)
        for k in range(total):
            delay = start + k / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ceiling_chain(k, time.time()).apply_async(producer=producer)


def done_times(ctx) -> list[tuple[float, float]]:
    """(finished, sent) of every chain done since the counter was last emptied."""
    return [tuple(map(float, v.split())) for v in ctx.redis().lrange(ctx.done_key, 0, -1)]


def done_count(ctx) -> int:
    return ctx.redis().llen(ctx.done_key)


def waiting(ctx) -> int:
    from bench.ceiling_celery import QUEUES

    return ctx.queues.ready_messages(list(QUEUES))
