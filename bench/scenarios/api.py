"""Phase 1, the API accept rate and p99 with the pipeline idle (no workers; queues purged between runs):
closed loop at c=16 and c=64 against the product as deployed, next to the same bare one-row insert on the
same server, the bare insert served the fastest way this stack allows (the ceiling: on gunicorn and on granian,
whichever serves it faster at that concurrency), and the product with the other publish setting (the A/B).
Figures api_accept_rate_*, api_p99_c16, api_errors_*."""

from bench.figures import figure, met_ratio, publish_variants
from bench.measure import load
from bench.servers import FAST_CEILING_SERVERS

CONCURRENCIES = (16, 64)
FAST_CEILING_NAMES = {
    "gunicorn": "bare DRF insert, gunicorn sync x(2 x cores + 1), no middleware",
    "granian": "bare DRF insert, granian WSGI x(2 x cores + 1), no middleware",
}


def fast_label(server: str) -> str:
    """The load runs' label prefix of the fast ceiling on `server` (gunicorn keeps the historical name)."""
    return "api-ceiling-fast" if server == "gunicorn" else f"api-ceiling-fast-{server}"


def fastest_ceiling(runs: dict, c: int) -> tuple[str, dict] | tuple[None, None]:
    """The fast ceiling's server and load run at concurrency `c`: the highest accept rate of those measured."""
    measured = [(s, runs[f"{fast_label(s)}-c{c}"]) for s in FAST_CEILING_SERVERS if f"{fast_label(s)}-c{c}" in runs]
    if not measured:
        return None, None
    return max(measured, key=lambda sr: sr[1]["accept_rate"] or 0)


def run(ctx, port: int) -> None:
    """`port`: the product's web server (running, with its relay)."""
    fast = {server: ctx.servers.start_fast_ceiling(server) for server in FAST_CEILING_SERVERS}
    ctx.servers.keep(*(proc for proc, _ in fast.values()))
    fast_ports = {server: p for server, (_, p) in fast.items()}
    ab_port = ctx.ab.start()
    for server, (proc, fast_port) in fast.items():
        ctx.log(f"fast API ceiling ({server}) on 127.0.0.1:{fast_port}: {' '.join(proc.popen.args)}")
    ctx.log(f"A/B web (publish {ctx.ab.label}) on {ab_port}")
    warm_up(ctx, port, fast_ports, ab_port)
    for c in CONCURRENCIES:
        measure(ctx, c, port, fast_ports, ab_port)
    ctx.servers.stop([proc for proc, _ in fast.values()])
    ctx.ab.stop()  # back later for the end-to-end A/B; meanwhile its relay would share the default's outbox work


def warm_up(ctx, port: int, fast_ports: dict, ab_port: int) -> None:
    """`api_warmup` requests to each endpoint of each server (their first requests load the URLconf and
    open the connections)."""
    n = ctx.sizes.api_warmup
    if not n:
        return
    for server, fast_port in fast_ports.items():
        load(ctx, f"warmup-{fast_label(server)[4:]}", "/bench/ceiling", port=fast_port, concurrency=16, count=n)
    load(ctx, "warmup-ceiling", "/bench/ceiling", port=port, concurrency=16, count=n)
    load(ctx, "warmup-orders", "/orders", port=port, concurrency=16, count=n)
    load(ctx, f"warmup-orders-{ctx.ab.slug}", "/orders", port=ab_port, concurrency=16, count=n)


def measure(ctx, c: int, port: int, fast_ports: dict, ab_port: int) -> None:
    """The closed-loop runs at concurrency `c`, each from empty tables and queues."""
    seconds = ctx.sizes.api_seconds
    for label, path, target in (
        *((f"{fast_label(server)}-c{c}", "/bench/ceiling", fast_port) for server, fast_port in fast_ports.items()),
        (f"api-ceiling-c{c}", "/bench/ceiling", port),
        (f"api-orders-c{c}", "/orders", port),
        (f"api-orders-{ctx.ab.slug}-c{c}", "/orders", ab_port),
    ):
        ctx.reset()
        load(ctx, label, path, port=target, concurrency=c, seconds=seconds)


def figures(r: dict) -> dict:
    runs, out = r["load_runs"], {}
    for suffix, label, note in publish_variants(r):
        for c in CONCURRENCIES:
            server, fast = fastest_ceiling(runs, c)
            p, same = runs.get(f"api-orders{label}-c{c}"), runs.get(f"api-ceiling-c{c}")
            if p and fast and same:
                out.update(concurrency_figures(c, suffix, note, p, fast, same, FAST_CEILING_NAMES[str(server)]))
    return out


def concurrency_figures(c: int, suffix: str, note: str, p: dict, fast: dict, same: dict, fast_name: str) -> dict:
    """The figures of the product's run `p` at concurrency `c`, next to the fast ceiling's (`fast_name`, the faster
    server's run) and the same server's."""
    out = {}
    target = ">= 0.5x" if c == 16 else "reported"
    out[f"api_accept_rate_c{c}{suffix}"] = figure(
        p["accept_rate"],
        fast["accept_rate"],
        "req/s",
        target,
        met_ratio(p["accept_rate"], fast["accept_rate"], at_least=0.5) if c == 16 else None,
        note=note,
        ceiling_name=fast_name,
    )
    out[f"api_accept_rate_c{c}_same_server{suffix}"] = figure(
        p["accept_rate"],
        same["accept_rate"],
        "req/s",
        "reported",
        None,
        note=note,
        ceiling_name="bare DRF insert, same server, middleware and settings",
    )
    if c == 16:
        out[f"api_p99_c16{suffix}"] = figure(
            p["p99_ms"],
            fast["p99_ms"],
            "ms",
            "<= 50 ms",
            p["p99_ms"] is not None and p["p99_ms"] <= 50,
            note=note,
            ceiling_name=f"{fast_name}, p99",
        )
    out[f"api_errors_c{c}{suffix}"] = figure(
        p["errors_total"],
        fast["errors_total"],
        "errors",
        "0" if c == 64 else "reported",
        p["errors_total"] == 0 if c == 64 else None,
        note=f"{note}; non-2xx {p['non_2xx']}, connection errors {p['connection_errors']}, of {p['sent']}",
        ceiling_name="fast ceiling's errors",
    )
    return out
