"""The benchmark suite, one command: `python -m bench.run [--smoke]` (or `make bench`).

Runs every figure of issue 8 against the real processes of the Procfile (uvicorn, the three Celery
workers, the relay) on its own database, RabbitMQ vhost and Redis db, next to the ceilings measured in
the same run, and writes bench/results/<timestamp>.json, latest.json, latest.md and latest.png.
See bench/README.md for what each figure means.
"""
import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import psutil

from bench import procs
from core.procs import wait_until

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CELERY = str(Path(sys.executable).parent / "celery")
TOKEN = "bench-token"
WORKER_STOP_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for the workers of a finished phase
PIPELINE_KINDS = ("worker_process", "worker_enrichment", "worker_finalize")
ORDER_TABLES = (
    "orders_orderhistory", "orders_orderitem", "orders_orderenrichment", "orders_invoice",
    "orders_idempotencykey", "orders_outboxmessage", "orders_deadletter", "orders_order", "bench_ceiling_ceilingrow",
)


@dataclass
class Sizes:
    api_seconds: float = 15.0  # each closed-loop API measurement
    api_warmup: int = 300  # requests per endpoint before measuring
    drain_orders: int = 5000  # pipeline backlog (latency 0) and bare-chain backlog
    backlog_messages: int = 50000  # decoupling: messages waiting in the queues
    decouple_seconds: float = 15.0
    e2e_rate: float = 50.0
    e2e_seconds: float = 30.0
    io_orders: int = 2000  # enrichment at 1000 ms
    scale_orders: int = 1000  # per scale-out point
    scale_processes: tuple = (1, 2, 4)
    enrichment_latency_ms: int = 1000
    phase_timeout: float = 300.0  # no wait in the bench lasts longer than this
    stall_seconds: float = 30.0  # a drain with no progress this long, and nothing left in its queues, is over
    start_timeout: float = 120.0  # a web server or worker not ready after this long fails the run


SMOKE = lambda: Sizes(  # noqa: E731
    api_seconds=1.0, api_warmup=0, drain_orders=40, backlog_messages=1000, decouple_seconds=1.0,
    e2e_rate=50.0, e2e_seconds=0.6, io_orders=24, scale_orders=12, phase_timeout=60.0, stall_seconds=15.0,
)


# --------------------------------------------------------------------------- environment
def bench_env(args) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "PYTEST", "COV_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings_bench",
        DJANGO_DEBUG="False",
        DJANGO_SECRET_KEY="bench-secret-key",
        SECRET_TOKEN=TOKEN,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{args.name}",
        CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{args.name}",
        REDIS_URL=f"redis://127.0.0.1:6379/{args.redis_db}",
        CACHE_KEY_PREFIX=args.name,
        CHANNELS_PREFIX=f"asgi-{args.name}",
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        ENRICHMENT_LATENCY_MS="0",
        ENRICHMENT_FAILURE_RATE="0",
        HEARTBEAT_FILE=f"/tmp/{args.name}-heartbeat",
        BENCH_CEILING_DONE_KEY=f"bench:{args.name}:ceiling:done",  # per run name: never another run's chains
        PYTHONUNBUFFERED="1",
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    for pair in args.env:
        key, _, value = pair.partition("=")
        env[key] = value
    return env


class Bench:
    def __init__(self, args, sizes: Sizes):
        self.args = args
        self.sizes = sizes
        self.env = bench_env(args)
        os.environ.update(self.env)  # the driver imports the product's settings module (broker topology)
        self.stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.out = Path(args.out)
        self.logs = Path(args.logs or f"/tmp/{args.name}-logs-{self.stamp}")
        self.sampler = procs.Sampler()
        self.results: dict = {"phases": {}, "load_runs": {}, "figures": {}, "cost": {}}
        self.web: list[procs.Proc] = []
        self.relay: procs.Proc | None = None
        self.relay2: procs.Proc | None = None
        self.commands = procs.procfile_commands(self.env)
        self.done_key = self.env["BENCH_CEILING_DONE_KEY"]
        self._conn = None
        self.t0 = time.monotonic()

    # ----------------------------------------------------------------------- helpers
    def log(self, message: str) -> None:
        print(f"[bench {time.monotonic() - self.t0:7.1f}s] {message}", flush=True)

    def db(self):
        import psycopg

        conn = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=self.args.name, connect_timeout=5)
        conn.autocommit = True
        return conn

    def sql(self, query: str, params=None) -> list:
        """One autocommit query on the driver's own connection (kept open: the bench polls a lot, and the
        shared server's connection slots are scarce). A lost or refused connection ('too many clients'
        while someone else's suite runs) is retried for up to 60 s before the run fails."""
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self.db()
                with self._conn.cursor() as cur:
                    cur.execute(query, params)
                    return cur.fetchall() if cur.description else []
            except (psycopg.OperationalError, psycopg.InterfaceError):
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def broker(self):
        from kombu import Connection

        return Connection(self.env["CELERY_BROKER_URL"], connect_timeout=5)

    def redis(self):
        import redis

        return redis.Redis.from_url(self.env["REDIS_URL"])

    def manage(self, *argv: str, env: dict | None = None) -> None:
        subprocess.run([PY, "manage.py", *argv], env=env or self.env, cwd=ROOT, check=True, capture_output=True, timeout=180)

    def queue_depth(self, name: str) -> int:
        with self.broker() as conn:
            try:
                return conn.default_channel.queue_declare(name, passive=True).message_count
            except Exception:
                return 0

    def ready_messages(self, names: list[str]) -> int:
        """Messages waiting (ready, incl. delayed retries) in `names`, over one connection; a queue not
        declared yet counts 0."""
        total = 0
        with self.broker() as conn:
            channel = conn.channel()
            for name in names:
                try:
                    total += channel.queue_declare(name, passive=True).message_count
                except Exception:
                    channel = conn.channel()
        return total

    PIPELINE_QUEUES = ["process", "enrichment", "finalize"] + [f"celery_delayed_{i}" for i in range(28)]

    def pipeline_waiting(self) -> int:
        """Work that can still complete an order: unpublished outbox rows and messages in the queues."""
        outbox = self.sql("SELECT count(*) FROM orders_outboxmessage WHERE published_at IS NULL")[0][0]
        return outbox + self.ready_messages(self.PIPELINE_QUEUES)

    def wait_progress(self, count, target: int, waiting, what: str) -> str:
        """Wait until count() >= target: 'done'. Stop early, 'stalled', when the count has not moved for
        `stall_seconds` while waiting() says nothing is left to do (what is missing was lost, or is stuck
        in a worker: waiting longer measures nothing). 'timed_out' after `phase_timeout` in any case."""
        s = self.sizes
        deadline = time.monotonic() + s.phase_timeout
        last, moved = -1, time.monotonic()
        while True:
            value = count()
            now = time.monotonic()
            if value >= target:
                return "done"
            if value != last:
                last, moved = value, now
            elif now - moved > s.stall_seconds and waiting() == 0:
                self.log(f"warning: {what}: {value}/{target} and no progress for {s.stall_seconds:g} s with nothing left waiting")
                return "stalled"
            if now > deadline:
                self.log(f"warning: {what}: {value}/{target} at the {s.phase_timeout:g} s deadline")
                return "timed_out"
            time.sleep(0.25)

    def consumers(self, name: str) -> int:
        with self.broker() as conn:
            try:
                return conn.default_channel.queue_declare(name, passive=True).consumer_count
            except Exception:
                return 0

    def wait_consumers(self, started: list, queues: dict[str, int]) -> None:
        """Workers are ready when their queues have their consumers (the Procfile's log level hides 'ready')."""
        def ready():
            for proc in started:
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.output()[-3000:]}")
            return all(self.consumers(q) >= n for q, n in queues.items())

        wait_until(ready, timeout=self.sizes.start_timeout, what=f"consumers on {queues}", interval=0.2)

    def purge(self) -> None:
        from bench.ceiling_celery import QUEUES

        names = ["process", "enrichment", "finalize", "orders.dlq", *QUEUES] + [f"celery_delayed_{i}" for i in range(28)]
        with self.broker() as conn:
            channel = conn.channel()
            for name in names:
                try:
                    channel.queue_purge(name)
                except Exception:  # a delayed-delivery queue not declared yet
                    channel = conn.channel()

    def truncate(self) -> None:
        import psycopg

        for attempt in range(5):
            try:
                self.sql(f"TRUNCATE {', '.join(ORDER_TABLES)} CASCADE")
                return
            except psycopg.Error:  # deadlock with a late relay batch: retry
                if attempt == 4:
                    raise
                time.sleep(1)

    def reset(self, *, relays_running: bool = True) -> None:
        """Empty the order tables, refill the stock, purge every queue: each phase starts the same."""
        if relays_running:
            self.wait_published()  # a relay still publishing holds row locks that TRUNCATE would deadlock with
        self.truncate()
        self.sql("UPDATE orders_product SET stock = 1000000, reserved = 0")
        self.purge()
        self.redis().delete(self.done_key)

    # ----------------------------------------------------------------------- set-up
    def prepare(self) -> None:
        procs.lock_run(self.args.name, wait=self.args.lock_wait, log=self.log)
        procs.reap_leftovers(self.args.name, log=self.log)
        self.log(f"set-up: database and vhost {self.args.name}, redis db {self.args.redis_db}")
        self.ensure_database_and_vhost()
        # one Django start-up for the three set-up commands of the README (migrate, seed_catalog, declare_topology)
        code = ("import django; django.setup(); from django.core.management import call_command as c; "
                "c('migrate', interactive=False, verbosity=0); c('seed_catalog', verbosity=0); c('declare_topology', verbosity=0)")
        subprocess.run([PY, "-c", code], env=self.env, cwd=ROOT, check=True, capture_output=True, timeout=300)
        from bench import ceiling_celery

        with self.broker() as conn:
            ceiling_celery.declare(conn)
        self.no_consumers()
        self.reset(relays_running=False)  # nothing of this run publishes yet: no outbox to wait for

    def ensure_database_and_vhost(self, wait: float = 180.0) -> None:
        """Create the database and the vhost if missing. PostgreSQL or RabbitMQ down (someone's chaos run
        restarts them on this shared machine) is waited for, bounded, instead of failing the run."""
        import psycopg

        deadline = time.monotonic() + wait
        while True:
            try:
                admin = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=5)
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise
                self.log(f"PostgreSQL not available ({str(exc).strip()[:80]}); retrying")
                time.sleep(3)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.args.name])
            if not cur.fetchone():
                cur.execute(f'CREATE DATABASE "{self.args.name}"')
        admin.close()
        while True:
            try:
                with self.broker() as conn:
                    conn.connect()  # the vhost exists and guest may use it: no rabbitmqctl (a second each)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"RabbitMQ vhost {self.args.name} not usable: {exc}") from exc
                created = subprocess.run(["rabbitmqctl", "add_vhost", self.args.name], capture_output=True, timeout=60)
                allowed = subprocess.run(["rabbitmqctl", "set_permissions", "-p", self.args.name, "guest", ".*", ".*", ".*"],
                                         capture_output=True, timeout=60)
                if allowed.returncode != 0:
                    self.log(f"RabbitMQ not ready ({(allowed.stderr or created.stderr).decode(errors='replace').strip()[:80]}); retrying")
                    time.sleep(3)

    def work_queues(self) -> list[str]:
        from bench.ceiling_celery import QUEUES

        return ["process", "enrichment", "finalize", *QUEUES]

    def no_consumers(self) -> None:
        """Nobody else consumes this run's queues (a worker of a dead run would take its messages)."""
        try:
            wait_until(lambda: not any(self.consumers(q) for q in self.work_queues()), timeout=30,
                           what="no consumers on the bench queues", interval=0.5)
        except TimeoutError:
            found = {q: self.consumers(q) for q in self.work_queues()}
            raise RuntimeError(f"processes this run did not start consume vhost {self.args.name}: {found}; stop them first")

    # ----------------------------------------------------------------------- processes
    def start_web(self, extra_env: dict | None = None, name: str = "web") -> tuple[procs.Proc, int]:
        """The Procfile's web command on a free loopback port; another port if someone took that one
        between our probe and uvicorn's bind (the port is only free when probed)."""
        for attempt in range(3):
            port = free_port()
            argv = list(self.commands["web"])
            argv[argv.index("--port") + 1] = str(port)
            if argv[0] == "uvicorn":
                argv[0] = str(Path(sys.executable).parent / "uvicorn")
            proc = procs.start(f"{name}-{port}", "web", argv, {**self.env, **(extra_env or {})}, self.logs)

            def healthy(proc=proc, port=port):
                if not proc.alive():
                    raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}: {proc.output()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                        return response.status == 200
                except Exception:
                    return False

            try:
                wait_until(healthy, timeout=self.sizes.start_timeout, what=f"{proc.name} /healthz", interval=0.2)
            except RuntimeError:
                if "address already in use" not in proc.output().lower() or attempt == 2:
                    raise
                procs.stop([proc])
                self.log(f"port {port} was taken before uvicorn bound it; another one")
                continue
            self.sampler.track("web", proc.pid)
            return proc, port
        raise AssertionError("unreachable")

    def start_relay(self, extra_env: dict | None = None, name: str = "relay") -> procs.Proc:
        argv = [PY if a == "python" else a for a in self.commands["relay"]]
        argv += ["--heartbeat-file", ""]
        proc = procs.start(name, "relay", argv, {**self.env, **(extra_env or {})}, self.logs)
        self.sampler.track("relay", proc.pid)
        return proc

    def worker_argv(self, kind: str, env: dict, *, app: str | None = None, queue: str | None = None, suffix: str = "") -> list[str]:
        """The Procfile's command for `kind` (its ${VAR:-default} read from `env`), optionally on another app/queue."""
        argv = [CELERY if a == "celery" else a for a in procs.procfile_commands(env)[kind]]
        if app:
            argv[argv.index("-A") + 1] = app
        if queue:
            argv[argv.index("-Q") + 1] = queue
        name_at = argv.index("-n") + 1
        argv[name_at] = argv[name_at].replace("@", f"{suffix}-{uuid.uuid4().hex[:4]}@")
        return argv + ["--without-gossip", "--without-mingle", "--without-heartbeat"]

    def start_pipeline(self, *, latency_ms: int = 0, enrichment_processes: int = 1, enrichment_concurrency: int | None = None,
                       kinds=PIPELINE_KINDS) -> list[procs.Proc]:
        env = {**self.env, "ENRICHMENT_LATENCY_MS": str(latency_ms)}
        if enrichment_concurrency:
            env["ENRICHMENT_CONCURRENCY"] = str(enrichment_concurrency)
        started = []
        for kind in kinds:
            for n in range(enrichment_processes if kind == "worker_enrichment" else 1):
                argv = self.worker_argv(kind, env, suffix=str(n))
                proc = procs.start(f"{kind}-{n}-{uuid.uuid4().hex[:4]}", kind, argv, env, self.logs)
                self.sampler.track(kind, proc.pid)
                started.append(proc)
        queues = {"worker_process": ("process", 1), "worker_enrichment": ("enrichment", enrichment_processes), "worker_finalize": ("finalize", 1)}
        self.wait_consumers(started, dict(queues[k] for k in kinds))
        return started

    def start_ceiling_workers(self) -> list[procs.Proc]:
        from bench.ceiling_celery import QUEUES

        env = {k: v for k, v in self.env.items() if k != "DJANGO_SETTINGS_MODULE"}
        started = []
        for kind, queue in zip(PIPELINE_KINDS, QUEUES):
            argv = self.worker_argv(kind, env, app="bench.ceiling_celery", queue=queue)
            proc = procs.start(f"ceiling-{queue}-{uuid.uuid4().hex[:4]}", f"ceiling_{kind}", argv, env, self.logs)
            self.sampler.track(f"ceiling_{kind}", proc.pid)
            started.append(proc)
        self.wait_consumers(started, {q: 1 for q in QUEUES})
        return started

    def stop(self, started: list[procs.Proc]) -> None:
        """Workers at the end of a phase: nothing is in flight any more (the phase waited for it), so a
        warm shutdown buys nothing, and a threads-pool worker takes up to 10 s to notice SIGTERM (its
        event loop sleeps in epoll until the next timer, up to 10 s): SIGKILL after WORKER_STOP_GRACE."""
        kinds = {p.kind for p in started}
        procs.stop(started, grace=WORKER_STOP_GRACE)
        for kind in kinds:
            self.sampler.forget(kind)

    # ----------------------------------------------------------------------- load
    def load(self, label: str, path: str, *, port: int, concurrency: int = 0, rate: float = 0.0,
             seconds: float | None = None, count: int | None = None, ids: bool = False) -> dict:
        argv = [PY, "-m", "bench.load", "--url", f"http://127.0.0.1:{port}{path}", "--token", TOKEN,
                "--duration", str(seconds if seconds is not None else self.sizes.phase_timeout), "--seed", str(len(self.results["load_runs"]))]
        argv += ["--concurrency", str(concurrency)] if concurrency else ["--rate", str(rate)]
        if count:
            argv += ["--count", str(count)]
        ids_file = self.logs / f"ids-{label}.txt"
        if ids:
            argv += ["--ids-file", str(ids_file)]
        done = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=self.sizes.phase_timeout + 60)
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        self.results["load_runs"][label] = result
        self.log(
            f"load {label}: {result['accepted']}/{result['sent']} accepted, {result['accept_rate']}/s, "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, generator {result['generator_cores']} cores"
        )
        if ids:
            result["ids"] = [line for line in ids_file.read_text().splitlines() if line]
        return result

    # ----------------------------------------------------------------------- pipeline measures
    def terminal_count(self) -> int:
        return self.sql("SELECT count(*) FROM orders_order WHERE status IN ('completed', 'failed')")[0][0]

    def wait_published(self) -> None:
        """Orders accepted while the relay catches up (fast path failed or relay-only publish)."""
        try:
            wait_until(
                lambda: self.sql("SELECT count(*) FROM orders_outboxmessage WHERE published_at IS NULL")[0][0] == 0,
                timeout=min(60.0, self.sizes.phase_timeout), what="outbox empty", interval=0.2,
            )
        except TimeoutError:
            self.log("warning: outbox not empty at the deadline")

    def drain(self, expected: int, started_at: float) -> dict:
        """Wait (bounded) until `expected` orders are terminal; the rate is read from the finalize
        timestamps between 10 % and 90 % of the orders, so worker start-up does not count."""
        status = self.wait_progress(self.terminal_count, expected, self.pipeline_waiting, "drain")
        timed_out = status != "done"
        wall = time.monotonic() - started_at
        times = [
            row[0] for row in self.sql(
                "SELECT extract(epoch FROM created_at) FROM orders_orderhistory "
                "WHERE stage = 'finalize' AND event = 'completed' ORDER BY created_at"
            )
        ]
        failed = self.sql("SELECT count(*) FROM orders_order WHERE status = 'failed'")[0][0]
        return {"expected": expected, "completed": len(times), "failed": failed, "timed_out": timed_out, "end": status,
                "wall_s": round(wall, 2), "rate": steady_rate(times, len(times) / wall if wall else 0.0)}

    def fill(self, label: str, port: int, orders: int) -> int:
        result = self.load(label, "/orders", port=port, concurrency=16, count=orders)
        self.wait_published()
        return result["accepted"]

    def pipeline_run(self, label: str, port: int, orders: int, *, latency_ms: int = 0, enrichment_processes: int = 1,
                     enrichment_concurrency: int | None = None, keep: bool = False):
        self.reset()
        self.sampler.begin()
        accepted = self.fill(f"{label}-fill", port, orders)
        started_at = time.monotonic()
        workers = self.start_pipeline(latency_ms=latency_ms, enrichment_processes=enrichment_processes,
                                      enrichment_concurrency=enrichment_concurrency)
        result = self.drain(accepted, started_at)
        result["cost"] = self.sampler.end()
        result.update(latency_ms=latency_ms, enrichment_processes=enrichment_processes,
                      enrichment_concurrency=enrichment_concurrency or int(self.env.get("ENRICHMENT_CONCURRENCY") or self.procfile_default("ENRICHMENT_CONCURRENCY")))
        self.results["phases"][label] = result
        self.log(f"{label}: {result['completed']} completed ({result['failed']} failed) at {result['rate']} orders/s, timed_out={result['timed_out']}")
        if keep:
            return result, workers
        self.stop(workers)
        return result, []

    def enrichment_run(self, label: str, port: int, orders: int, *, enrichment_processes: int = 1,
                       enrichment_concurrency: int | None = None) -> dict:
        """Process and finalize workers already running, no enrichment worker: the backlog is filled through
        the API and waits in the enrichment queue; then the enrichment worker(s) start at the provider's
        latency and the rate of completed orders is what the enrichment stage sustains."""
        self.reset()
        accepted = self.fill(f"{label}-fill", port, orders)
        try:
            wait_until(lambda: self.queue_depth("enrichment") >= accepted, timeout=self.sizes.phase_timeout,
                           what="backlog in the enrichment queue", interval=0.25)
        except TimeoutError:
            self.log("warning: the process stage did not move the whole backlog in time")
        self.sampler.begin()
        started_at = time.monotonic()
        latency = self.sizes.enrichment_latency_ms
        workers = self.start_pipeline(latency_ms=latency, enrichment_processes=enrichment_processes,
                                      enrichment_concurrency=enrichment_concurrency, kinds=("worker_enrichment",))
        result = self.drain(accepted, started_at)
        result["cost"] = self.sampler.end()
        result.update(latency_ms=latency, enrichment_processes=enrichment_processes,
                      enrichment_concurrency=enrichment_concurrency or int(self.env.get("ENRICHMENT_CONCURRENCY") or self.procfile_default("ENRICHMENT_CONCURRENCY")))
        self.results["phases"][label] = result
        self.log(f"{label}: {result['completed']} completed ({result['failed']} failed) at {result['rate']} orders/s, timed_out={result['timed_out']}")
        self.stop(workers)
        return result

    def procfile_default(self, var: str) -> str:
        import re

        match = re.search(r"\$\{" + var + r":-([^}]*)\}", (ROOT / "Procfile").read_text())
        return match.group(1) if match else ""

    def e2e(self, label: str, port: int) -> dict:
        """Open loop at e2e_rate against running workers; latency = history accepted → finalize completed."""
        result = self.load(label, "/orders", port=port, rate=self.sizes.e2e_rate, seconds=self.sizes.e2e_seconds, ids=True)
        ids = result.pop("ids")
        terminal = lambda: self.sql(  # noqa: E731
            "SELECT count(*) FROM orders_order WHERE id = ANY(%s::uuid[]) AND status IN ('completed','failed')", [ids])[0][0]
        self.wait_progress(terminal, len(ids), self.pipeline_waiting, f"{label} orders terminal")
        rows = self.sql(
            "SELECT extract(epoch FROM f.created_at - a.created_at) FROM orders_orderhistory a "
            "JOIN orders_orderhistory f ON f.order_id = a.order_id AND f.stage = 'finalize' AND f.event = 'completed' "
            "WHERE a.event = 'accepted' AND a.order_id = ANY(%s::uuid[])",
            [ids],
        )
        latencies = sorted(float(r[0]) for r in rows)
        summary = latency_summary(latencies, len(ids))
        summary["post"] = {k: result[k] for k in ("accept_rate", "p50_ms", "p99_ms", "generator_cores")}
        self.results["phases"][label] = summary
        self.log(f"{label}: {summary}")
        return summary

    # ----------------------------------------------------------------------- ceiling chain
    def ceiling_publish(self, count: int) -> None:
        """The bare-chain backlog: real Celery chain messages, published without waiting for confirms."""
        from bench.ceiling_celery import app
        from bench.ceiling_tasks import ceiling_chain

        with app.connection_for_write(transport_options={"confirm_publish": False}) as conn:
            producer = app.amqp.Producer(conn.default_channel, auto_declare=False)
            for n in range(count):
                ceiling_chain(n).apply_async(producer=producer)
        try:
            wait_until(lambda: self.queue_depth("bench.a") >= count, timeout=60, what="ceiling backlog", interval=0.2)
        except TimeoutError:
            raise RuntimeError(f"bench.a holds {self.queue_depth('bench.a')} of the {count} chains published; "
                               f"consumers on it: {self.consumers('bench.a')}") from None

    def ceiling_done(self) -> list[tuple[float, float]]:
        return [tuple(map(float, v.split())) for v in self.redis().lrange(self.done_key, 0, -1)]

    def ceiling_count(self) -> int:
        return self.redis().llen(self.done_key)

    def ceiling_run(self) -> None:
        n = self.sizes.drain_orders
        self.reset()
        self.ceiling_publish(n)
        self.sampler.begin()
        started_at = time.monotonic()
        workers = self.start_ceiling_workers()
        from bench.ceiling_celery import QUEUES

        waiting = lambda: self.ready_messages(list(QUEUES))  # noqa: E731
        status = self.wait_progress(self.ceiling_count, n, waiting, "bare-chain drain")
        wall = time.monotonic() - started_at
        cost = self.sampler.end()
        times = sorted(done for done, _ in self.ceiling_done())
        drained = {"expected": n, "completed": len(times), "timed_out": status != "done", "end": status, "wall_s": round(wall, 2),
                   "rate": steady_rate(times, len(times) / wall if wall else 0.0), "cost": cost}
        self.results["phases"]["ceiling_chain_drain"] = drained
        self.log(f"ceiling chain: {drained['completed']} chains at {drained['rate']}/s")
        # end-to-end latency of the bare chain at the same steady rate (publish with confirms, as the API does)
        from bench.ceiling_celery import app
        from bench.ceiling_tasks import ceiling_chain

        self.redis().delete(self.done_key)
        total = int(self.sizes.e2e_rate * self.sizes.e2e_seconds)
        start = time.monotonic()
        with app.connection_for_write() as conn:  # publisher confirms, as the product's publishers
            producer = app.amqp.Producer(conn.default_channel, auto_declare=False)
            for k in range(total):
                delay = start + k / self.sizes.e2e_rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                ceiling_chain(k, time.time()).apply_async(producer=producer)
        if self.wait_progress(self.ceiling_count, total, waiting, "bare-chain e2e") != "done":
            self.log(f"warning: queue depths {[self.queue_depth(q) for q in QUEUES]}, consumers {[self.consumers(q) for q in QUEUES]}")
        latencies = sorted(done - sent for done, sent in self.ceiling_done())
        self.results["phases"]["ceiling_chain_e2e"] = latency_summary(latencies, total)
        self.log(f"ceiling chain e2e: {self.results['phases']['ceiling_chain_e2e']}")
        self.stop(workers)

    # ----------------------------------------------------------------------- decoupling
    def flood(self, count: int) -> None:
        """`count` task-shaped messages (about the size of a real chain message) into the process queue."""
        from kombu import Exchange, Producer

        body = json.dumps([[str(uuid.uuid4())], {}, {"callbacks": None, "errbacks": None, "chord": None,
                           "chain": [{"task": "orders.finalize", "args": [], "kwargs": {}, "options": {"x": "y" * 200}},
                                     {"task": "enrichment.enrich", "args": [], "kwargs": {}, "options": {"x": "y" * 200}}]}])
        with self.broker() as conn:
            producer = Producer(conn.default_channel, exchange=Exchange("orders", type="topic"), auto_declare=False)
            for n in range(count):
                producer.publish(body, routing_key="order.created", content_type="application/json", content_encoding="utf-8",
                                 headers={"task": "bench.flood", "id": f"flood-{n}"}, delivery_mode=2)
        wait_until(lambda: self.queue_depth("process") >= count, timeout=self.sizes.phase_timeout, what="backlog in the queue", interval=0.25)

    # ----------------------------------------------------------------------- the run
    def run(self) -> dict:
        s = self.sizes
        self.results["started_at"] = datetime.now(timezone.utc).isoformat()
        self.results["machine"] = machine()
        self.prepare()
        self.results["versions"] = self.versions()
        self.results["settings"] = self.settings_snapshot()
        for kind, pids in procs.infra_pids().items():
            for pid in pids:
                self.sampler.track(kind, pid)
        if self.args.only == "ceiling":
            self.ceiling_run()
            return self.finish()
        web, port = self.start_web()
        self.web = [web]
        self.relay = self.start_relay()
        self.log(f"web on 127.0.0.1:{port}: {' '.join(self.commands['web'])}")
        # The other place for the publish: only in the relay, woken by NOTIFY (a second web + relay pair).
        relay_only = {"OUTBOX_PUBLISH_INLINE": "False"}
        web2, port2 = self.start_web(relay_only, name="web-relay-only")
        self.web.append(web2)
        self.relay2 = self.start_relay(relay_only, name="relay-listen")

        if self.args.only == "pipeline":
            self.ceiling_run()
            _, workers = self.pipeline_run("pipeline_drain", port, s.drain_orders, keep=True)
            self.stop(workers)
            return self.finish()

        if self.args.only == "e2e":
            self.reset()
            workers = self.start_pipeline()
            self.e2e("pipeline_e2e", port)
            self.stop(workers)
            return self.finish()

        # 1. API accept rate and p99, pipeline idle (no workers; queues purged between runs)
        if s.api_warmup:
            self.load("warmup-ceiling", "/bench/ceiling", port=port, concurrency=16, count=s.api_warmup)
            self.load("warmup-orders", "/orders", port=port, concurrency=16, count=s.api_warmup)
        for c in (16, 64):
            self.reset()
            self.load(f"api-ceiling-c{c}", "/bench/ceiling", port=port, concurrency=c, seconds=s.api_seconds)
            self.reset()
            self.load(f"api-orders-c{c}", "/orders", port=port, concurrency=c, seconds=s.api_seconds)
            self.reset()
            self.load(f"api-orders-relay-only-c{c}", "/orders", port=port2, concurrency=c, seconds=s.api_seconds)

        if self.args.only == "api":
            return self.finish()

        # 2. decoupling: POST p99 idle, then with the backlog waiting in the queues
        self.reset()
        idle = self.load("decouple-idle", "/orders", port=port, concurrency=16, seconds=s.decouple_seconds)
        self.reset()
        self.log(f"flooding the process queue with {s.backlog_messages} messages")
        self.flood(s.backlog_messages)
        depth = self.queue_depth("process")
        busy = self.load("decouple-backlog", "/orders", port=port, concurrency=16, seconds=s.decouple_seconds)
        self.results["phases"]["decoupling"] = {"backlog_messages": depth, "idle_p99_ms": idle["p99_ms"], "backlog_p99_ms": busy["p99_ms"]}

        # 3. bare chain ceiling: drain and steady-rate latency
        self.ceiling_run()

        # 4. pipeline drain at latency 0, then end-to-end latency on the same workers
        _, workers = self.pipeline_run("pipeline_drain", port, s.drain_orders, keep=True)
        self.wait_published()
        self.truncate()
        self.e2e("pipeline_e2e", port)
        self.wait_published()
        self.truncate()
        self.e2e("pipeline_e2e_relay_only", port2)
        enrichment = [w for w in workers if w.kind == "worker_enrichment"]
        self.stop(enrichment)
        workers = [w for w in workers if w not in enrichment]

        # 5. I/O-bound enrichment at 1000 ms with the Procfile's pool and concurrency (process/finalize keep running)
        self.enrichment_run("enrichment_io", port, s.io_orders, enrichment_concurrency=self.args.enrichment_concurrency or None)

        # 6. scale-out: 1, 2, 4 enrichment processes at 1000 ms
        for k in s.scale_processes:
            self.enrichment_run(f"scale_out_{k}", port, s.scale_orders, enrichment_processes=k,
                                enrichment_concurrency=self.args.scale_concurrency)
        self.stop(workers)
        self.results["figures"] = figures(self.results, s)
        return self.finish()

    def finish(self) -> dict:
        """Stop the web servers and relays this run started; record when and how long."""
        procs.stop(self.web + [self.relay, self.relay2])
        self.results["finished_at"] = datetime.now(timezone.utc).isoformat()
        self.results["duration_s"] = round(time.monotonic() - self.t0, 1)
        return self.results

    # ----------------------------------------------------------------------- record
    def versions(self) -> dict:
        def dist(name):
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                return None

        found = {"python": platform.python_version()}
        for name in ("django", "djangorestframework", "celery", "kombu", "amqp", "uvicorn", "psycopg", "psycopg-pool", "redis",
                     "channels", "channels-redis", "aiohttp", "psutil"):
            found[name] = dist(name)
        try:
            found["rabbitmq"] = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception as exc:
            found["rabbitmq"] = f"unknown ({exc})"
        found["postgresql"] = self.sql("SHOW server_version")[0][0]
        found["redis_server"] = self.redis().info("server").get("redis_version")
        try:
            found["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout
            found["git_dirty_files"] = [line[3:] for line in dirty.splitlines()]
        except Exception:
            pass
        return found

    def settings_snapshot(self) -> dict:
        code = (
            "import json, django; django.setup(); from django.conf import settings as s; "
            "print(json.dumps({'CONN_MAX_AGE': s.DATABASES['default'].get('CONN_MAX_AGE'), "
            "'CELERY_BROKER_TRANSPORT_OPTIONS': s.CELERY_BROKER_TRANSPORT_OPTIONS, "
            "'CELERY_WORKER_PREFETCH_MULTIPLIER': s.CELERY_WORKER_PREFETCH_MULTIPLIER, "
            "'CELERY_TASK_ACKS_LATE': s.CELERY_TASK_ACKS_LATE, "
            "'CELERY_WORKER_SEND_TASK_EVENTS': s.CELERY_WORKER_SEND_TASK_EVENTS, "
            "'CELERY_TASK_SEND_SENT_EVENT': getattr(s, 'CELERY_TASK_SEND_SENT_EVENT', False), "
            "'OUTBOX_GRACE_SECONDS': s.OUTBOX_GRACE_SECONDS, 'OUTBOX_POLL_SECONDS': s.OUTBOX_POLL_SECONDS, "
            "'OUTBOX_PUBLISH_INLINE': getattr(s, 'OUTBOX_PUBLISH_INLINE', True), "
            "'OUTBOX_BATCH_SIZE': s.OUTBOX_BATCH_SIZE}, default=str))"
        )
        done = subprocess.run([PY, "-c", code], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)
        snapshot = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-500:]}
        snapshot["procfile"] = {k: " ".join(v) for k, v in self.commands.items() if k != "flower"}
        snapshot["sizes"] = asdict(self.sizes)
        snapshot["smoke"] = self.args.smoke
        snapshot["env_overrides"] = list(self.args.env)
        snapshot["scale_concurrency_per_process"] = self.args.scale_concurrency
        snapshot["database"], snapshot["vhost"], snapshot["redis_db"] = self.args.name, self.args.name, self.args.redis_db
        return snapshot


# --------------------------------------------------------------------------- figures
def steady_rate(times: list[float], fallback: float) -> float:
    """Completions per second between the 10th and the 90th percentile of the finish times."""
    times = sorted(float(t) for t in times)
    if len(times) < 10:
        return round(fallback, 2)
    lo, hi = int(len(times) * 0.1), int(len(times) * 0.9)
    span = times[hi] - times[lo]
    return round((hi - lo) / span, 2) if span > 0 else round(fallback, 2)


def latency_summary(latencies: list[float], expected: int) -> dict:
    from bench.load import percentile

    ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
    return {"orders": expected, "measured": len(latencies), "p50_ms": ms(percentile(latencies, 50)),
            "p90_ms": ms(percentile(latencies, 90)), "p99_ms": ms(percentile(latencies, 99)),
            "max_ms": ms(latencies[-1] if latencies else None)}


def ratio(value, ceiling):
    if value is None or not ceiling:
        return None
    return round(value / ceiling, 3)


def figure(value, ceiling, unit, target: str, met, note: str = "", ceiling_name: str = "") -> dict:
    return {"value": value, "ceiling": ceiling, "ceiling_name": ceiling_name, "ratio": ratio(value, ceiling),
            "unit": unit, "target": target, "met": met, "note": note}


def per_1000(cost: dict, completed: int) -> dict:
    if not completed:
        return {}
    return {kind: {"cpu_s_per_1000": round(v["cpu_s"] / completed * 1000, 2), "peak_rss_mb": v["peak_rss_mb"]} for kind, v in cost.items()}


def figures(r: dict, s: Sizes) -> dict:
    runs, phases = r["load_runs"], r["phases"]
    out = {}
    for c in (16, 64):
        p, ceil = runs[f"api-orders-c{c}"], runs[f"api-ceiling-c{c}"]
        rt = ratio(p["accept_rate"], ceil["accept_rate"])
        out[f"api_accept_rate_c{c}"] = figure(p["accept_rate"], ceil["accept_rate"], "req/s", ">= 0.8x", rt is not None and rt >= 0.8,
                                              ceiling_name="bare DRF insert view, same server")
    p, ceil = runs["api-orders-c16"], runs["api-ceiling-c16"]
    out["api_p99_c16"] = figure(p["p99_ms"], ceil["p99_ms"], "ms", "<= 50 ms", p["p99_ms"] is not None and p["p99_ms"] <= 50,
                                ceiling_name="bare DRF insert view p99")
    for c in (16, 64):
        p, ceil = runs[f"api-orders-relay-only-c{c}"], runs[f"api-ceiling-c{c}"]
        rt = ratio(p["accept_rate"], ceil["accept_rate"])
        out[f"api_accept_rate_c{c}_relay_only"] = figure(p["accept_rate"], ceil["accept_rate"], "req/s", ">= 0.8x", rt is not None and rt >= 0.8,
                                                         note="OUTBOX_PUBLISH_INLINE=False", ceiling_name="bare DRF insert view, same server")
    p, ceil = runs["api-orders-relay-only-c16"], runs["api-ceiling-c16"]
    out["api_p99_c16_relay_only"] = figure(p["p99_ms"], ceil["p99_ms"], "ms", "<= 50 ms", p["p99_ms"] is not None and p["p99_ms"] <= 50,
                                           note="OUTBOX_PUBLISH_INLINE=False", ceiling_name="bare DRF insert view p99")
    chain = phases["ceiling_chain_drain"]["rate"]
    drain = phases["pipeline_drain"]
    rt = ratio(drain["rate"], chain)
    out["pipeline_throughput"] = figure(drain["rate"], chain, "orders/s", ">= 0.8x", rt is not None and rt >= 0.8,
                                        note=f"backlog {drain['expected']}, {drain['failed']} failed", ceiling_name="bare 3-task chain, no DB")
    io = phases["enrichment_io"]
    rt = ratio(io["rate"], drain["rate"])
    out["enrichment_io_vs_latency0"] = figure(io["rate"], drain["rate"], "orders/s", ">= 0.8x", rt is not None and rt >= 0.8,
                                              note=f"latency {io['latency_ms']} ms, threads x{io['enrichment_concurrency']}",
                                              ceiling_name="pipeline at latency 0")
    rt = ratio(io["rate"], chain)
    out["enrichment_io_vs_chain"] = figure(io["rate"], chain, "orders/s", ">= 0.8x", rt is not None and rt >= 0.8, ceiling_name="bare 3-task chain")
    dec = phases["decoupling"]
    rt = ratio(dec["backlog_p99_ms"], dec["idle_p99_ms"])
    out["decoupling_p99"] = figure(dec["backlog_p99_ms"], dec["idle_p99_ms"], "ms", "<= 1.2x", rt is not None and rt <= 1.2,
                                   note=f"{dec['backlog_messages']} messages waiting", ceiling_name="POST p99 idle")
    e2e, ce2e = phases["pipeline_e2e"], phases["ceiling_chain_e2e"]
    out["e2e_latency_p50"] = figure(e2e["p50_ms"], ce2e["p50_ms"], "ms", "<= 50 ms", e2e["p50_ms"] is not None and e2e["p50_ms"] <= 50,
                                    note=f"{s.e2e_rate:g} orders/s", ceiling_name="bare chain p50 at the same rate")
    out["e2e_latency_p99"] = figure(e2e["p99_ms"], ce2e["p99_ms"], "ms", "<= 250 ms", e2e["p99_ms"] is not None and e2e["p99_ms"] <= 250,
                                    note=f"{s.e2e_rate:g} orders/s", ceiling_name="bare chain p99 at the same rate")
    e2e_r = phases["pipeline_e2e_relay_only"]
    out["e2e_latency_p50_relay_only"] = figure(e2e_r["p50_ms"], ce2e["p50_ms"], "ms", "<= 50 ms", e2e_r["p50_ms"] is not None and e2e_r["p50_ms"] <= 50,
                                               note="OUTBOX_PUBLISH_INLINE=False", ceiling_name="bare chain p50 at the same rate")
    out["e2e_latency_p99_relay_only"] = figure(e2e_r["p99_ms"], ce2e["p99_ms"], "ms", "<= 250 ms", e2e_r["p99_ms"] is not None and e2e_r["p99_ms"] <= 250,
                                               note="OUTBOX_PUBLISH_INLINE=False", ceiling_name="bare chain p99 at the same rate")
    # cost: worker CPU per 1000 completed orders vs the bare chain's workers per 1000 chains
    pipeline_cost = per_1000(drain["cost"], drain["completed"])
    chain_cost = per_1000(phases["ceiling_chain_drain"]["cost"], phases["ceiling_chain_drain"]["completed"])
    workers_cpu = sum(pipeline_cost.get(k, {}).get("cpu_s_per_1000", 0) for k in PIPELINE_KINDS)
    chain_cpu = sum(chain_cost.get(f"ceiling_{k}", {}).get("cpu_s_per_1000", 0) for k in PIPELINE_KINDS)
    out["cost_worker_cpu_per_1000"] = figure(round(workers_cpu, 2), round(chain_cpu, 2), "CPU s", "reported", None,
                                             ceiling_name="bare chain workers")
    r["cost"] = {"pipeline_per_1000_orders": pipeline_cost, "bare_chain_per_1000_chains": chain_cost}
    base = phases.get(f"scale_out_{s.scale_processes[0]}", {}).get("rate")
    for k in s.scale_processes:
        ph = phases[f"scale_out_{k}"]
        out[f"scale_out_{k}"] = figure(ph["rate"], base, "orders/s", "reported", None,
                                       note=f"{k} x threads {ph['enrichment_concurrency']}, latency {ph['latency_ms']} ms",
                                       ceiling_name=f"{s.scale_processes[0]} process")
    gen = {label: {"cores": run["generator_cores"], "cpu_s": run["generator_cpu_s"]} for label, run in runs.items()}
    r["generator_cpu"] = gen
    return out


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "cpu_model": model,
            "platform": platform.platform(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the suite works, measures nothing")
    parser.add_argument("--name", default=None, help="database and vhost name (default orders_bench, orders_bench_smoke)")
    parser.add_argument("--redis-db", type=int, default=12)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--logs", default="", help="process logs (default /tmp/<name>-logs-<stamp>)")
    parser.add_argument("--enrichment-concurrency", type=int, default=0, help="threads of the enrichment worker (default: Procfile)")
    parser.add_argument("--scale-concurrency", type=int, default=0,
                        help="threads per enrichment process in the scale-out runs (default 16; 4 with --smoke, which measures "
                             "nothing and should not take 64 of the shared PostgreSQL's connection slots)")
    parser.add_argument("--size", action="append", default=[], help="override one size, e.g. drain_orders=1000 (recorded)")
    parser.add_argument("--only", choices=["api", "ceiling", "pipeline", "e2e"], default=None,
                        help="only the API phase, the bare-chain ceiling, the ceiling and the pipeline drain, or the end-to-end latency (quick comparisons); no report files")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every process (e.g. WEB_CONCURRENCY=2)")
    parser.add_argument("--lock-wait", type=float, default=900.0,
                        help="seconds to wait for another run of the same name to finish (one run per name at a time)")
    args = parser.parse_args(argv)
    args.name = args.name or ("orders_bench_smoke" if args.smoke else "orders_bench")
    args.scale_concurrency = args.scale_concurrency or (4 if args.smoke else 16)
    sizes = SMOKE() if args.smoke else Sizes()
    for pair in args.size:
        key, _, value = pair.partition("=")
        if not hasattr(sizes, key) or key == "scale_processes":
            parser.error(f"unknown size {key}")
        setattr(sizes, key, type(getattr(sizes, key))(value))
    bench = Bench(args, sizes)

    def stop(signum, frame):  # SIGTERM skips atexit: turn it into an exit that runs the finally below
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        results = bench.run()
    finally:
        procs.stop_started()
        bench.sampler.close()
        if bench._conn is not None:
            bench._conn.close()
    if args.only:
        print(json.dumps(results["load_runs"] if args.only == "api" else results["phases"], indent=1))
        return 0
    from bench import report

    paths = report.write(results, Path(args.out), bench.stamp)
    print(report.markdown(results))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
