"""Phase 4, end to end: orders offered at e2e_rate (open loop, e2e_seconds) to running workers at provider
latency 0, POST -> completed per order from its history; with the default publish setting, then with the
A/B one (its own web server + relay). Phases "pipeline_e2e" and "pipeline_e2e_<A/B>"; figures
e2e_latency_p50/p99 against the bare chain's latency at the same rate."""

from bench.figures import figure, publish_variants
from bench.measure import load, open_loop, wait_published, wait_terminal


def run(ctx, label: str, port: int) -> dict:
    """Open loop at e2e_rate (workers at latency 0, running)."""
    summary = open_loop(ctx, label, port, ctx.sizes.e2e_rate, ctx.sizes.e2e_seconds)
    summary["publish"] = ctx.ab.of(port)
    ctx.results["phases"][label] = summary
    ctx.log(f"{label}: {summary}")
    return summary


def run_default_and_ab(ctx, port: int) -> None:
    """Both publish settings, one after the other, on the workers already running."""
    clear_orders(ctx)
    run(ctx, "pipeline_e2e", port)
    ab_port = ctx.ab.start()
    warm(ctx, ab_port, "/orders", f"warmup-e2e-{ctx.ab.slug}")
    clear_orders(ctx)
    run(ctx, f"pipeline_e2e_{ctx.ab.key}", ab_port)
    ctx.ab.stop()


def clear_orders(ctx) -> None:
    """Empty order tables, once every order before is published (the queues stay as they are)."""
    wait_published(ctx)
    ctx.db.truncate()


def warm(ctx, port: int, path: str, label: str) -> None:
    """`api_warmup` requests at c=16 to a freshly started web server (each worker's first requests
    load the URLconf and open its database and broker connections); with workers running, wait until
    the orders it made are terminal (bounded)."""
    if not ctx.sizes.api_warmup:
        return
    accepted = load(ctx, label, path, port=port, concurrency=16, count=ctx.sizes.api_warmup)["accepted"]
    if path == "/orders":
        wait_terminal(ctx, accepted, f"{label} orders terminal")


def figures(r: dict, s) -> dict:
    phases, out = r["phases"], {}
    ce2e = phases.get("ceiling_chain_e2e", {})
    for suffix, _, note in publish_variants(r):
        e2e = phases.get(f"pipeline_e2e{suffix}")
        if not e2e or not ce2e:
            continue
        for pct, target in (("p50", 50), ("p99", 250)):
            value = e2e[f"{pct}_ms"]
            out[f"e2e_latency_{pct}{suffix}"] = figure(
                value,
                ce2e[f"{pct}_ms"],
                "ms",
                f"<= {target} ms",
                value is not None and value <= target,
                note=f"{s.e2e_rate:g} orders/s, {note}",
                ceiling_name=f"bare chain {pct} at the same rate",
            )
    return out
