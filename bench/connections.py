"""How many PostgreSQL connections the Procfile takes when scaled out, with and without the pooler (issue 30):
`--processes` (8) worker processes of each Celery worker kind of the Procfile (process, enrichment, finalize, refund,
webhooks; each with its Procfile pool and concurrency), the web server (the Procfile's gunicorn, its default worker
count), the relay and the archiver, all started, then a modest load (`--rate` orders/s for `--seconds`, then every
4th accepted order cancelled, which sends the completed ones to the refund stage); meanwhile every 0.5 s:

    PostgreSQL   SELECT count(*) FROM pg_stat_activity WHERE datname = <db>   (on the server the processes reach)
    PgBouncer    SHOW POOLS (client and server connections of <db>), SHOW CLIENTS (pooled target only)

and at the end of the load which process kind holds which connections (each connection's client port matched to
its process via /proc). Targets:

    direct   the processes' DATABASE_URL on PostgreSQL itself: `--direct-server odb` (default: the pair's primary
             through HAProxy 127.0.0.1:5440, max_connections 200) or `system` (127.0.0.1:5432, max_connections 100,
             shared with every other session on this machine: the scaled-out Procfile would take all of its slots)
    pooled   the pair through PgBouncer in transaction mode (DATABASE_URL pooled, DATABASE_DIRECT_URL direct,
             DB_TRANSACTION_POOLER=true)

    python -m bench.connections [--targets direct,pooled] [--processes 8] [--rate 20] [--seconds 30]

Own database, vhost and Redis db (orders_bench_conn, db 15); every process in its own group, all stopped at the end.
Writes bench/results/connections-<stamp>.json and prints a table.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "orders_bench_conn"
REDIS_DB = 15
ODB_BASE = int(os.environ.get("DB_HA_PORT", "5440"))
SERVERS = {"odb": f"postgres://postgres@127.0.0.1:{ODB_BASE}", "system": "postgres://postgres@127.0.0.1:5432"}
POOLED = f"postgres://postgres@127.0.0.1:{ODB_BASE + 10}"
PGBOUNCER_PORT = ODB_BASE + 10


def pgbouncer_show(what: str) -> list[dict]:
    """One SHOW of PgBouncer's admin console (simple query protocol: psql), as dicts."""
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(PGBOUNCER_PORT), "-U", "postgres", "-X", "-A", "-F", "\t", "-P",
         "footer=off", "-c", f"SHOW {what}", "pgbouncer"],
        capture_output=True, text=True, timeout=5,
    )  # fmt: skip
    lines = [line for line in out.stdout.splitlines() if line]
    if out.returncode != 0 or not lines:
        return []
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:]]


def pool_counts(pools: list[dict], clients: list[dict], database: str) -> dict:
    """PgBouncer's client and server connections for `database` (SHOW POOLS row, SHOW CLIENTS rows)."""
    row = next((p for p in pools if p.get("database") == database), {})

    def n(key: str) -> int:
        try:
            return int(row.get(key, 0))
        except ValueError:
            return 0

    servers = sum(n(k) for k in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
    return {
        "cl_active": n("cl_active"),
        "cl_waiting": n("cl_waiting"),
        "sv_total": servers,
        "sv_active": n("sv_active"),
        "clients": sum(1 for c in clients if c.get("database") == database),
    }


def connections_by_kind(server_port: int, kinds: dict[int, str]) -> dict[str, int]:
    """Which process kind holds how many open TCP connections to 127.0.0.1:`server_port`, by the client side's
    process (`kinds`: pid -> kind; any other process, e.g. PgBouncer's own server connections: "other")."""
    import psutil

    out: dict[str, int] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if not conn.raddr or conn.raddr.port != server_port or conn.pid is None or conn.status != "ESTABLISHED":
            continue
        kind = kinds.get(conn.pid, "other")
        out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items()))


def pid_kinds(sampler) -> dict[int, str]:
    """pid -> kind of every process (trees included) the run started."""
    import psutil

    out: dict[int, str] = {}
    for kind, roots in sampler.roots.items():
        for pid in roots:
            try:
                root = psutil.Process(pid)
                for p in [root, *root.children(recursive=True)]:
                    out[p.pid] = kind
            except psutil.Error:
                continue
    return out


def cancel_some(port: int, ids: list[str], every: int = 4) -> dict:
    from bench.env import TOKEN

    counts: dict[str, int] = {}
    for order_id in ids[::every]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/orders/{order_id}/cancel",
            method="POST",
            data=b"{}",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  loopback
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = 0
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def measure(target: str, args) -> dict:
    import psycopg

    from bench import measure as bench_measure
    from bench import procs
    from bench import run as bench_run
    from bench.context import Bench
    from bench.env import prepare

    server = SERVERS[args.direct_server] if target == "direct" else SERVERS["odb"]
    os.environ["BENCH_DATABASE_URL"] = server
    argv = ["--only", "pipeline", "--name", NAME, "--redis-db", str(REDIS_DB), "--size", "start_timeout=400"]
    if target == "pooled":
        argv += ["--env", f"DATABASE_URL={POOLED}/{NAME}", "--env", f"DATABASE_DIRECT_URL={server}/{NAME}"]
        argv += ["--env", "DB_TRANSACTION_POOLER=true"]
    for pair in args.env:
        argv += ["--env", pair]
    bargs, sizes = bench_run.parse_args(argv)
    ctx = Bench(bargs, sizes, bench_run.STAGE_QUEUES)
    result: dict = {"target": target, "server": server, "database_url": ctx.env["DATABASE_URL"]}
    samples: list[dict] = []
    stop = threading.Event()
    try:
        prepare(ctx)
        ctx.db.close()  # the driver's own connection to the database: not open while counting (reopened at the end)
        watch = psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5)  # not counted: datname
        result["max_connections"] = int(watch.execute("SHOW max_connections").fetchone()[0])
        result["pgbouncer_pool"] = {
            k: v for k, v in pgbouncer_config().items() if k in ("default_pool_size", "reserve_pool_size")
        }

        def count() -> dict:
            row = watch.execute(
                "SELECT count(*), count(*) FILTER (WHERE state = 'active') FROM pg_stat_activity WHERE datname = %s",
                [NAME],
            ).fetchone()
            sample = {"t": round(time.monotonic() - t0, 1), "pg": row[0], "pg_active": row[1]}
            if target == "pooled":
                sample.update(pool_counts(pgbouncer_show("POOLS"), pgbouncer_show("CLIENTS"), NAME))
            return sample

        def sampler() -> None:
            while not stop.is_set():
                try:
                    samples.append({"phase": phase[0], **count()})
                except Exception as exc:  # a sample lost is recorded, not fatal
                    samples.append({"phase": phase[0], "error": str(exc)[:200]})
                stop.wait(0.5)

        t0, phase = time.monotonic(), ["start"]
        threading.Thread(target=sampler, daemon=True).start()
        web, port = ctx.servers.start_web()
        relay = ctx.servers.start_relay()
        archiver = ctx.servers.start_loop("archiver")
        specs = [spec for spec in procs.procfile_workers(ctx.env) for _ in range(args.processes)]
        result["workers"] = {
            s.name: {"processes": args.processes, "pool": s.pool, "concurrency": s.concurrency}
            for s in procs.procfile_workers(ctx.env)
        }
        result["web_argv"] = web.popen.args
        ctx.log(f"starting {len(specs)} Celery workers")
        started = time.monotonic()
        workers = ctx.workers.start(specs, ctx.env)
        result["start_s"] = round(time.monotonic() - started, 1)
        ctx.log(f"workers ready in {result['start_s']} s; load {args.rate}/s for {args.seconds} s")
        phase[0] = "idle"
        time.sleep(3)
        phase[0] = "load"
        load = bench_measure.load(
            ctx, "conn-load", "/orders", port=port, rate=args.rate, seconds=args.seconds, ids=True
        )
        ids = load.pop("ids")
        result["load"] = {k: load[k] for k in ("sent", "accepted", "errors_total", "non_2xx", "connection_errors")}
        phase[0] = "cancel"
        time.sleep(2)  # most orders completed: cancelled ones go to the refund stage
        result["cancels"] = cancel_some(port, ids)
        time.sleep(5)
        phase[0] = "end"
        kinds = pid_kinds(ctx.sampler)
        # the processes' own TCP connections to the address they were given (HAProxy or PostgreSQL directly; the
        # pooler for the pooled target): the client side of each, matched to its process
        app_port = int(ctx.env["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0])
        result["by_kind_end"] = connections_by_kind(app_port, kinds)
        result["end"] = count()
        result["orders_terminal"] = ctx.db.sql(
            "SELECT status, count(*) FROM orders_order GROUP BY status ORDER BY status"
        )
        stop.set()
        ctx.workers.stop(workers)
        ctx.servers.stop([web, relay, archiver])
        watch.close()
    finally:
        stop.set()
        procs.stop_started()
        ctx.close()
    ok = [s for s in samples if "pg" in s]
    result["samples"] = samples
    result["max"] = {
        key: max((s[key] for s in ok if key in s), default=None)
        for key in ("pg", "pg_active", "sv_total", "sv_active", "clients", "cl_active", "cl_waiting")
    }
    result["max_during_load"] = {
        key: max((s[key] for s in ok if key in s and s["phase"] in ("load", "cancel")), default=None)
        for key in ("pg", "sv_total", "clients")
    }
    result["sample_errors"] = sum(1 for s in samples if "error" in s)
    return result


def pgbouncer_config() -> dict:
    rows = pgbouncer_show("CONFIG")
    return {r.get("key"): r.get("value") for r in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="direct,pooled")
    parser.add_argument("--processes", type=int, default=8, help="processes per Celery worker kind")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--direct-server", choices=sorted(SERVERS), default="odb")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every process")
    parser.add_argument("--one", default="", help="(internal) one target in this process, its result on stdout")
    args = parser.parse_args(argv)
    if args.one:

        def term(signum, frame):
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, term)
        print(json.dumps(measure(args.one, args), default=str), flush=True)
        return 0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"connections-{stamp}.json"
    results = []
    for target in [t for t in args.targets.split(",") if t]:
        cmd = [sys.executable, "-m", "bench.connections", "--one", target, "--processes", str(args.processes)]
        cmd += ["--rate", str(args.rate), "--seconds", str(args.seconds), "--direct-server", args.direct_server]
        for pair in args.env:
            cmd += ["--env", pair]
        log = Path(f"/tmp/{NAME}-{target}-{stamp}.log")
        with log.open("w") as err:
            done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, timeout=1500)
        if done.returncode != 0:
            raise RuntimeError(f"{target} failed (log {log}):\n{done.stdout[-2000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]) | {"log": str(log)})
        meta = {"processes": args.processes, "rate": args.rate, "seconds": args.seconds}
        out.write_text(json.dumps({**meta, "results": results}, indent=2))
    for r in results:
        m = r["max"]
        print(
            f"{r['target']:7} pg max {m['pg']} (end {r['end']['pg']}) of max_connections {r['max_connections']}; "
            f"pgbouncer server max {m['sv_total']} clients max {m['clients']} (pool {r['pgbouncer_pool']}); "
            f"load {r['load']}; by kind at the end {r['by_kind_end']}"
        )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
