"""Writes a run's results: <stamp>.json, latest.json, latest.md (Markdown tables), latest.png (matplotlib)."""
import json
from pathlib import Path

NAMES = {
    "api_accept_rate_c16": "API accept rate, c=16",
    "api_accept_rate_c64": "API accept rate, c=64",
    "api_p99_c16": "API p99, c=16",
    "api_accept_rate_c16_relay_only": "API accept rate, c=16, publish in the relay only",
    "api_accept_rate_c64_relay_only": "API accept rate, c=64, publish in the relay only",
    "api_p99_c16_relay_only": "API p99, c=16, publish in the relay only",
    "e2e_latency_p50_relay_only": "End-to-end p50, publish in the relay only",
    "e2e_latency_p99_relay_only": "End-to-end p99, publish in the relay only",
    "pipeline_throughput": "Pipeline throughput, latency 0",
    "enrichment_io_vs_latency0": "Enrichment at 1000 ms vs latency 0",
    "enrichment_io_vs_chain": "Enrichment at 1000 ms vs bare chain",
    "decoupling_p99": "Decoupling: POST p99 with backlog",
    "e2e_latency_p50": "End-to-end p50 (POST → completed)",
    "e2e_latency_p99": "End-to-end p99 (POST → completed)",
    "cost_worker_cpu_per_1000": "Worker CPU per 1,000 orders",
    "scale_out_1": "Scale-out, 1 enrichment process",
    "scale_out_2": "Scale-out, 2 enrichment processes",
    "scale_out_4": "Scale-out, 4 enrichment processes",
}


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def markdown(r: dict) -> str:
    m, v, st = r["machine"], r["versions"], r["settings"]
    lines = [
        f"# Benchmark {r.get('started_at', '')}{' (smoke: tiny sizes, not a measurement)' if st.get('smoke') else ''}",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gb']} GiB, {m['cpu_model']}; load average at start {m['load_avg_at_start']}.  ",
        f"Versions: Python {v['python']}, Django {v['django']}, Celery {v['celery']}, kombu {v['kombu']}, RabbitMQ {v['rabbitmq']}, "
        f"PostgreSQL {v['postgresql']}, Redis {v.get('redis_server')}, uvicorn {v['uvicorn']}; git {v.get('git', '?')}"
        f"{' (+ uncommitted: ' + ', '.join(v['git_dirty_files']) + ')' if v.get('git_dirty_files') else ''}.  ",
        f"Duration {r.get('duration_s')} s.",
        "",
        "| figure | value | ceiling (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for key, f in r["figures"].items():
        met = "–" if f["met"] is None else ("yes" if f["met"] else "**no**")
        note = f" ({f['note']})" if f.get("note") else ""
        lines.append(
            f"| {NAMES.get(key, key)}{note} | {_fmt(f['value'])} {f['unit']} | {_fmt(f['ceiling'])} {f['unit']} — {f['ceiling_name']} "
            f"| {_fmt(f['ratio'])} | {f['target']} | {met} |"
        )
    lines += ["", "Cost per 1,000 completed orders (pipeline drain at latency 0; `(shared)` servers include anyone else's load):", "",
              "| process kind | CPU s / 1,000 | peak RSS MB |", "|---|---|---|"]
    for kind, c in r["cost"].get("pipeline_per_1000_orders", {}).items():
        lines.append(f"| {kind} | {_fmt(c['cpu_s_per_1000'])} | {_fmt(c['peak_rss_mb'])} |")
    for kind, c in r["cost"].get("bare_chain_per_1000_chains", {}).items():
        if kind.startswith("ceiling_"):
            lines.append(f"| {kind} (bare chain, per 1,000 chains) | {_fmt(c['cpu_s_per_1000'])} | {_fmt(c['peak_rss_mb'])} |")
    lines += ["", "Load generator (aiohttp, its own process):", "", "| run | requests/s | p50 ms | p99 ms | generator cores |", "|---|---|---|---|---|"]
    for label, run in r["load_runs"].items():
        lines.append(f"| {label} | {_fmt(run['accept_rate'])} | {_fmt(run['p50_ms'])} | {_fmt(run['p99_ms'])} | {_fmt(run['generator_cores'])} |")
    lines += ["", "Settings: " + json.dumps({k: st[k] for k in st if k not in ("procfile", "sizes")}, default=str), "",
              "Procfile as run: " + "; ".join(f"`{k}: {c}`" for k, c in st.get("procfile", {}).items()), ""]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = r["figures"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    fig.suptitle(f"Order pipeline benchmark {r.get('started_at', '')[:19]} — {r['machine']['cores']} cores"
                 f"{' (smoke)' if r['settings'].get('smoke') else ''}")

    ax = axes[0][0]
    keys = [k for k in ("api_accept_rate_c16", "api_accept_rate_c64", "pipeline_throughput", "enrichment_io_vs_latency0", "enrichment_io_vs_chain")]
    ratios = [f[k]["ratio"] or 0 for k in keys]
    ax.barh([NAMES[k] for k in keys], ratios, color=["tab:green" if f[k]["met"] else "tab:red" for k in keys])
    ax.axvline(0.8, color="black", linestyle="--", label="target 0.8x")
    ax.set_xlabel("ratio to the ceiling measured in the same run")
    ax.set_title("Throughput vs ceilings (higher is better)")
    ax.legend(loc="lower right")
    ax.invert_yaxis()

    ax = axes[0][1]
    labels = ["API p99 c=16", "POST p99 idle", "POST p99 backlog", "E2E p50", "E2E p99"]
    ours = [f["api_p99_c16"]["value"], f["decoupling_p99"]["ceiling"], f["decoupling_p99"]["value"], f["e2e_latency_p50"]["value"], f["e2e_latency_p99"]["value"]]
    ceil = [f["api_p99_c16"]["ceiling"], None, None, f["e2e_latency_p50"]["ceiling"], f["e2e_latency_p99"]["ceiling"]]
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], [v or 0 for v in ours], width=0.4, label="pipeline")
    ax.bar([x + 0.2 for x in xs], [v or 0 for v in ceil], width=0.4, label="ceiling")
    ax.set_xticks(list(xs), labels, rotation=15)
    ax.set_ylabel("ms")
    ax.set_title("Latencies (lower is better)")
    for target, style in ((50, ":"), (250, "--")):
        ax.axhline(target, color="grey", linestyle=style, linewidth=1)
    ax.legend()

    ax = axes[1][0]
    scale = sorted((int(k.rsplit("_", 1)[1]), v["value"] or 0) for k, v in f.items() if k.startswith("scale_out_"))
    if scale:
        xs_, ys = zip(*scale)
        ax.plot(xs_, ys, marker="o", label="measured")
        ax.plot(xs_, [ys[0] * x / xs_[0] for x in xs_], linestyle="--", color="grey", label="linear")
        ax.axhline(f["pipeline_throughput"]["value"] or 0, color="tab:green", linestyle=":", label="pipeline at latency 0")
        ax.axhline(f["pipeline_throughput"]["ceiling"] or 0, color="tab:red", linestyle=":", label="bare chain")
        ax.set_xticks(list(xs_))
    ax.set_xlabel("enrichment worker processes (latency 1000 ms)")
    ax.set_ylabel("completed orders/s")
    ax.set_title("Scale-out")
    ax.legend()

    ax = axes[1][1]
    cost = r["cost"].get("pipeline_per_1000_orders", {})
    kinds = list(cost)
    ax.barh(kinds, [cost[k]["cpu_s_per_1000"] for k in kinds], color="tab:blue")
    ax.set_xlabel("CPU seconds per 1,000 completed orders")
    ax.set_title("Cost by process kind (pipeline drain)")
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
            f"| {NAMES.get(key, key)} | {_fmt(b.get('value'))} {b.get('unit', '')} | {_fmt(b.get('ratio'))} "
            f"| {_fmt(f['value'])} {f['unit']} | {_fmt(f['ratio'])} | {f['target']} |"
        )
    costs = [(k, before["cost"].get("pipeline_per_1000_orders", {}).get(k, {}), c) for k, c in after["cost"].get("pipeline_per_1000_orders", {}).items()]
    lines += ["", "| CPU s per 1,000 orders (latency-0 drain) | before | after |", "|---|---|---|"]
    lines += [f"| {k} | {_fmt(b.get('cpu_s_per_1000'))} | {_fmt(a['cpu_s_per_1000'])} |" for k, b, a in costs]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m bench.report BEFORE.json AFTER.json
    import sys

    print(compare(json.loads(Path(sys.argv[1]).read_text()), json.loads(Path(sys.argv[2]).read_text())), end="")
