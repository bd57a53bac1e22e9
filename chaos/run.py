"""Chaos run: the whole system under steady load while every process kind is killed (-9) and
restarted, RabbitMQ and PostgreSQL are restarted, then a checker proves nothing accepted was lost
or doubled. `make chaos` runs the full version; e2e/test_chaos_smoke.py a small one.

Uses its own database (`orders_chaos`), RabbitMQ vhost and Redis db; traffic stays on loopback;
every loop is bounded in count and time. Exits non-zero on any violation and writes a JSON report.
"""

import argparse
import json
import os
import random
import socket
import sys
import threading
import time
from pathlib import Path

from chaos.checker import check, print_table, wait_quiescent
from chaos.config import KINDS, ROOT, Config, log, system_env
from chaos.faults import ensure_services_up, run_chaos
from chaos.load import ClientLog, drive_load
from chaos.system import Supervisor, prepare, wait_web


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=25.0, help="orders per second")
    parser.add_argument("--kills", type=int, default=2, help="kill -9 of each process kind")
    parser.add_argument("--no-rabbitmq-restart", action="store_true")
    parser.add_argument("--no-postgres-restart", action="store_true")
    parser.add_argument(
        "--failure-rate", type=float, default=None, help="provider random failure rate (default: random 0.05..0.3)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--port", type=int, default=0, help="web port (default: a free one)")
    parser.add_argument("--quiesce-timeout", type=float, default=600)
    parser.add_argument("--report", type=Path, default=ROOT / "test-artifacts" / "chaos-report.json")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="on the local three-node cluster (make cluster): a node killed, one cut off, a host gone "
        "(chaos/cluster.py) instead of the single node's faults",
    )
    parser.add_argument(
        "--cluster-faults",
        default=None,
        help="the cluster's faults, comma-separated: kill, isolate, vanish, db (default: all; db with --db-ha)",
    )
    parser.add_argument(
        "--db-ha",
        action="store_true",
        help="PostgreSQL on the local Patroni pair behind PgBouncer (make db-ha), its primary lost and switched back",
    )
    parser.add_argument(
        "--clean",
        action="store_true",
        help="normal orders only (no fault SKUs, duplicates or cancels) and no provider failures: what the "
        "faults cost in latency, alone",
    )
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(args: argparse.Namespace, seed: int, rng: random.Random) -> Config:
    workdir = ROOT / "test-artifacts" / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    return Config(
        orders=args.orders,
        rate=args.rate,
        kills=args.kills,
        restart_rabbitmq=not args.no_rabbitmq_restart,
        restart_postgres=not args.no_postgres_restart,
        failure_rate=0.0
        if args.clean
        else args.failure_rate
        if args.failure_rate is not None
        else round(rng.uniform(0.05, 0.3), 2),
        seed=seed,
        port=args.port,
        report=args.report,
        workdir=workdir,
        quiesce_timeout=args.quiesce_timeout,
        cluster=args.cluster,
        cluster_faults=tuple(
            f
            for f in (args.cluster_faults or ("kill,isolate,vanish,db" if args.db_ha else "kill,isolate,vanish")).split(
                ","
            )
            if f
        ),
        db_ha=args.db_ha,
        clean=args.clean,
    )


def load_under_chaos(
    cfg: Config, sup: Supervisor, seed: int, rng: random.Random, client: ClientLog, events: list, outages: dict
) -> None:
    """Start every process, then drive the load while the faults run beside it (their own RNG)."""
    kinds = cluster_kinds() if cfg.cluster else KINDS
    for kind in kinds:
        sup.start(kind)
    wait_web(cfg.port, address=cfg.web_address)
    duration = cfg.orders / cfg.rate
    if cfg.cluster:
        from chaos import cluster

        time.sleep(5)  # every worker consuming before the first fault
        faults = cluster.run_faults
    else:
        faults = run_chaos
    chaos = threading.Thread(target=faults, args=(cfg, sup, random.Random(seed + 1), duration, events, outages))
    chaos.start()
    drive_load(cfg, client, rng)
    chaos.join()


def cluster_kinds() -> list[str]:
    from chaos.cluster import KINDS as CLUSTER_KINDS

    return CLUSTER_KINDS


def settle_and_check(
    cfg: Config, client: ClientLog, outages: dict, initial_stock: dict, events: list
) -> tuple[dict, dict, dict]:
    """Wait for quiescence, then run the checker twice (its answer must not change): (quiescence, checks, and on
    the cluster its latency, failover and spread figures)."""
    log(f"load done: {len(client.accepted)} keys accepted; waiting for quiescence")
    from django.db import connections

    connections.close_all()
    accepted_ids = {oid for ids in client.accepted.values() for oid in ids}
    quiescence = wait_quiescent(cfg, accepted_ids)
    log(f"quiescence: {quiescence}")
    extra = {}
    if cfg.cluster:
        from chaos import cluster

        extra = {
            "latency": cluster.latency_report(client, events),
            "failovers": cluster.failovers(cfg.workdir, events),
            "redeliveries": cluster.redeliveries(cfg.workdir, list(client.accepted_at)),
            "database outage each process saw (s from the fault to its last database error)": (
                cluster.database_outages(cfg.workdir, events) if cfg.db_ha else {}
            ),
            "worker reconnects (seconds without a broker; None: never back)": cluster.worker_reconnects(cfg.workdir),
            "processes per node before the first fault": cluster.spread_from_logs(
                cfg.workdir, until=min((e["wall"] for e in events if "wall" in e), default=None)
            ),
            "processes per node at the end": cluster.spread_from_logs(cfg.workdir),
            "queue members at end": cluster.members_online(cfg.vhost),
        }
    first = check(cfg, client, outages, initial_stock)
    second = check(cfg, client, outages, initial_stock)
    first["a second run of the checker gives the same answer"] = {"ok": first == second, "detail": {}}
    return quiescence, first, extra


def write_report(
    cfg: Config,
    seed: int,
    events: list,
    outages: dict,
    quiescence: dict,
    checks: dict,
    client: ClientLog,
    extra: dict,
) -> bool:
    ok = all(r["ok"] for r in checks.values())
    report = {
        "ok": ok,
        "seed": seed,
        "config": {k: str(v) for k, v in vars(cfg).items()},
        "events": events,
        "outages": outages,
        "quiescence": quiescence,
        "checks": checks,
        **extra,
        "requests": {
            "sent": len(client.statuses),
            "by_status": {
                str(c): sum(1 for _, s in client.statuses if s == c) for c in {s for _, s in client.statuses}
            },
        },
    }
    cfg.report.parent.mkdir(parents=True, exist_ok=True)
    cfg.report.write_text(json.dumps(report, indent=2, default=str))
    return ok


def main(argv=None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    if not args.port:
        args.port = free_port()
    if args.cluster:
        from chaos.cluster import check_tools

        check_tools()
        if args.db_ha:
            from devtools import db_ha

            if not db_ha.status().get("leader"):
                raise SystemExit("the database pair is not up: `make db-ha` (python -m devtools.db_ha up) first")
        # The broker's faults only: no process kills, no single-node restart, no purge, no PostgreSQL restart.
        args.kills, args.no_rabbitmq_restart, args.no_postgres_restart = 0, True, True
    rng = random.Random(seed)
    cfg = make_config(args, seed, rng)
    log(
        f"seed={seed} orders={cfg.orders} rate={cfg.rate}/s kills={cfg.kills} "
        f"failure_rate={cfg.failure_rate} logs={cfg.workdir}"
    )
    prepare(cfg)
    os.environ.update(system_env(cfg))
    import django

    django.setup()
    from orders.models import Product

    initial_stock = dict(Product.objects.values_list("sku", "stock"))
    sup = Supervisor(cfg)
    client = ClientLog()
    events: list = []
    outages: dict = {}
    try:
        load_under_chaos(cfg, sup, seed, rng, client, events, outages)
        quiescence, checks, extra = settle_and_check(cfg, client, outages, initial_stock, events)
    finally:
        sup.stop_all()
        if cfg.cluster:
            from chaos.cluster import ensure_cluster_whole

            ensure_cluster_whole()
        else:
            ensure_services_up()
    print_table(checks)
    ok = write_report(cfg, seed, events, outages, quiescence, checks, client, extra)
    log(f"{'PASS' if ok else 'FAIL'}; report {cfg.report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
