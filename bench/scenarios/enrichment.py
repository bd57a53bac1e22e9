"""Phases 6 and 7, the I/O-bound enrichment stage at the provider's latency (enrichment_latency_ms,
1000 ms): the rest of the pipeline running, no worker on the enrichment queue, a backlog filled through the
API waits there; then the Procfile's enrichment consumer(s) start and the rate of completed orders is what
the stage sustains. Phase "enrichment_io" with the Procfile's pool and concurrency (or
--enrichment-concurrency), phases "scale_out_<k>" with k = 1, 2, 4 processes (--scale-concurrency threads
each). Figures enrichment_io_vs_latency0/_vs_chain and scale_out_<k>."""

import time

from bench import procs
from bench.figures import figure
from bench.measure import drain, fill
from bench.workers import ENRICHMENT_QUEUE, pipeline_env
from devtools.procs import wait_until


def without_enrichment_consumers(ctx, workers: list[procs.Proc]) -> list[procs.Proc]:
    """The running pipeline `workers` less those consuming the enrichment queue; a worker that consumes
    other queues too comes back on those only."""
    env = pipeline_env(ctx.env, 0)
    rest, _ = ctx.workers.enrichment_split(env)
    consuming = {spec.name for spec in ctx.workers.specs(env) if ENRICHMENT_QUEUE in spec.queues}
    ctx.workers.stop([w for w in workers if w.kind in consuming])
    workers = [w for w in workers if w.kind not in consuming]
    return workers + ctx.workers.start(
        [spec for spec in rest if spec.name in consuming], env
    )  # a shared worker's other queues


def run_io(ctx, port: int) -> dict:
    return run(ctx, "enrichment_io", port, ctx.sizes.io_orders, concurrency=ctx.args.enrichment_concurrency or None)


def run_scale_out(ctx, port: int) -> None:
    for k in ctx.sizes.scale_processes:
        run(
            ctx,
            f"scale_out_{k}",
            port,
            ctx.sizes.scale_orders,
            processes=k,
            concurrency=ctx.args.scale_concurrency,
            threads_only=True,
        )


def run(
    ctx,
    label: str,
    port: int,
    orders: int,
    *,
    processes: int = 1,
    concurrency: int | None = None,
    threads_only: bool = False,
) -> dict:
    """`processes` copies of the Procfile's enrichment consumer(s) at the provider's latency (its pool; its
    concurrency, or `concurrency` -- with `threads_only`, only for a threads/gevent/eventlet pool) drain
    a backlog of `orders` waiting in the enrichment queue."""
    ctx.reset()
    accepted = fill(ctx, f"{label}-fill", port, orders)
    wait_backlog(ctx, accepted)
    latency = ctx.sizes.enrichment_latency_ms
    env = pipeline_env(ctx.env, latency)
    enrich = consumer_specs(ctx, env, concurrency, threads_only)
    ctx.sampler.begin()
    started_at = time.monotonic()
    workers = ctx.workers.start([spec for spec in enrich for _ in range(processes)], env)
    result = drain(ctx, accepted, started_at)
    result["cost"] = ctx.sampler.end()
    result.update(
        latency_ms=latency,
        enrichment_processes=processes,
        enrichment_pool=enrich[0].pool if enrich else None,
        enrichment_concurrency=enrich[0].concurrency if enrich else None,
    )
    ctx.results["phases"][label] = result
    ctx.log(
        f"{label}: {result['completed']} completed ({result['failed']} failed) "
        f"at {result['rate']} orders/s, end={result['end']}"
    )
    ctx.workers.stop(workers)
    return result


def wait_backlog(ctx, accepted: int) -> None:
    """Until the process stage has moved the whole backlog into the enrichment queue (bounded)."""
    try:
        wait_until(
            lambda: ctx.queues.depth(ENRICHMENT_QUEUE) >= accepted,
            timeout=ctx.sizes.phase_timeout,
            what="backlog in the enrichment queue",
            interval=0.25,
        )
    except TimeoutError:
        ctx.log("warning: the process stage did not move the whole backlog in time")


def consumer_specs(ctx, env: dict, concurrency: int | None, threads_only: bool) -> list[procs.WorkerSpec]:
    """The Procfile's enrichment consumers on the enrichment queue only, at `concurrency` if given."""
    _, enrich = ctx.workers.enrichment_split(env)
    if concurrency:
        enrich = [
            s.with_concurrency(concurrency) if (not threads_only or s.pool in procs.THREAD_POOLS) else s for s in enrich
        ]
    return enrich


def io_figures(r: dict) -> dict:
    phases = r["phases"]
    io, drained, chain_phase = (
        phases.get("enrichment_io"),
        phases.get("pipeline_drain"),
        phases.get("ceiling_chain_drain"),
    )
    if not (io and drained and chain_phase):
        return {}
    return {
        "enrichment_io_vs_latency0": figure(
            io["rate"],
            drained["rate"],
            "orders/s",
            "reported",
            None,
            note=f"latency {io['latency_ms']} ms, {io['enrichment_pool']} x{io['enrichment_concurrency']}",
            ceiling_name="pipeline at latency 0",
        ),
        "enrichment_io_vs_chain": figure(
            io["rate"], chain_phase["rate"], "orders/s", "reported", None, ceiling_name="bare 3-task chain"
        ),
    }


def scale_out_figures(r: dict, s) -> dict:
    phases, out = r["phases"], {}
    base = phases.get(f"scale_out_{s.scale_processes[0]}", {}).get("rate")
    for k in s.scale_processes:
        ph = phases.get(f"scale_out_{k}")
        if ph:
            out[f"scale_out_{k}"] = figure(
                ph["rate"],
                base,
                "orders/s",
                "reported",
                None,
                note=f"{k} x {ph['enrichment_pool']} {ph['enrichment_concurrency']}, latency {ph['latency_ms']} ms",
                ceiling_name=f"{s.scale_processes[0]} process",
            )
    return out
