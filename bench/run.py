"""The benchmark suite, one command: `python -m bench.run [--smoke]` (or `make bench`).

Measures the performance issue's targets against the real processes of the Procfile (the web server,
every Celery worker, the relay, the archiver) on its own database, RabbitMQ vhost and Redis db, each next to
a ceiling measured in the same run, and writes bench/results/<timestamp>.json, latest.json, latest.md and
latest.png. See bench/README.md for what each figure means.
"""

import argparse
import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import procs, record
from bench import workers as bench_workers
from bench.context import Bench
from bench.deployed import EXTRAS, Deployed
from bench.env import ROOT, bench_env, prepare
from bench.scenarios import api, ceiling_chain, decoupling, deployed_ab, drain, e2e, enrichment, sustained
from bench.scenarios.sustained import cpu_per_order, reference_step, step_ok
from bench.sizes import SMOKE, Sizes, override
from bench.workers import enrichment_split
from orders.topology import STAGES

# importable from here as before the split (tests/bench)
__all__ = [
    "STAGE_QUEUES",
    "Sizes",
    "bench_env",
    "ceiling_specs",
    "cpu_per_order",
    "enrichment_split",
    "figures",
    "main",
    "reference_step",
    "step_ok",
]

ONLY = ("api", "ceiling", "pipeline", "zipf", "e2e", "sustained", "deployed")
STAGE_QUEUES = tuple(stage.queue for stage in STAGES)  # process, enrichment, finalize


def ceiling_specs(workers: list[procs.WorkerSpec]) -> list[procs.WorkerSpec]:
    """The workers on the bare chain's queues in place of the product's stage queues (bench/workers.py)."""
    return bench_workers.ceiling_specs(workers, STAGE_QUEUES)


# --------------------------------------------------------------------------- the run
def run(ctx: Bench) -> dict:
    """The whole suite, or with --only one part of it (each part as the full run measures it)."""
    start(ctx)
    only = ctx.results["only"] = ctx.args.only
    if only == "ceiling":
        ceiling_chain.run(ctx)
        return finish(ctx)
    port = start_product(ctx)
    if only:
        PARTS[only](ctx, port)
    else:
        full_run(ctx, port)
    return finish(ctx)


def start(ctx: Bench) -> None:
    """Record the machine, set up the database and vhost, record versions and settings, and sample the
    machine's PostgreSQL, RabbitMQ and Redis from now on."""
    ctx.results["started_at"] = datetime.now(UTC).isoformat()
    ctx.results["machine"] = record.machine()
    prepare(ctx)
    ctx.results["versions"] = record.versions(ctx)
    ctx.results["settings"] = record.settings_snapshot(ctx)
    ctx.ab.setup()
    for kind, pids in procs.infra_pids().items():
        for pid in pids:
            ctx.sampler.track(kind, pid)


def start_product(ctx: Bench) -> int:
    """The Procfile's web server and relay, running until finish(); the web server's port."""
    web, port = ctx.servers.start_web()
    relay = ctx.servers.start_relay()
    ctx.servers.keep(web, relay)
    ctx.log(f"web on 127.0.0.1:{port}: {' '.join(web.popen.args)} (publish {ctx.ab.default})")
    return port


def full_run(ctx: Bench, port: int) -> None:
    s = ctx.sizes
    api.run(ctx, port)  # 1. API accept rate and p99, pipeline idle, vs the bare insert; the publish A/B
    decoupling.run(ctx, port)  # 2. POST p99 idle, then with the backlog waiting in the queues
    ceiling_chain.run(ctx)  # 3. bare chain ceiling: drain and steady-rate latency
    # From here the system as deployed (bench/deployed.py): Flower, the live server with a browser on its
    # page, the proxy the load goes through; --leave-out takes some out (recorded).
    deployed = Deployed(ctx, port)
    load_port = deployed.start()
    # 4. pipeline drains at latency 0: the hot catalog, then 1,000 SKUs picked Zipf-style; then the end-to-end
    #    latency at e2e_rate (default publish and the A/B, straight to their web servers) and the sustained
    #    steps on the same workers
    drain.run(ctx, "pipeline_drain", load_port, s.drain_orders)
    _, workers = drain.run(ctx, "pipeline_drain_zipf", load_port, s.drain_orders, catalog="zipf", keep=True)
    e2e.run_default_and_ab(ctx, port)
    # 5. the whole Procfile, one rate step after another; 5b. as deployed against without Flower and the page
    sustained.run_with_archiver(ctx, load_port, then=lambda: deployed_ab.run(ctx, deployed, load_port))
    deployed.stop()
    # 6. I/O-bound enrichment at 1000 ms with the Procfile's pool and concurrency
    #    (the rest of the pipeline keeps running)
    workers = enrichment.without_enrichment_consumers(ctx, workers)
    enrichment.run_io(ctx, port)
    enrichment.run_scale_out(ctx, port)  # 7. scale-out: 1, 2, 4 enrichment processes at 1000 ms
    ctx.workers.stop(workers)
    ctx.results["figures"] = figures(ctx.results, s)


def only_pipeline(ctx: Bench, port: int) -> None:
    ceiling_chain.run(ctx)
    drain.run(ctx, "pipeline_drain", port, ctx.sizes.drain_orders)


def only_zipf(ctx: Bench, port: int) -> None:
    ceiling_chain.run(ctx)
    drain.run(ctx, "pipeline_drain_zipf", port, ctx.sizes.drain_orders, catalog="zipf")


def on_workers(part, *, as_deployed: bool = False):
    """`part` with every Procfile worker running (latency 0), from empty tables and queues; `as_deployed`:
    with bench/deployed.py's processes too, the load through the proxy (unless --leave-out)."""

    def measure(ctx: Bench, port: int) -> None:
        ctx.reset()
        deployed = Deployed(ctx, port) if as_deployed else None
        load_port = deployed.start() if deployed else port
        workers = ctx.workers.start_pipeline()
        part(ctx, load_port, deployed)
        ctx.workers.stop(workers)
        if deployed:
            deployed.stop()

    return measure


def sustained_and_deployed_ab(ctx: Bench, port: int, deployed: Deployed) -> None:
    sustained.run_with_archiver(ctx, port, then=lambda: deployed_ab.run(ctx, deployed, port))


# --only PART (but ceiling, which needs no web server)
PARTS = {
    "api": api.run,
    "pipeline": only_pipeline,
    "zipf": only_zipf,
    "e2e": on_workers(lambda ctx, port, _: e2e.run(ctx, "pipeline_e2e", port)),
    "sustained": on_workers(lambda ctx, port, _: sustained.run_with_archiver(ctx, port), as_deployed=True),
    "deployed": on_workers(
        lambda ctx, port, deployed: sustained.run_with_archiver(
            ctx, port, then=lambda: deployed_ab.run(ctx, deployed, port)
        ),
        as_deployed=True,
    ),
}


def finish(ctx: Bench) -> dict:
    """Stop the web servers and relays this run started; record when and how long."""
    ctx.servers.stop(list(ctx.servers.running))
    ctx.results["finished_at"] = datetime.now(UTC).isoformat()
    ctx.results["duration_s"] = round(time.monotonic() - ctx.t0, 1)
    if ctx.args.only:
        ctx.results["figures"] = figures(ctx.results, ctx.sizes)
    return ctx.results


# --------------------------------------------------------------------------- figures
def figures(r: dict, s: Sizes) -> dict:
    """Every figure of the run, each with its ceiling measured in the same run, in the report's order; parts
    a partial run (--only) did not measure are left out. Also records the cost tables and the load
    generator's CPU per run."""
    out = {}
    out.update(api.figures(r))
    out.update(drain.throughput_figures(r, s))
    out.update(enrichment.io_figures(r))
    out.update(decoupling.figures(r))
    out.update(e2e.figures(r, s))
    out.update(sustained.figures(r, s))
    out.update(deployed_ab.figures(r, s))
    # cost: worker CPU per 1000 completed orders vs the bare chain's workers per 1000 chains
    cost = drain.cost(r)
    if cost:
        r["cost"] = cost
        out.update(drain.cost_figures(cost))
    out.update(enrichment.scale_out_figures(r, s))
    r["generator_cpu"] = {
        label: {"cores": lr["generator_cores"], "cpu_s": lr["generator_cpu_s"]} for label, lr in r["load_runs"].items()
    }
    return out


# --------------------------------------------------------------------------- command line
def parse_args(argv=None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the suite works, measures nothing")
    parser.add_argument(
        "--name", default=None, help="database and vhost name (default orders_bench, orders_bench_smoke)"
    )
    parser.add_argument("--redis-db", type=int, default=12)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--logs", default="", help="process logs (default /tmp/<name>-logs-<stamp>)")
    parser.add_argument(
        "--enrichment-concurrency",
        type=int,
        default=0,
        help="concurrency of the enrichment consumer in the 1000 ms run (default: the Procfile's)",
    )
    parser.add_argument(
        "--scale-concurrency",
        type=int,
        default=0,
        help="threads per enrichment process in the scale-out runs, if its pool is a thread pool (default 16; "
        "4 with --smoke, which measures nothing and should not take 64 of the shared PostgreSQL's connection slots)",
    )
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        help="override one size, e.g. drain_orders=1000 or sustained_rates=25,50 (recorded)",
    )
    parser.add_argument(
        "--only",
        choices=ONLY,
        default=None,
        help="one part only, its results as JSON on stdout, no report files (quick A/B comparisons): "
        "api (the API phase), ceiling (the bare chain), pipeline (the bare chain and the hot-catalog drain), "
        "zipf (the bare chain and the 1,000-SKU Zipf drain), e2e (end to end at e2e_rate), "
        "sustained (the sustained rate steps), deployed (the sustained steps, then as deployed against without "
        "Flower and the live page)",
    )
    parser.add_argument(
        "--browser-cpu",
        type=float,
        default=0.1,
        help="CPU cap of the browser on the live page, in cores (a cgroup's quota; 0: none, only nice 19): it is "
        "the operator's, elsewhere in a deployment; here it shares the two cores (recorded as browser_cpu_cap)",
    )
    parser.add_argument(
        "--leave-out",
        default="",
        type=lambda text: tuple(x for x in text.split(",") if x),
        help=f"comma-separated processes the drain and sustained phases run without ({', '.join(EXTRAS)}; "
        "live: the live server and the browser on its page); default none: the system as deployed (recorded)",
    )
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for every process (e.g. WEB_CONCURRENCY=2)"
    )
    parser.add_argument(
        "--procfile", default="", help="run the processes of this Procfile instead of ./Procfile (recorded)"
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=900.0,
        help="seconds to wait for another run of the same name to finish (one run per name at a time)",
    )
    args = parser.parse_args(argv)
    if args.procfile:
        procs.PROCFILE = Path(args.procfile).resolve()
        if not procs.PROCFILE.is_file():
            parser.error(f"no such Procfile: {args.procfile}")
    unknown = set(args.leave_out) - set(EXTRAS)
    if unknown:
        parser.error(f"--leave-out: unknown {', '.join(sorted(unknown))} (one of {', '.join(EXTRAS)})")
    args.name = args.name or ("orders_bench_smoke" if args.smoke else "orders_bench")
    args.scale_concurrency = args.scale_concurrency or (4 if args.smoke else 16)
    sizes = SMOKE() if args.smoke else Sizes()
    for pair in args.size:
        error = override(sizes, pair)
        if error:
            parser.error(error)
    return args, sizes


def main(argv=None) -> int:
    args, sizes = parse_args(argv)
    ctx = Bench(args, sizes, STAGE_QUEUES)

    def stop(signum, frame):  # SIGTERM skips atexit: turn it into an exit that runs the finally below
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        results = run(ctx)
    finally:
        procs.stop_started()
        ctx.close()
    if args.only:
        print(
            json.dumps(
                {key: results.get(key) for key in ("only", "publish", "figures", "phases", "load_runs")},
                indent=1,
                default=str,
            )
        )
        return 0
    from bench import report

    paths = report.write(results, Path(args.out), ctx.stamp)
    print(report.markdown(results))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
