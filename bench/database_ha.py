"""What the HA database costs (issue 30): the bench's drain (the bare chain's and the pipeline's, as
`bench.run --only pipeline`) and a short sustained step (`--only sustained`'s phase with `--size
sustained_rates=...`), in one run of the bench per variant, variants alternated (single, HA, single, HA, ...):

    single      the machine's PostgreSQL 127.0.0.1:5432, no pooler, prepared statements on (today's default)
    ha-pooled   the local Patroni pair `odb` (devtools/db_ha.py, synchronous replication) through PgBouncer in
                transaction mode: DATABASE_URL = the pooled URL, DATABASE_DIRECT_URL = the direct one (the relay's
                LISTEN), DB_TRANSACTION_POOLER=true (no named prepared statements, no server-side cursors)
    ha-direct   the same pair through HAProxy only (the direct URL for everything), prepared statements on:
                ha-direct - single = synchronous replication (+ the HAProxy hop);
                ha-pooled - ha-direct = the pooler + no prepared statements
    ha-pooled-local   ha-pooled with `ALTER DATABASE <db> SET synchronous_commit = local` (commits do not wait
                for the standby; reset by every other variant): ha-pooled - this = the synchronous standby's wait

    python -m bench.database_ha [--variants single,ha-pooled,ha-direct] [--pairs 2] [--orders 2000]
                                [--rates 50,100] [--seconds 20]

Each variant runs in a child process (`--one VARIANT`: the bench's own code in-process, so that the CPU sampler also
tracks the database side): CPU per order of every process kind, the database side split by process: the system
cluster's postmaster tree, each odb PostgreSQL's postmaster tree (pg1, pg2), Patroni, PgBouncer, HAProxy, etcd.
A variant's "database side" is the servers it uses (single: the system cluster; HA: all of odb); the other side's
CPU (idle, or someone else's load) is recorded but not counted. The driver's own connection and CREATE DATABASE go to
BENCH_DATABASE_URL (bench/env.py): 127.0.0.1:5432 or odb's direct URL. Writes bench/results/database-ha-<stamp>.json
and prints a table; bench/README.md keeps the history. Leaves `odb` running (`make db-ha` started it; others use it).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "orders_bench_dbha"
REDIS_DB = 14
ODB = os.environ.get("DB_HA_NAME", "odb")
ODB_BASE = int(os.environ.get("DB_HA_PORT", "5440"))
SYSTEM = "postgres://postgres@127.0.0.1:5432"
DIRECT = f"postgres://postgres@127.0.0.1:{ODB_BASE}"
POOLED = f"postgres://postgres@127.0.0.1:{ODB_BASE + 10}"
SYSTEM_KIND = "postgres system (shared)"


def variants(name: str = NAME) -> dict[str, dict]:
    """server: BENCH_DATABASE_URL (driver, CREATE DATABASE); env: every process's; sync_local: ALTER DATABASE."""
    pooled_env = {
        "DATABASE_URL": f"{POOLED}/{name}",
        "DATABASE_DIRECT_URL": f"{DIRECT}/{name}",
        "DB_TRANSACTION_POOLER": "true",
    }
    return {
        "single": {"server": SYSTEM, "env": {}, "sync_local": False},
        "ha-pooled": {"server": DIRECT, "env": pooled_env, "sync_local": False},
        "ha-direct": {"server": DIRECT, "env": {"DATABASE_URL": f"{DIRECT}/{name}"}, "sync_local": False},
        "ha-pooled-local": {"server": DIRECT, "env": pooled_env, "sync_local": True},
    }


# --------------------------------------------------------------------------- the database side's processes
def classify(name: str, ppid: int, cmdline: str, odb: str = ODB) -> str | None:
    """The database-side kind of one process, or None: the system cluster's postmaster, an odb member's postmaster
    (its children are sampled with it as a tree), odb's Patroni, PgBouncer, HAProxy and etcd (each names the
    instance's state dir var/db-ha-<odb>/ on its command line)."""
    state = f"/db-ha-{odb}/"
    if name == "postgres" and ppid == 1:
        if state in cmdline:
            for member in ("pg1", "pg2"):
                if f"{state}{member}/" in cmdline:
                    return f"{odb} postgres {member}"
            return None
        return SYSTEM_KIND if "/var/lib/postgresql/" in cmdline else None
    if state not in cmdline:
        return None
    if "patroni" in cmdline:
        return f"{odb} patroni"
    if name in ("pgbouncer", "haproxy", "etcd"):
        return f"{odb} {name}"
    return None


def database_side_pids(odb: str = ODB) -> dict[str, list[int]]:
    import psutil

    found: dict[str, list[int]] = {}
    for p in psutil.process_iter(["name", "ppid", "cmdline"]):
        kind = classify(p.info["name"] or "", p.info["ppid"] or 0, " ".join(p.info["cmdline"] or []), odb)
        if kind:
            found.setdefault(kind, []).append(p.pid)
    return found


def is_database_kind(kind: str, odb: str = ODB) -> bool:
    return kind == SYSTEM_KIND or kind.startswith(f"{odb} ")


def own_database_kinds(variant: str, kinds, odb: str = ODB) -> list[str]:
    """The database-side kinds this variant uses: the system cluster, or everything of odb."""
    if variant == "single":
        return [k for k in kinds if k == SYSTEM_KIND]
    return [k for k in kinds if k.startswith(f"{odb} ")]


def cpu_ms_per_order(cost: dict, completed: int, variant: str, odb: str = ODB) -> dict:
    """CPU ms per completed order per kind; `total` = every kind but the other database side; `database` = the
    variant's database side; `app` = the project's processes (not the database, RabbitMQ or Redis)."""
    if not completed:
        return {"per_kind": {}, "total": None, "database": None, "app": None, "other_database_side": None}
    per = {kind: round(1000 * v["cpu_s"] / completed, 3) for kind, v in cost.items()}
    own_db = own_database_kinds(variant, per, odb)
    other_db = [k for k in per if is_database_kind(k, odb) and k not in own_db]
    return {
        "per_kind": per,
        "total": round(sum(v for k, v in per.items() if k not in other_db), 2),
        "database": round(sum(per[k] for k in own_db), 2),
        "app": round(sum(v for k, v in per.items() if not is_database_kind(k, odb) and "(shared)" not in k), 2),
        "other_database_side": round(sum(per[k] for k in other_db), 2),
    }


# --------------------------------------------------------------------------- one variant, in this process
def set_sync_commit(local: bool, name: str = NAME) -> None:
    import psycopg

    with psycopg.connect(f"{DIRECT}/postgres", autocommit=True, connect_timeout=5) as conn:
        if local:
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = local')
        else:
            conn.execute(f'ALTER DATABASE "{name}" RESET synchronous_commit')


def odb_state() -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "devtools.db_ha", "status"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    try:
        status = json.loads(result.stdout)
    except ValueError:
        return {"error": (result.stdout + result.stderr)[-300:]}
    return {"leader": status.get("leader"), "members": {m["name"]: m.get("role") for m in status.get("members", [])}}


def one(variant: str, orders: int, rates: str, seconds: float) -> dict:
    from bench import procs
    from bench import run as bench_run
    from bench.context import Bench
    from bench.env import SETUP_WAIT, ensure_database, prepare
    from bench.scenarios import sustained

    spec = variants()[variant]
    os.environ["BENCH_DATABASE_URL"] = spec["server"]
    argv = ["--only", "pipeline", "--name", NAME, "--redis-db", str(REDIS_DB)]
    argv += ["--size", f"drain_orders={orders}", "--size", f"sustained_rates={rates}"]
    argv += ["--size", f"sustained_seconds={seconds}", "--size", "sustained_skip_p99_ms=0"]
    for key, value in spec["env"].items():
        argv += ["--env", f"{key}={value}"]
    args, sizes = bench_run.parse_args(argv)
    ctx = Bench(args, sizes, bench_run.STAGE_QUEUES)

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        ctx.results["started_at"] = datetime.now(UTC).isoformat()
        from bench import record

        ctx.results["machine"] = record.machine()
        if spec["server"] == DIRECT:  # the database must exist before its setting; the pair's, not the system's
            ensure_database(NAME, time.monotonic() + SETUP_WAIT, ctx.log)
            set_sync_commit(spec["sync_local"])
        prepare(ctx)
        ctx.results["versions"] = record.versions(ctx)
        ctx.results["settings"] = record.settings_snapshot(ctx)
        ctx.ab.setup()
        # bench.run.start() tracks every ppid-1 postmaster as one "postgres (shared)": split it by cluster
        infra = procs.infra_pids()
        infra.pop("postgres (shared)", None)
        for kind, pids in {**infra, **database_side_pids()}.items():
            for pid in pids:
                ctx.sampler.track(kind, pid)
        ctx.results["database_side_pids"] = database_side_pids()
        ctx.results["synchronous_commit"] = ctx.db.sql("SHOW synchronous_commit")[0][0]
        ctx.results["odb"] = odb_state()
        port = bench_run.start_product(ctx)
        bench_run.only_pipeline(ctx, port)
        bench_run.on_workers(sustained.run_with_archiver)(ctx, port)
        results = bench_run.finish(ctx)
    finally:
        procs.stop_started()
        ctx.close()
    return summarize(variant, results)


def summarize(variant: str, results: dict) -> dict:
    phases = results["phases"]
    pipeline, chain = phases["pipeline_drain"], phases["ceiling_chain_drain"]
    out = {
        "variant": variant,
        "synchronous_commit": results.get("synchronous_commit"),
        "odb": results.get("odb"),
        "pipeline_orders_s": pipeline["rate"],
        "pipeline_completed": pipeline["completed"],
        "pipeline_failed": pipeline["failed"],
        "pipeline_end": pipeline["end"],
        "chain_s": chain["rate"],
        "ratio_to_chain": round(pipeline["rate"] / chain["rate"], 3) if chain["rate"] else None,
        "drain_cpu_ms_per_order": cpu_ms_per_order(pipeline["cost"], pipeline["completed"], variant),
        "sustained": [],
    }
    for step in phases.get("sustained", {}).get("steps", []):
        if step.get("skipped"):
            continue
        out["sustained"].append(
            {
                key: step.get(key)
                for key in ("rate", "sent", "accepted", "completed", "failed", "errors", "post_p50_ms", "post_p99_ms")
            }
            | {
                "p50_ms": step["p50_ms"],
                "p99_ms": step["p99_ms"],
                "ok": step["ok"],
                "cpu_ms_per_order": cpu_ms_per_order(step["cost"], step["completed"], variant),
            }
        )
    return out


# --------------------------------------------------------------------------- the alternation
def run_variant(variant: str, args, log_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "bench.database_ha", "--one", variant, "--orders", str(args.orders)]
    cmd += ["--rates", args.rates, "--seconds", str(args.seconds)]
    log = log_dir / f"{variant}-{time.strftime('%H%M%S')}.log"
    with log.open("w") as err:
        result = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{variant} failed (log {log}):\n{result.stdout[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1]) | {"log": str(log)}


def table(runs: list[dict]) -> str:
    lines = [
        f"{'pair':4} {'variant':16} {'drain/s':>8} {'chain/s':>8} {'ratio':>6} {'CPU ms/o':>8} {'db ms/o':>8} "
        f"{'app ms/o':>8} | {'rate':>5} {'done':>9} {'p50':>6} {'p99':>7} {'CPU ms/o':>8} {'db ms/o':>8}"
    ]
    for r in runs:
        d = r["drain_cpu_ms_per_order"]
        head = (
            f"{r['pair']:4} {r['variant']:16} {r['pipeline_orders_s']:8} {r['chain_s']:8} {r['ratio_to_chain']:6} "
            f"{d['total']:8} {d['database']:8} {d['app']:8}"
        )
        steps = r["sustained"] or [None]
        for i, st in enumerate(steps):
            prefix = head if i == 0 else " " * len(head)
            if st is None:
                lines.append(prefix)
                continue
            c = st["cpu_ms_per_order"]
            lines.append(
                f"{prefix} | {st['rate']:5g} {st['completed']:4}/{st['sent']:<4} {st['p50_ms']!s:>6} "
                f"{st['p99_ms']!s:>7} {c['total']!s:>8} {c['database']!s:>8}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="single,ha-pooled,ha-direct")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--rates", default="50,100", help="the sustained steps (orders/s, comma-separated)")
    parser.add_argument("--seconds", type=float, default=20.0, help="each sustained step")
    parser.add_argument("--one", default="", help="(internal) one variant in this process, its summary on stdout")
    args = parser.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    unknown = set(names + ([args.one] if args.one else [])) - set(variants())
    if unknown:
        parser.error(f"unknown variant(s) {sorted(unknown)}; known: {', '.join(variants())}")
    if args.one:
        print(json.dumps(one(args.one, args.orders, args.rates, args.seconds)), flush=True)
        return 0
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    log_dir = Path(f"/tmp/{NAME}-logs-{stamp}")
    log_dir.mkdir(parents=True, exist_ok=True)
    out = ROOT / "bench" / "results" / f"database-ha-{stamp}.json"
    runs = []
    for n in range(args.pairs):
        for variant in names:
            started, load = time.strftime("%H:%M:%S"), os.getloadavg()[0]
            print(f"pair {n + 1}: {variant} (started {started} UTC)", file=sys.stderr, flush=True)
            result = run_variant(variant, args, log_dir)
            runs.append({"pair": n + 1, "started": started, "load_at_start": load, **result})
            print(json.dumps(runs[-1]), flush=True)
            meta = {"orders": args.orders, "rates": args.rates, "seconds": args.seconds}
            out.write_text(json.dumps({**meta, "runs": runs}, indent=2))  # after each run: a partial run is kept
    if "ha-pooled-local" in names:  # leave the pair's database as the other variants expect it
        set_sync_commit(False)
    print("\n" + table(runs))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
