"""Phase 5, sustained: the whole system as the Procfile defines it and as deployed (web, every worker, relay,
archiver, and bench/deployed.py's Flower, live server with a browser on its page, and proxy, unless --leave-out),
provider latency 0, offered a fixed rate per step (open loop, `sustained_seconds` each, `sustained_rates`);
per step the POST -> completed latencies and the CPU per completed order of every process kind, the
machine's PostgreSQL/RabbitMQ/Redis included. Phase "sustained"; figures sustained_max_rate (highest rate
kept up with within the p99 target) and, at the step nearest 50/s, sustained_p50/p99/cpu_per_order_at_50."""

import time

from bench.figures import figure, publish_variants
from bench.measure import open_loop

SHARED = " (shared)"  # suffix of the machine's servers' kinds (procs.infra_pids)
CLIENT = " (client)"  # suffix of the load side's kinds (bench/deployed.py)


def run_with_archiver(ctx, port: int, then=None) -> dict:
    """The phase with the Procfile's archiver running too (the web, relay and workers already are); `then`,
    if given, runs next with the archiver still there."""
    archiver = ctx.servers.start_loop("archiver")
    ctx.servers.keep(archiver)
    phase = run(ctx, port)
    if then:
        then()
    ctx.servers.stop([archiver])
    return phase


def run(ctx, port: int) -> dict:
    """Each step starts from empty tables and queues, after the one before it is terminal; a step whose
    p99 is above sustained_skip_p99_ms skips the higher rates."""
    s = ctx.sizes
    steps, skip = [], None
    if s.sustained_warmup_seconds and s.sustained_rates:
        ctx.reset()
        open_loop(
            ctx,
            "sustained-warmup",
            port,
            float(s.sustained_rates[0]),
            s.sustained_warmup_seconds,
            catalog=s.sustained_catalog,
        )
    for rate in s.sustained_rates:
        rate = float(rate)
        if skip:
            steps.append({"rate": rate, "skipped": skip})
            ctx.log(f"sustained {rate:g}/s skipped: {skip}")
            continue
        step = measure_step(ctx, port, rate)
        steps.append(step)
        if s.sustained_skip_p99_ms and (step["p99_ms"] is None or step["p99_ms"] > s.sustained_skip_p99_ms):
            skip = f"p99 {step['p99_ms']} ms at {rate:g}/s > {s.sustained_skip_p99_ms:g} ms (sustained_skip_p99_ms)"
    met = [st["rate"] for st in steps if st.get("ok")]
    phase = {
        "steps": steps,
        "catalog": s.sustained_catalog,
        "p99_target_ms": s.sustained_p99_target_ms,
        "max_rate_p99_ok": max(met) if met else 0.0,
        "publish": ctx.ab.of(port),
    }
    ctx.results["phases"]["sustained"] = phase
    return phase


def measure_step(ctx, port: int, rate: float, *, seconds: float | None = None, label: str = "sustained") -> dict:
    """One step: `rate` orders/s for `seconds` (default sustained_seconds), every process kind sampled."""
    s = ctx.sizes
    seconds = seconds or s.sustained_seconds
    ctx.reset()
    ctx.sampler.begin()
    started = time.monotonic()
    summary = open_loop(ctx, f"{label}-{rate:g}", port, rate, seconds, catalog=s.sustained_catalog)
    cost = ctx.sampler.end()
    post = summary["post"]
    completed = summary["measured"]
    step = {
        "rate": rate,
        "seconds": seconds,
        "offered": round(rate * seconds),
        "sent": post["sent"],
        "accepted": post["accepted"],
        "completed": completed,
        "failed": summary["failed"],
        "errors": post["errors_total"],
        "non_2xx": post["non_2xx"],
        "connection_errors": post["connection_errors"],
        "accept_rate": post["accept_rate"],
        "post_p50_ms": post["p50_ms"],
        "post_p99_ms": post["p99_ms"],
        "p50_ms": summary["p50_ms"],
        "p90_ms": summary["p90_ms"],
        "p99_ms": summary["p99_ms"],
        "max_ms": summary["max_ms"],
        "end": summary["end"],
        "wall_s": round(time.monotonic() - started, 2),
        "generator_cores": post["generator_cores"],
        "cost": cost,
        **cpu_per_order(cost, completed),
    }
    step["ok"] = step_ok(step, s.sustained_p99_target_ms)
    ctx.log(
        f"{label} {rate:g}/s: {completed}/{step['sent']} completed, "
        f"p50 {step['p50_ms']} ms, p99 {step['p99_ms']} ms, "
        f"POST p99 {step['post_p99_ms']} ms, {step['errors']} errors, CPU {step['cpu_ms_per_order_total']} ms/order"
    )
    return step


def cpu_per_order(cost: dict, completed: int) -> dict:
    """CPU milliseconds per completed order, per process kind, in all, and without the shared servers. The
    clients' kinds (the browser on the live page) are listed but are no part of the system's totals."""
    if not completed:
        return {"cpu_ms_per_order": {}, "cpu_ms_per_order_total": None, "cpu_ms_per_order_own": None}
    per = {kind: round(v["cpu_s"] / completed * 1000, 3) for kind, v in cost.items()}
    system = {k: v for k, v in per.items() if not k.endswith(CLIENT)}
    return {
        "cpu_ms_per_order": per,
        "cpu_ms_per_order_total": round(sum(system.values()), 3),
        "cpu_ms_per_order_own": round(sum(v for k, v in system.items() if not k.endswith(SHARED)), 3),
    }


def step_ok(step: dict, p99_target_ms: float) -> bool:
    """A sustained step is kept up with: every order sent was accepted (no error) and completed, none
    failed, everything ended in time, and POST -> completed p99 is within the target."""
    return (
        step.get("end") == "done"
        and not step.get("errors")
        and not step.get("failed")
        and step.get("completed") == step.get("sent") == step.get("accepted")
        and step.get("p99_ms") is not None
        and step["p99_ms"] <= p99_target_ms
    )


def reference_step(phase: dict, rate: float) -> dict | None:
    """The measured sustained step at `rate`, or the nearest one (smoke runs offer other rates)."""
    steps = [st for st in phase.get("steps", []) if not st.get("skipped")]
    return min(steps, key=lambda st: (abs(st["rate"] - rate), st["rate"])) if steps else None


def figures(r: dict, s) -> dict:
    phases = r["phases"]
    out: dict = {}
    sus = phases.get("sustained")
    if not sus:
        return out
    (_, _, default_note), _ = publish_variants(r)
    chain_phase = phases.get("ceiling_chain_drain")
    chain = chain_phase["rate"] if chain_phase else None
    best = sus["max_rate_p99_ok"]
    out["sustained_max_rate"] = figure(
        best,
        chain,
        "orders/s",
        ">= 100 orders/s",
        best >= 100,
        note=f"highest offered rate with POST->completed p99 <= {sus['p99_target_ms']:g} ms, every order "
        f"completed, no error; steps {', '.join(format(st['rate'], 'g') for st in sus['steps'])}; {default_note}",
        ceiling_name="bare chain drain rate",
    )
    ref = reference_step(sus, s.sustained_reference_rate)
    if ref:
        chain_cpu = cpu_per_order(chain_phase["cost"], chain_phase["completed"]) if chain_phase else {}
        out.update(reference_figures(ref, phases.get("ceiling_chain_e2e", {}), chain_cpu, s))
    return out


def reference_figures(ref: dict, ce2e: dict, chain_cpu: dict, s) -> dict:
    """Latency and CPU per order at the reference step, next to the bare chain's."""
    at = f"at {ref['rate']:g} orders/s offered"
    total = ref["cpu_ms_per_order_total"]
    return {
        "sustained_p50_at_50": figure(
            ref["p50_ms"],
            ce2e.get("p50_ms"),
            "ms",
            "<= 50 ms",
            ref["p50_ms"] is not None and ref["p50_ms"] <= 50,
            note=f"POST->completed {at}; {ref['completed']}/{ref['sent']} completed",
            ceiling_name=f"bare chain p50 at {s.e2e_rate:g}/s",
        ),
        "sustained_p99_at_50": figure(
            ref["p99_ms"],
            ce2e.get("p99_ms"),
            "ms",
            "reported",
            None,
            note=f"POST->completed {at}",
            ceiling_name=f"bare chain p99 at {s.e2e_rate:g}/s",
        ),
        "sustained_cpu_per_order_at_50": figure(
            total,
            chain_cpu.get("cpu_ms_per_order_total"),
            "CPU ms",
            "<= 15 ms",
            total is not None and total <= 15,
            note=f"every process kind {at}, PostgreSQL/RabbitMQ/Redis (shared) included; "
            f"without them {ref['cpu_ms_per_order_own']} ms",
            ceiling_name="bare chain, CPU per chain (workers + servers)",
        ),
    }
