"""Phase 4, the pipeline drains at provider latency 0: `drain_orders` orders POSTed with no worker running,
then every Procfile worker starts; completed orders/s between 10 % and 90 % of the finalize timestamps.
Twice: the hot catalog (1-3 of the 5 demo SKUs: every order on the same few rows, a flash sale) and the
catalog of 1,000 SKUs picked Zipf-style (bench/load.py --catalog zipf; seeded by bench/env.py). Phases
"pipeline_drain" and "pipeline_drain_zipf"; figures pipeline_throughput(_zipf) against the bare chain's
drain, and the worker CPU per 1,000 orders against the bare chain's (the cost)."""

import time

from bench.figures import figure, met_ratio, per_1000
from bench.load import ZIPF_SKUS
from bench.measure import drain, fill

HOT_SKUS = 5


def run(ctx, label: str, port: int, orders: int, *, catalog: str = "hot", keep: bool = False):
    """The drain; (its result, the workers if `keep` else [])."""
    ctx.reset()
    ctx.sampler.begin()
    accepted = fill(ctx, f"{label}-fill", port, orders, catalog)
    started_at = time.monotonic()
    workers = ctx.workers.start_pipeline(latency_ms=0)
    result = drain(ctx, accepted, started_at)
    result["cost"] = ctx.sampler.end()
    result.update(
        latency_ms=0,
        catalog=catalog,
        zipf_s=ctx.sizes.zipf_s if catalog == "zipf" else None,
        skus=ZIPF_SKUS if catalog == "zipf" else HOT_SKUS,
    )
    ctx.results["phases"][label] = result
    ctx.log(
        f"{label}: {result['completed']} completed ({result['failed']} failed) "
        f"at {result['rate']} orders/s, end={result['end']}"
    )
    if keep:
        return result, workers
    ctx.workers.stop(workers)
    return result, []


def throughput_figures(r: dict, s) -> dict:
    phases = r["phases"]
    out: dict = {}
    chain_phase = phases.get("ceiling_chain_drain")
    if not chain_phase:
        return out
    chain = chain_phase["rate"]
    for key, note in (
        ("pipeline_drain", "hot catalog: 1-3 of 5 SKUs"),
        ("pipeline_drain_zipf", f"{ZIPF_SKUS:,} SKUs, Zipf s={s.zipf_s:g}"),
    ):
        result = phases.get(key)
        if result:
            name = "pipeline_throughput" if key == "pipeline_drain" else "pipeline_throughput_zipf"
            out[name] = figure(
                result["rate"],
                chain,
                "orders/s",
                ">= 0.6x",
                met_ratio(result["rate"], chain, at_least=0.6),
                note=f"{note}; backlog {result['expected']}, {result['failed']} failed",
                ceiling_name="bare 3-task chain, no DB",
            )
    return out


def cost(r: dict) -> dict | None:
    """CPU seconds and peak RSS per process kind per 1,000 completed orders (the drains, fill + drain) and per
    1,000 bare chains: the results' "cost" (the report's cost table); None without both drains."""
    drained, chain_phase = r["phases"].get("pipeline_drain"), r["phases"].get("ceiling_chain_drain")
    if not (drained and chain_phase):
        return None
    tables = {
        "pipeline_per_1000_orders": per_1000(drained["cost"], drained["completed"]),
        "bare_chain_per_1000_chains": per_1000(chain_phase["cost"], chain_phase["completed"]),
    }
    zipf = r["phases"].get("pipeline_drain_zipf")
    if zipf:
        tables["pipeline_zipf_per_1000_orders"] = per_1000(zipf["cost"], zipf["completed"])
    return tables


def cost_figures(tables: dict) -> dict:
    """Worker CPU per 1,000 completed orders next to the bare chain's workers per 1,000 chains."""
    workers_cpu = sum(
        v["cpu_s_per_1000"] for k, v in tables["pipeline_per_1000_orders"].items() if k.startswith("worker")
    )
    chain_cpu = sum(
        v["cpu_s_per_1000"] for k, v in tables["bare_chain_per_1000_chains"].items() if k.startswith("ceiling_worker")
    )
    return {
        "cost_worker_cpu_per_1000": figure(
            round(workers_cpu, 2), round(chain_cpu, 2), "CPU s", "reported", None, ceiling_name="bare chain workers"
        )
    }
