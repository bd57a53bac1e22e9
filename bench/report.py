"""Writes a run's results: <stamp>.json, latest.json, latest.md (Markdown tables), latest.png (matplotlib)."""

import json
from pathlib import Path

NAMES = {
    "api_accept_rate_c16": "API accept rate, c=16",
    "api_accept_rate_c64": "API accept rate, c=64",
    "api_accept_rate_c16_same_server": "API accept rate, c=16, vs the same server's bare insert",
    "api_accept_rate_c64_same_server": "API accept rate, c=64, vs the same server's bare insert",
    "api_p99_c16": "API p99, c=16",
    "api_errors_c16": "API errors, c=16",
    "api_errors_c64": "API errors, c=64",
    "pipeline_throughput": "Pipeline drain, latency 0, hot catalog",
    "pipeline_throughput_zipf": "Pipeline drain, latency 0, 1,000 SKUs (Zipf)",
    "enrichment_io_vs_latency0": "Enrichment at 1000 ms vs latency 0",
    "enrichment_io_vs_chain": "Enrichment at 1000 ms vs bare chain",
    "decoupling_p99": "Decoupling: POST p99 with backlog",
    "e2e_latency_p50": "End-to-end p50 (POST → completed)",
    "e2e_latency_p99": "End-to-end p99 (POST → completed)",
    "sustained_max_rate": "Sustained: highest rate with p99 ≤ 250 ms",
    "sustained_p50_at_50": "Sustained: POST → completed p50 at 50/s",
    "sustained_p99_at_50": "Sustained: POST → completed p99 at 50/s",
    "sustained_cpu_per_order_at_50": "Sustained: CPU per completed order at 50/s, all processes",
    "deployed_max_rate": "As deployed: highest rate with p99 ≤ 250 ms",
    "deployed_cpu_per_order": "As deployed: CPU per completed order",
    "cost_worker_cpu_per_1000": "Worker CPU per 1,000 orders",
    "scale_out_1": "Scale-out, 1 enrichment process",
    "scale_out_2": "Scale-out, 2 enrichment processes",
    "scale_out_4": "Scale-out, 4 enrichment processes",
}
AB_NAMES = {"relay_only": "publish in the relay only", "inline": "publish inline"}


def name(key: str) -> str:
    """A figure's label; the A/B publish runs carry their setting's name (`..._relay_only`, `..._inline`)."""
    if key in NAMES:
        return NAMES[key]
    for suffix, label in AB_NAMES.items():
        if key.endswith("_" + suffix) and key[: -len(suffix) - 1] in NAMES:
            return f"{NAMES[key[: -len(suffix) - 1]]}, {label} (A/B)"
    return key


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def sustained_steps(r: dict) -> list[dict]:
    return r.get("phases", {}).get("sustained", {}).get("steps", [])


def markdown(r: dict) -> str:
    m, v, st = r["machine"], r["versions"], r["settings"]
    pub = r.get("publish", {})
    lines = [
        f"# Benchmark {r.get('started_at', '')}{' (smoke: tiny sizes, not a measurement)' if st.get('smoke') else ''}",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gb']} GiB, {m['cpu_model']}; "
        f"load average at start {m['load_avg_at_start']}.  ",
        f"Versions: Python {v['python']}, Django {v['django']}, Celery {v['celery']}, "
        f"kombu {v['kombu']}, RabbitMQ {v['rabbitmq']}, "
        f"PostgreSQL {v['postgresql']}, Redis {v.get('redis_server')}, gunicorn {v.get('gunicorn')}, "
        f"uvicorn {v['uvicorn']}; "
        f"git {v.get('git', '?')}"
        f"{' (+ uncommitted: ' + ', '.join(v['git_dirty_files']) + ')' if v.get('git_dirty_files') else ''}.  ",
        f"Publish (OUTBOX_PUBLISH_INLINE as the settings resolve it): "
        f"default **{pub.get('default', '?')}**, A/B {pub.get('ab', '?')}.  ",
        f"Duration {r.get('duration_s')} s.",
        "",
        "| figure | value | ceiling (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for key, f in r["figures"].items():
        met = "–" if f["met"] is None else ("yes" if f["met"] else "**no**")
        note = f" ({f['note']})" if f.get("note") else ""
        lines.append(
            f"| {name(key)}{note} | {_fmt(f['value'])} {f['unit']} | {_fmt(f['ceiling'])} {f['unit']} "
            f"— {f['ceiling_name']} "
            f"| {_fmt(f['ratio'])} | {f['target']} | {met} |"
        )
    steps = sustained_steps(r)
    if steps:
        sus = r["phases"]["sustained"]
        lines += [
            "",
            f"Sustained, whole Procfile, provider latency 0, open loop, {steps[0].get('seconds', 0):g} s per step, "
            f"{sus.get('catalog')} catalog, publish {sus.get('publish')}; "
            f"latencies in ms, POST → completed from the order's history:",
            "",
            "| offered/s | offered | sent | accepted | completed | failed | errors "
            "| POST p50 | POST p99 | p50 | p99 | max "
            "| CPU ms/order, all | without shared servers | p99 ≤ target, all done |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in steps:
            if s.get("skipped"):
                lines.append(f"| {s['rate']:g} | skipped: {s['skipped']} |" + " |" * 13)
                continue
            lines.append(
                f"| {s['rate']:g} | {s['offered']} | {s['sent']} | {s['accepted']} | {s['completed']} | {s['failed']} "
                f"| {s['errors']} "
                f"| {_fmt(s['post_p50_ms'])} | {_fmt(s['post_p99_ms'])} | {_fmt(s['p50_ms'])} "
                f"| {_fmt(s['p99_ms'])} | {_fmt(s['max_ms'])} "
                f"| {_fmt(s['cpu_ms_per_order_total'])} | {_fmt(s['cpu_ms_per_order_own'])} "
                f"| {'yes' if s['ok'] else 'no'} |"
            )
        measured = [s for s in steps if not s.get("skipped")]
        kinds = sorted({k for s in measured for k in s["cpu_ms_per_order"]}, key=lambda k: (k.endswith("(shared)"), k))
        lines += [
            "",
            "CPU milliseconds per completed order by process kind, "
            "per sustained step (`(shared)`: the machine's servers, "
            "which include anyone else's load):",
            "",
            "| process kind | " + " | ".join(f"{s['rate']:g}/s" for s in measured) + " |",
            "|---|" + "---|" * len(measured),
        ]
        for kind in kinds:
            lines.append(f"| {kind} | " + " | ".join(_fmt(s["cpu_ms_per_order"].get(kind)) for s in measured) + " |")
        lines.append("| **total** | " + " | ".join(_fmt(s["cpu_ms_per_order_total"]) for s in measured) + " |")
    lines += deployed_ab_lines(r)
    cost = r.get("cost", {})
    if cost.get("pipeline_per_1000_orders"):
        zipf = cost.get("pipeline_zipf_per_1000_orders", {})
        lines += [
            "",
            "Cost per 1,000 completed orders (pipeline drains at latency 0, fill + drain; "
            "`(shared)` servers include anyone else's load):",
            "",
            "| process kind | CPU s / 1,000, hot | CPU s / 1,000, Zipf | peak RSS MB |",
            "|---|---|---|---|",
        ]
        for kind, c in cost["pipeline_per_1000_orders"].items():
            lines.append(
                f"| {kind} | {_fmt(c['cpu_s_per_1000'])} | {_fmt(zipf.get(kind, {}).get('cpu_s_per_1000'))} "
                f"| {_fmt(c['peak_rss_mb'])} |"
            )
        for kind, c in cost.get("bare_chain_per_1000_chains", {}).items():
            if kind.startswith("ceiling_"):
                lines.append(
                    f"| {kind} (bare chain, per 1,000 chains) "
                    f"| {_fmt(c['cpu_s_per_1000'])} | | {_fmt(c['peak_rss_mb'])} |"
                )
    lines += [
        "",
        "Load runs (aiohttp, its own process; errors = answers not 2xx + connection errors and timeouts):",
        "",
        "| run | sent | accepted/s | p50 ms | p99 ms | non-2xx | connection errors | generator cores |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, run in r["load_runs"].items():
        lines.append(
            f"| {label} | {run['sent']} | {_fmt(run['accept_rate'])} | {_fmt(run['p50_ms'])} | {_fmt(run['p99_ms'])} "
            f"| {run.get('non_2xx', '–')} | {run.get('connection_errors', '–')} | {_fmt(run['generator_cores'])} |"
        )
    lines += [
        "",
        "Settings: " + json.dumps({k: st[k] for k in st if k not in ("procfile", "sizes")}, default=str),
        "",
        "Procfile as run: " + "; ".join(f"`{k}: {c}`" for k, c in st.get("procfile", {}).items()),
        "",
    ]
    return "\n".join(lines)


def deployed_ab_lines(r: dict) -> list[str]:
    """The as-deployed pairs: each rate both ways, latencies and CPU per order by the kinds that differ."""
    phase = r.get("phases", {}).get("deployed_ab")
    if not phase:
        return []
    lines = [
        "",
        f"As deployed (Flower, a browser on the live page; left out by both: {phase['left_out_by_both'] or 'nothing'})"
        f" against without Flower and the browser, {phase['seconds']:g} s per step, back to back:",
        "",
        "| offered/s | variant | completed/sent | p50 | p99 | POST p99 | CPU ms/order | flower | live | web "
        "| rabbitmq | browser (client) | ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for pair in phase["pairs"]:
        for variant in pair["order"]:
            st, per = pair[variant], pair[variant]["cpu_ms_per_order"]
            rabbit = sum(v for k, v in per.items() if k.startswith("rabbitmq"))
            lines.append(
                f"| {pair['rate']:g} | {variant} | {st['completed']}/{st['sent']} | {_fmt(st['p50_ms'])} "
                f"| {_fmt(st['p99_ms'])} | {_fmt(st['post_p99_ms'])} | {_fmt(st['cpu_ms_per_order_total'])} "
                f"| {_fmt(per.get('flower'))} | {_fmt(per.get('live'))} | {_fmt(per.get('web'))} | {_fmt(rabbit)} "
                f"| {_fmt(per.get('browser (client)'))} | {'yes' if st['ok'] else 'no'} |"
            )
    return lines


TARGET_RATIO = {"api_accept_rate_c16": 0.5, "pipeline_throughput": 0.6, "pipeline_throughput_zipf": 0.6}


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = r["figures"]
    fig, axes = plt.subplots(3, 2, figsize=(15, 13))
    fig.suptitle(
        f"Order pipeline benchmark {r.get('started_at', '')[:19]} — {r['machine']['cores']} cores"
        f"{' (smoke)' if r['settings'].get('smoke') else ''}"
    )

    ax = axes[0][0]
    keys = [
        k
        for k in (
            "api_accept_rate_c16",
            "api_accept_rate_c16_same_server",
            "api_accept_rate_c64",
            "pipeline_throughput",
            "pipeline_throughput_zipf",
            "enrichment_io_vs_latency0",
            "enrichment_io_vs_chain",
        )
        if k in f
    ]
    ratios = [f[k]["ratio"] or 0 for k in keys]
    colors = ["tab:grey" if f[k]["met"] is None else ("tab:green" if f[k]["met"] else "tab:red") for k in keys]
    ax.barh([name(k) for k in keys], ratios, color=colors)
    for i, k in enumerate(keys):
        if k in TARGET_RATIO:
            ax.plot([TARGET_RATIO[k]] * 2, [i - 0.4, i + 0.4], color="black", linewidth=2)
    ax.set_xlabel("ratio to the ceiling measured in the same run (black tick: target)")
    ax.set_title("Throughput vs ceilings (higher is better)")
    ax.invert_yaxis()

    ax = axes[0][1]
    pairs = [
        ("API p99 c=16", "api_p99_c16", "value", "ceiling"),
        ("POST p99 idle", "decoupling_p99", "ceiling", None),
        ("POST p99 backlog", "decoupling_p99", "value", None),
        ("E2E p50", "e2e_latency_p50", "value", "ceiling"),
        ("E2E p99", "e2e_latency_p99", "value", "ceiling"),
    ]
    pairs = [p for p in pairs if p[1] in f]
    xs = range(len(pairs))
    ax.bar([x - 0.2 for x in xs], [f[k][a] or 0 for _, k, a, _ in pairs], width=0.4, label="product")
    ax.bar([x + 0.2 for x in xs], [(f[k][c] or 0) if c else 0 for _, k, _, c in pairs], width=0.4, label="ceiling")
    ax.set_xticks(list(xs), [p[0] for p in pairs], rotation=15)
    ax.set_ylabel("ms")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_title("Latencies (lower is better)")
    for target, style in ((50, ":"), (250, "--")):
        ax.axhline(target, color="grey", linestyle=style, linewidth=1)
    ax.legend()

    ax = axes[1][0]
    steps = [s for s in sustained_steps(r) if not s.get("skipped")]
    if steps:
        rates = [s["rate"] for s in steps]
        for key, label, style in (
            ("p50_ms", "POST → completed p50", "o-"),
            ("p99_ms", "POST → completed p99", "s-"),
            ("post_p99_ms", "POST p99", "^:"),
        ):
            ax.plot(rates, [s[key] or 0 for s in steps], style, label=label)
        ax.axhline(50, color="grey", linestyle=":", linewidth=1, label="50 ms")
        ax.axhline(250, color="grey", linestyle="--", linewidth=1, label="250 ms")
        ax.axvline(100, color="tab:green", linestyle=":", linewidth=1, label="target rate 100/s")
        ax.set_yscale("log")
        ax.set_xticks(rates)
    ax.set_xlabel("offered orders/s (open loop)")
    ax.set_ylabel("ms")
    ax.set_title("Sustained: latency vs offered rate")
    ax.legend(fontsize=8)

    ax = axes[1][1]
    if steps:
        kinds = sorted({k for s in steps for k in s["cpu_ms_per_order"]}, key=lambda k: (k.endswith("(shared)"), k))
        bottom = [0.0] * len(steps)
        labels = [f"{s['rate']:g}/s" for s in steps]
        for kind in kinds:
            values = [s["cpu_ms_per_order"].get(kind, 0) for s in steps]
            ax.bar(labels, values, bottom=bottom, label=kind)
            bottom = [b + v for b, v in zip(bottom, values, strict=False)]
        ax.axhline(15, color="black", linestyle="--", linewidth=1, label="target 15 ms")
        ax.legend(fontsize=7)
    ax.set_ylabel("CPU ms per completed order")
    ax.set_title("Sustained: CPU per order by process kind")

    ax = axes[2][0]
    scale = sorted((int(k.rsplit("_", 1)[1]), v["value"] or 0) for k, v in f.items() if k.startswith("scale_out_"))
    if scale:
        xs_, ys = zip(*scale, strict=False)
        ax.plot(xs_, ys, marker="o", label="measured")
        ax.plot(xs_, [ys[0] * x / xs_[0] for x in xs_], linestyle="--", color="grey", label="linear")
        if "pipeline_throughput" in f:
            ax.axhline(
                f["pipeline_throughput"]["value"] or 0, color="tab:green", linestyle=":", label="pipeline at latency 0"
            )
            ax.axhline(f["pipeline_throughput"]["ceiling"] or 0, color="tab:red", linestyle=":", label="bare chain")
        ax.set_xticks(list(xs_))
    ax.set_xlabel("enrichment worker processes (latency 1000 ms)")
    ax.set_ylabel("completed orders/s")
    ax.set_title("Scale-out")
    ax.legend()

    ax = axes[2][1]
    cost = r.get("cost", {}).get("pipeline_per_1000_orders", {})
    kinds = list(cost)
    ax.barh(kinds, [cost[k]["cpu_s_per_1000"] for k in kinds], color="tab:blue")
    ax.set_xlabel("CPU seconds per 1,000 completed orders")
    ax.set_title("Cost by process kind (hot-catalog drain)")
    ax.invert_yaxis()

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(r: dict, out: Path, stamp: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(r, indent=2, default=str)
    paths = [out / f"{stamp}.json", out / "latest.json", out / "latest.md", out / "latest.png"]
    paths[0].write_text(text)
    paths[1].write_text(text)
    paths[2].write_text(markdown(r))
    plot(r, paths[3])
    return paths


def compare(before: dict, after: dict) -> str:
    """Markdown table of two runs' figures side by side (value and ratio to the same run's ceiling)."""

    def label(r: dict) -> str:
        return f"{r.get('started_at', '')[:16].replace('T', ' ')} (git {r['versions'].get('git', '?')})"

    lines = [
        f"| figure | before: {label(before)} | ratio | after: {label(after)} | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for key, f in after["figures"].items():
        b = before["figures"].get(key, {})
        lines.append(
            f"| {name(key)} | {_fmt(b.get('value'))} {b.get('unit', '')} | {_fmt(b.get('ratio'))} "
            f"| {_fmt(f['value'])} {f['unit']} | {_fmt(f['ratio'])} | {f['target']} |"
        )
    costs = [
        (k, before["cost"].get("pipeline_per_1000_orders", {}).get(k, {}), c)
        for k, c in after["cost"].get("pipeline_per_1000_orders", {}).items()
    ]
    lines += ["", "| CPU s per 1,000 orders (latency-0 drain) | before | after |", "|---|---|---|"]
    lines += [f"| {k} | {_fmt(b.get('cpu_s_per_1000'))} | {_fmt(a['cpu_s_per_1000'])} |" for k, b, a in costs]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m bench.report BEFORE.json AFTER.json
    import sys

    print(compare(json.loads(Path(sys.argv[1]).read_text()), json.loads(Path(sys.argv[2]).read_text())), end="")
