"""Phase 5b, as deployed against without Flower and the live page (issue 29): the sustained step at each of
deployed_ab_rates and at the highest rate the sustained phase kept, measured each way back to back on the same
workers, relay, archiver, live server and proxy; the order rotates from one rate to the next.
- deployed: as the Procfile runs it, Flower with its settings (flowerconfig.py: task events off), one browser
  on the live page;
- bare: without Flower and without the browser;
- task_events: as deployed, with Flower's task events on (FLOWER_ENABLE_EVENTS=true), as an operator may
  turn them on for a while: what that costs.
Phase "deployed_ab"; figures deployed_max_rate and deployed_cpu_per_order (each against bare)."""

from bench.figures import figure
from bench.scenarios.sustained import SHARED, measure_step

VARIANTS = ("deployed", "bare", "task_events")


def run(ctx, deployed, port: int) -> dict:
    s = ctx.sizes
    best = (ctx.results["phases"].get("sustained") or {}).get("max_rate_p99_ok") or 0.0
    rates = sorted({float(r) for r in s.deployed_ab_rates} | ({float(best)} if best else set()))
    pairs = []
    for i, rate in enumerate(rates):
        order = VARIANTS[i % 3 :] + VARIANTS[: i % 3]
        pair: dict = {"rate": rate, "order": list(order)}
        for variant in order:
            set_variant(deployed, variant)
            pair[variant] = measure_step(ctx, port, rate, seconds=s.deployed_ab_seconds, label=f"ab-{variant}")
        pairs.append(pair)
    set_variant(deployed, "deployed")
    phase = {
        "pairs": pairs,
        "seconds": s.deployed_ab_seconds,
        "left_out_by_both": list(deployed.left_out),
        "bare_leaves_out": ["flower", "browser on the live page"],
        "task_events_adds": "FLOWER_ENABLE_EVENTS=true",
        "max_rate_p99_ok": {v: max((p["rate"] for p in pairs if p[v]["ok"]), default=0.0) for v in VARIANTS},
    }
    ctx.results["phases"]["deployed_ab"] = phase
    return phase


def set_variant(deployed, variant: str) -> None:
    if variant == "bare":
        deployed.browser_stop()
        deployed.flower_stop()
        return
    task_events = variant == "task_events"
    if deployed.flower is not None and deployed.flower_task_events != task_events:
        deployed.flower_stop()  # and the workers' task events off again
    if deployed.wanted("flower") and deployed.flower is None:
        deployed.flower_start(task_events=task_events)
    if deployed.wanted("live") and deployed.browser is None:
        deployed.browser_start()


def figures(r: dict, s) -> dict:
    """The as-deployed figures, each next to the same system without Flower and the page (its "ceiling")."""
    phase = r["phases"].get("deployed_ab")
    if not phase:
        return {}
    best = phase["max_rate_p99_ok"]
    ref = min(phase["pairs"], key=lambda p: abs(p["rate"] - s.sustained_reference_rate))
    cpu = {v: ref[v]["cpu_ms_per_order_total"] for v in VARIANTS}
    events_note = (
        f"; with Flower's task events on: {best['task_events']:g}/s, {cpu['task_events']} ms"
        if "task_events" in best
        else ""
    )
    only_deployed = {
        kind: ms
        for kind, ms in ref["deployed"]["cpu_ms_per_order"].items()
        if kind not in ref["bare"]["cpu_ms_per_order"] and not kind.endswith(SHARED)
    }
    bare = "without Flower and the live page's browser, same run"
    rates = ", ".join(format(p["rate"], "g") for p in phase["pairs"])
    rate_ratio = best["deployed"] / best["bare"] if best["bare"] else None
    cpu_ratio = cpu["deployed"] / cpu["bare"] if cpu["deployed"] and cpu["bare"] else None
    return {
        "deployed_max_rate": figure(
            best["deployed"],
            best["bare"],
            "orders/s",
            ">= 0.9x",
            None if rate_ratio is None else rate_ratio >= 0.9,
            note=f"highest rate with p99 <= {s.sustained_p99_target_ms:g} ms, each way at {rates}/s, "
            f"{phase['seconds']:g} s each{events_note}",
            ceiling_name=bare,
        ),
        "deployed_cpu_per_order": figure(
            cpu["deployed"],
            cpu["bare"],
            "CPU ms",
            "<= 1.11x (0.9x the orders per CPU second)",
            None if cpu_ratio is None else cpu_ratio <= 1 / 0.9,
            note=f"at {ref['rate']:g}/s, every process kind and the shared servers, not the browser; "
            f"as deployed only: {only_deployed}",
            ceiling_name=bare,
        ),
    }
