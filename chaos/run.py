"""Chaos run: the whole system under steady load while every process kind is killed (-9) and
restarted, RabbitMQ and PostgreSQL are restarted, then a checker proves nothing accepted was lost
or doubled. `make chaos` runs the full version; e2e/test_chaos_smoke.py a small one.

Uses its own database (`orders_chaos`), RabbitMQ vhost and Redis db; traffic stays on loopback;
every loop is bounded in count and time. Exits non-zero on any violation and writes a JSON report.
"""
import argparse
import concurrent.futures
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devtools.procs import Proc, spawn, stop_all

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Production settings refuse short or placeholder secrets (orders_project/settings.py, "Security").
TOKEN = "chaos-token-Hc4sW9pLq2Xv7Nz3Rt6Ym1Kd8"
NORMAL_SKUS = ["ABC", "XYZ", "Notebook", "Pen", "Mug"]
KINDS = ["web", "worker_process", "worker_enrichment", "worker_finalize", "relay", "archiver"]


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Config:
    orders: int
    rate: float
    kills: int
    restart_rabbitmq: bool
    restart_postgres: bool
    failure_rate: float
    seed: int
    port: int
    report: Path
    workdir: Path
    quiesce_timeout: float
    db_name: str = "orders_chaos"
    vhost: str = "orders_chaos"
    redis_url: str = "redis://127.0.0.1:6379/10"

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:5432/{self.db_name}"


def system_env(cfg: Config) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="orders_project.settings",
        DJANGO_SECRET_KEY="chaos-secret-key-Jf5rT8wQ1zN4xC7vB2mL6kP9hG3dS0aYq",
        DJANGO_HTTPS="false",  # plain HTTP on 127.0.0.1: no SSL redirect
        SECRET_TOKEN=TOKEN,
        DATABASE_URL=cfg.database_url,
        CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{cfg.vhost}",
        REDIS_URL=cfg.redis_url,
        CACHE_KEY_PREFIX="chaos",
        CHANNELS_PREFIX="asgi-chaos",
        LOG_FORMAT="json",
        ENRICHMENT_LATENCY_MS="20",
        TASK_MAX_RETRIES="3",
        TASK_RETRY_BACKOFF_BASE="1",
        TASK_RETRY_BACKOFF_MAX="4",
        OUTBOX_GRACE_SECONDS="2",
        DB_CONNECT_TIMEOUT="2",
        HEARTBEAT_FILE=str(cfg.workdir / "heartbeat"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def commands(cfg: Config) -> dict[str, list[str]]:
    celery = [str(BIN / "celery"), "-A", "orders_project", "worker", "-l", "INFO", "--without-gossip", "--without-mingle"]
    manage = [sys.executable, "manage.py"]
    return {
        # The Procfile's web (gunicorn). Its `live` (the WebSocket) is not started: the run only drives HTTP.
        "web": [str(BIN / "gunicorn"), "orders_project.wsgi:application", "--config", "python:orders_project.gunicorn_conf", "--bind", f"127.0.0.1:{cfg.port}"],
        "worker_process": celery + ["-Q", "process", "-n", "process-chaos@%h", "-c", "2"],
        "worker_enrichment": celery + ["-Q", "enrichment", "-n", "enrichment-chaos@%h", "-P", "threads", "-c", "16"],
        "worker_finalize": celery + ["-Q", "finalize", "-n", "finalize-chaos@%h", "-c", "2"],
        "relay": manage + ["relay_outbox"],
        "archiver": manage + ["archive_dead_letters"],
    }


class Supervisor:
    """Starts, kills (-9) and restarts the system's processes; stops them all at the end."""

    def __init__(self, cfg: Config):
        self.cfg, self.env, self.argv = cfg, system_env(cfg), commands(cfg)
        self.procs: dict[str, Proc] = {}
        self.lock = threading.Lock()

    def start(self, kind: str) -> None:
        proc = spawn(kind, self.argv[kind], env=self.env, log=self.cfg.workdir / f"{kind}.log", kind=kind)
        with self.lock:
            self.procs[kind] = proc

    def kill9(self, kind: str) -> None:
        with self.lock:
            proc = self.procs[kind]
        proc.kill9()

    def stop_all(self) -> None:
        stop_all(list(self.procs.values()), grace=30)


def manage(cfg: Config, *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=system_env(cfg), capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def prepare(cfg: Config) -> None:
    log(f"fresh database {cfg.db_name}, vhost {cfg.vhost}, redis {cfg.redis_url}")
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", cfg.db_name], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", cfg.db_name], check=True)
    subprocess.run(["rabbitmqctl", "delete_vhost", cfg.vhost], capture_output=True)
    subprocess.run(["rabbitmqctl", "add_vhost", cfg.vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", cfg.vhost, "guest", ".*", ".*", ".*"], check=True, capture_output=True)
    import redis

    redis.Redis.from_url(cfg.redis_url).flushdb()
    manage(cfg, "migrate", "--noinput", "-v", "0")
    manage(cfg, "seed_catalog")
    manage(cfg, "declare_topology")
    manage(cfg, "provider", "--failure-rate", str(cfg.failure_rate))


# ---------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------
@dataclass
class ClientLog:
    accepted: dict = field(default_factory=dict)  # key -> set of order ids the client was given
    bodies: dict = field(default_factory=dict)
    statuses: list = field(default_factory=list)  # (time, status)
    retried_keys: set = field(default_factory=set)
    gave_up: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def order_body(rng: random.Random, n: int) -> dict:
    roll = rng.random()
    if roll < 0.08:
        items = [{"sku": "FLAKY", "qty": 1}]
    elif roll < 0.13:
        items = [{"sku": "DOWN", "qty": 1}]
    elif roll < 0.18:
        items = [{"sku": "BOMBA", "qty": 1}]
    else:
        items = [{"sku": sku, "qty": rng.randint(1, 5)} for sku in rng.sample(NORMAL_SKUS, rng.randint(1, 3))]
    return {"customer_id": f"chaos-{n % 97}", "source": rng.choice(["web", "mobile", "api"]), "items": items}


def send(cfg: Config, client: ClientLog, key: str, body: dict) -> None:
    url = f"http://127.0.0.1:{cfg.port}/orders"
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Idempotency-Key": key}
    deadline = time.monotonic() + 120
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        if attempt > 1:
            with client.lock:
                client.retried_keys.add(key)
        try:
            response = requests.post(url, json=body, headers=headers, timeout=15)
        except requests.RequestException:
            time.sleep(0.3)  # server down or restarting: retry with the same key
            continue
        with client.lock:
            client.statuses.append((time.time(), response.status_code))
        if response.status_code == 202:
            with client.lock:
                client.accepted.setdefault(key, set()).add(response.json()["order_id"])
            return
        if response.status_code == 503:
            time.sleep(0.5)
            continue
        with client.lock:
            client.unexpected.append({"key": key, "status": response.status_code, "body": response.text[:300]})
        return
    with client.lock:
        client.gave_up.append(key)


def drive_load(cfg: Config, client: ClientLog, rng: random.Random) -> None:
    keys: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        futures = []
        started = time.monotonic()
        for n in range(cfg.orders):
            if keys and rng.random() < 0.08:
                key = rng.choice(keys)  # a duplicate: same key, same body
            else:
                key = f"chaos-{uuid.uuid4()}"
                keys.append(key)
                client.bodies[key] = order_body(rng, n)
            futures.append(pool.submit(send, cfg, client, key, client.bodies[key]))
            # steady rate: sleep until this order's slot
            delay = started + (n + 1) / cfg.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for future in futures:
            future.result()


# ---------------------------------------------------------------------------
# Chaos
# ---------------------------------------------------------------------------
def pg_cluster() -> str:
    return sorted(os.listdir("/etc/postgresql"))[0]


def run_chaos(cfg: Config, sup: Supervisor, rng: random.Random, duration: float, events_log: list, outages: dict) -> None:
    plan = []
    for kind in KINDS:
        for _ in range(cfg.kills):
            plan.append((rng.uniform(0.05, 0.85) * duration, "kill", kind))
    if cfg.restart_rabbitmq:
        plan.append((0.35 * duration, "rabbitmq", None))
    if cfg.restart_postgres:
        plan.append((0.6 * duration, "postgres", None))
    plan.sort(key=lambda p: p[0])
    start = time.monotonic()
    for at, action, kind in plan:
        wait = start + at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if action == "kill":
            sup.kill9(kind)
            down = rng.uniform(0.3, 2.0)
            events_log.append({"t": round(time.monotonic() - start, 2), "event": f"kill -9 {kind}", "down_s": round(down, 2)})
            log(f"kill -9 {kind}, restart in {down:.1f}s")
            time.sleep(down)
            sup.start(kind)
        elif action == "rabbitmq":
            log("restarting RabbitMQ")
            outages["rabbitmq"] = [time.time(), None]
            subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
            time.sleep(2)
            subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=180)
            outages["rabbitmq"][1] = time.time()
            events_log.append({"t": round(time.monotonic() - start, 2), "event": "restart rabbitmq"})
        elif action == "postgres":
            log("restarting PostgreSQL")
            outages["postgres"] = [time.time(), None]
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", pg_cluster(), "main", "restart"], check=True, capture_output=True, timeout=120)
            outages["postgres"][1] = time.time()
            events_log.append({"t": round(time.monotonic() - start, 2), "event": "restart postgres"})


def ensure_services_up() -> None:
    """Whatever happened, leave PostgreSQL and RabbitMQ running for whoever comes next."""
    if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode != 0:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", pg_cluster(), "main", "start"], capture_output=True)
    if subprocess.run(["rabbitmqctl", "-q", "await_startup"], capture_output=True, timeout=120).returncode != 0:
        subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=180)


# ---------------------------------------------------------------------------
# Checker
# ---------------------------------------------------------------------------
def wait_quiescent(cfg: Config, accepted_ids: set[str]) -> dict:
    from django.db import connection

    from orders.dead_letters import dlq_depth
    from orders.models import Order, OutboxMessage
    from orders_project import broker
    from orders_project.celery import app

    deadline = time.monotonic() + cfg.quiesce_timeout
    state = {}
    while time.monotonic() < deadline:
        try:
            open_orders = Order.objects.filter(id__in=accepted_ids).exclude(status__in=["completed", "failed"]).count()
            unsent = OutboxMessage.objects.filter(published_at__isnull=True).count()
            with app.connection_for_write() as conn:
                channel = conn.channel()
                depths = {q: channel.queue_declare(q, passive=True)[1] for q in [s.queue for s in broker.STAGES]}
            state = {"open_orders": open_orders, "unsent_outbox": unsent, "dlq": dlq_depth(), **depths}
            if not any(state.values()):
                return state
        except Exception as exc:  # a service still coming back
            state = {"error": str(exc)}
            connection.close()
        time.sleep(2)
    return state


def check(cfg: Config, client: ClientLog, outages: dict, initial_stock: dict[str, int]) -> dict:
    from django.db.models import Count, Sum

    from orders.models import DeadLetter, IdempotencyKey, Invoice, Order, OrderItem, Product

    accepted_ids = {oid for ids in client.accepted.values() for oid in ids}
    orders = {str(o.id): o for o in Order.objects.all()}
    results = {}

    def record(name: str, ok: bool, detail) -> None:
        results[name] = {"ok": bool(ok), "detail": detail}

    missing = sorted(accepted_ids - set(orders))
    record("every accepted order exists", not missing, {"accepted": len(accepted_ids), "missing": missing[:10]})
    stuck = sorted(i for i in accepted_ids & set(orders) if orders[i].status not in ("completed", "failed"))
    record("none stuck in pending/processing", not stuck, {"stuck": stuck[:10]})
    failed_no_reason = [i for i, o in orders.items() if o.status == "failed" and not o.failure_reason]
    record("every failed order has a reason", not failed_no_reason, {"failed": sum(o.status == "failed" for o in orders.values())})
    failed_ids = {i for i, o in orders.items() if o.status == "failed"}
    archived = {str(i) for i in DeadLetter.objects.filter(order__isnull=False).values_list("order_id", flat=True)}
    not_archived = sorted(failed_ids - archived)
    record("every dead-lettered (failed) order has its dead letter archived", not not_archived, {"not_archived": not_archived[:10]})
    multi = {k: sorted(v) for k, v in client.accepted.items() if len(v) > 1}
    keys_db = IdempotencyKey.objects.count()
    record(
        "one order per idempotency key",
        not multi and keys_db == len(orders) == len(client.accepted),
        {"keys_client": len(client.accepted), "keys_db": keys_db, "orders_db": len(orders), "keys_with_two_orders": multi},
    )
    key_orders = {k.key: str(k.order_id) for k in IdempotencyKey.objects.all()}
    mismatched = [k for k, ids in client.accepted.items() if key_orders.get(k) not in ids]
    record("client's order id per key matches the database", not mismatched, {"mismatched": mismatched[:10]})
    invoice_counts = dict(Invoice.objects.values_list("order_id").annotate(n=Count("id")).values_list("order_id", "n"))
    completed = {i for i, o in orders.items() if o.status == "completed"}
    bad_invoices = [i for i in completed if invoice_counts.get(orders[i].id, 0) != 1]
    failed_with_invoice = [i for i in failed_ids if invoice_counts.get(orders[i].id, 0)]
    record("one invoice per completed order, none for failed", not bad_invoices and not failed_with_invoice,
           {"completed": len(completed), "bad": bad_invoices[:10], "failed_with_invoice": failed_with_invoice[:10]})
    sold = dict(OrderItem.objects.filter(order__status="completed").values_list("sku").annotate(q=Sum("qty")).values_list("sku", "q"))
    stock_errors = {}
    for product in Product.objects.all():
        expected = initial_stock[product.sku] - sold.get(product.sku, 0)
        if product.stock != expected or product.reserved != 0:
            stock_errors[product.sku] = {"stock": product.stock, "expected": expected, "reserved": product.reserved}
    record("stock = initial - sum(qty of completed orders), nothing reserved", not stock_errors, stock_errors)
    pg = outages.get("postgres")
    bad_5xx = [
        (round(t, 1), code) for t, code in client.statuses
        if code >= 500 and not (code == 503 and pg and pg[0] - 2 <= t <= (pg[1] or t) + 15)
    ]
    record("no 5xx except 503 during the database outage", not bad_5xx, {"bad": bad_5xx[:10], "503s": sum(c == 503 for _, c in client.statuses)})
    record("no unexpected answers, no request given up", not client.unexpected and not client.gave_up,
           {"unexpected": client.unexpected[:5], "gave_up": client.gave_up[:5], "retried_keys": len(client.retried_keys)})
    return results


def print_table(results: dict) -> None:
    width = max(len(n) for n in results)
    print(f"\n{'check'.ljust(width)}  result  detail")
    for name, r in results.items():
        print(f"{name.ljust(width)}  {'ok  ' if r['ok'] else 'FAIL'}    {json.dumps(r['detail'], default=str)[:160]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=25.0, help="orders per second")
    parser.add_argument("--kills", type=int, default=2, help="kill -9 of each process kind")
    parser.add_argument("--no-rabbitmq-restart", action="store_true")
    parser.add_argument("--no-postgres-restart", action="store_true")
    parser.add_argument("--failure-rate", type=float, default=None, help="provider random failure rate (default: random 0.05..0.3)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--port", type=int, default=0, help="web port (default: a free one)")
    parser.add_argument("--quiesce-timeout", type=float, default=600)
    parser.add_argument("--report", type=Path, default=ROOT / "test-artifacts" / "chaos-report.json")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    if not args.port:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            args.port = s.getsockname()[1]
    rng = random.Random(seed)
    workdir = ROOT / "test-artifacts" / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = Config(
        orders=args.orders, rate=args.rate, kills=args.kills,
        restart_rabbitmq=not args.no_rabbitmq_restart, restart_postgres=not args.no_postgres_restart,
        failure_rate=args.failure_rate if args.failure_rate is not None else round(rng.uniform(0.05, 0.3), 2),
        seed=seed, port=args.port, report=args.report, workdir=workdir, quiesce_timeout=args.quiesce_timeout,
    )
    log(f"seed={seed} orders={cfg.orders} rate={cfg.rate}/s kills={cfg.kills} failure_rate={cfg.failure_rate} logs={workdir}")
    prepare(cfg)
    os.environ.update(system_env(cfg))
    import django

    django.setup()
    from orders.models import Product

    initial_stock = dict(Product.objects.values_list("sku", "stock"))
    sup = Supervisor(cfg)
    client, events, outages = ClientLog(), [], {}
    try:
        for kind in KINDS:
            sup.start(kind)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{cfg.port}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        duration = cfg.orders / cfg.rate
        chaos = threading.Thread(target=run_chaos, args=(cfg, sup, random.Random(seed + 1), duration, events, outages))
        chaos.start()
        drive_load(cfg, client, rng)
        chaos.join()
        log(f"load done: {len(client.accepted)} keys accepted; waiting for quiescence")
        from django.db import connections

        connections.close_all()
        accepted_ids = {oid for ids in client.accepted.values() for oid in ids}
        quiescence = wait_quiescent(cfg, accepted_ids)
        log(f"quiescence: {quiescence}")
        first = check(cfg, client, outages, initial_stock)
        second = check(cfg, client, outages, initial_stock)
        first["a second run of the checker gives the same answer"] = {"ok": first == second, "detail": {}}
    finally:
        sup.stop_all()
        ensure_services_up()
    print_table(first)
    ok = all(r["ok"] for r in first.values())
    report = {
        "ok": ok, "seed": seed, "config": {k: str(v) for k, v in vars(cfg).items()}, "events": events,
        "outages": outages, "quiescence": quiescence, "checks": first,
        "requests": {"sent": len(client.statuses), "by_status": {str(c): sum(1 for _, s in client.statuses if s == c) for c in {s for _, s in client.statuses}}},
    }
    cfg.report.parent.mkdir(parents=True, exist_ok=True)
    cfg.report.write_text(json.dumps(report, indent=2, default=str))
    log(f"{'PASS' if ok else 'FAIL'}; report {cfg.report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
