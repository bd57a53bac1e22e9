"""The benchmark suite, one command: `python -m bench.run [--smoke]` (or `make bench`).

Measures the performance issue's targets against the real processes of the Procfile (the web server,
every Celery worker, the relay, the archiver) on its own database, RabbitMQ vhost and Redis db, each next to
a ceiling measured in the same run, and writes bench/results/<timestamp>.json, latest.json, latest.md and
latest.png. See bench/README.md for what each figure means.
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
from bench.load import ZIPF_SKUS, zipf_sku
from devtools.procs import wait_until
from orders_project.broker import STAGES

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CELERY = str(Path(sys.executable).parent / "celery")
# Production settings refuse short or placeholder secrets (orders_project/settings.py, "Security").
TOKEN = "bench-token-Hc4sW9pLq2Xv7Nz3Rt6Ym1Kd8"
WORKER_STOP_GRACE = 1.0  # seconds between SIGTERM and SIGKILL for the workers of a finished phase
ONLY = ("api", "ceiling", "pipeline", "zipf", "e2e", "sustained")
STAGE_QUEUES = tuple(stage.queue for stage in STAGES)  # process, enrichment, finalize
ENRICHMENT_QUEUE = "enrichment"
SHARED = " (shared)"  # suffix of the machine's servers' kinds (procs.infra_pids)
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
    sustained_seconds: float = 60.0  # each step of the sustained phase offers its rate this long (open loop)
    sustained_warmup_seconds: float = 5.0  # unmeasured, at the first step's rate, before the first step
    sustained_rates: tuple = (25.0, 50.0, 75.0, 100.0, 150.0)  # orders/s, one step each
    sustained_reference_rate: float = 50.0  # the step whose p50 and CPU per order are figures (nearest step)
    sustained_p99_target_ms: float = 250.0  # "highest rate whose POST->completed p99 <= this"
    sustained_skip_p99_ms: float = 5000.0  # a step with p99 above this skips the higher rates (0: never skip)
    sustained_catalog: str = "hot"  # hot | zipf
    zipf_s: float = 1.1  # Zipf exponent of the 1,000-SKU catalog drain
    phase_timeout: float = 300.0  # no wait in the bench lasts longer than this
    stall_seconds: float = 30.0  # a drain with no progress this long, and nothing left in its queues, is over
    start_timeout: float = 120.0  # a web server or worker not ready after this long fails the run


SMOKE = lambda: Sizes(  # noqa: E731
    api_seconds=1.0, api_warmup=0, drain_orders=40, backlog_messages=1000, decouple_seconds=1.0,
    e2e_rate=50.0, e2e_seconds=0.6, io_orders=24, scale_orders=12, sustained_seconds=3.0, sustained_warmup_seconds=0.0,
    sustained_rates=(10.0, 20.0),
    phase_timeout=60.0, stall_seconds=15.0,
)


# --------------------------------------------------------------------------- environment
def bench_env(args) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "PYTEST", "COV_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings_bench",
        DJANGO_DEBUG="False",
        DJANGO_SECRET_KEY="bench-secret-key-Jf5rT8wQ1zN4xC7vB2mL6kP9hG3dS0aYq",
        DJANGO_HTTPS="false",  # plain HTTP on 127.0.0.1: no SSL redirect
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


def enrichment_split(workers: list[procs.WorkerSpec]) -> tuple[list[procs.WorkerSpec], list[procs.WorkerSpec]]:
    """The workers without the enrichment queue (the rest of the pipeline), and those that consume it, on
    the enrichment queue only (same pool and concurrency). With the Procfile's dedicated workers that is
    every worker but worker_enrichment, and worker_enrichment; with one worker on all the queues, that
    worker on process+finalize, and the same worker on enrichment."""
    rest, enrich = [], []
    for spec in workers:
        others = [q for q in spec.queues if q != ENRICHMENT_QUEUE]
        if others:
            rest.append(spec if len(others) == len(spec.queues) else spec.with_queues(others))
        if ENRICHMENT_QUEUE in spec.queues:
            enrich.append(spec.with_queues([ENRICHMENT_QUEUE]))
    return rest, enrich


def ceiling_specs(workers: list[procs.WorkerSpec]) -> list[procs.WorkerSpec]:
    """The workers, each on the bare chain's queues instead of the stages' (process -> bench.a,
    enrichment -> bench.b, finalize -> bench.c): the same topology, pools and concurrencies; a queue
    that is not a stage's is dropped, and so is a worker left without any."""
    from bench.ceiling_celery import QUEUES

    mapping = dict(zip(STAGE_QUEUES, QUEUES))
    specs = []
    for spec in workers:
        queues = [mapping[q] for q in spec.queues if q in mapping]
        if queues:
            specs.append(spec.with_queues(queues))
    return specs


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
        self.servers: list[procs.Proc] = []  # web servers, relays, the archiver: stopped by finish()
        self.relay: procs.Proc | None = None
        self.ab: list[procs.Proc] = []  # the A/B web + relay pair while it runs
        self.ab_port: int | None = None
        self.publish = self.ab_publish = self.ab_slug = self.ab_key = ""
        self.ab_env: dict = {}
        self.commands = procs.procfile_commands(self.env)
        self.done_key = self.env["BENCH_CEILING_DONE_KEY"]
        self._conn = None
        self.t0 = time.monotonic()

    # ----------------------------------------------------------------------- helpers
    def log(self, message: str) -> None:
        # stderr: stdout carries the results (the Markdown tables, or the JSON of --only)
        print(f"[bench {time.monotonic() - self.t0:7.1f}s] {message}", file=sys.stderr, flush=True)

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
        self.seed_zipf_catalog()
        from bench import ceiling_celery

        with self.broker() as conn:
            ceiling_celery.declare(conn)
        self.no_consumers()
        self.reset(relays_running=False)  # nothing of this run publishes yet: no outbox to wait for

    def seed_zipf_catalog(self) -> None:
        """The 1,000 extra SKUs of the Zipf drain (Z0000..Z0999, bench database only); reset() refills their stock."""
        self.sql(
            "INSERT INTO orders_product (sku, name, price, stock, reserved) "
            "SELECT %s || lpad(g::text, 4, '0'), 'Bench Zipf item ' || g, 1 + (g %% 50), 1000000, 0 "
            "FROM generate_series(0, %s) AS g ON CONFLICT (sku) DO NOTHING",
            [zipf_sku(0)[0], ZIPF_SKUS - 1],
        )

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
    def bin(self, argv: list[str]) -> list[str]:
        """argv with its program (gunicorn, uvicorn, celery, python) taken from this virtualenv."""
        argv = list(argv)
        if argv[0] == "python":
            argv[0] = PY
        elif (Path(sys.executable).parent / argv[0]).exists():
            argv[0] = str(Path(sys.executable).parent / argv[0])
        return argv

    def start_server(self, name: str, kind: str, command, env: dict) -> tuple[procs.Proc, int]:
        """A web server on a free loopback port (`command(port)` gives its argv), ready when /healthz answers
        200 and its process tree stopped burning CPU (every worker of a pre-forking server has loaded the
        app). Another port if someone took that one between our probe and the server's bind."""
        for attempt in range(3):
            port = free_port()
            argv = self.bin(command(port))
            proc = procs.start(f"{name}-{port}", kind, argv, {**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port)}, self.logs)

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
                output = proc.output().lower()
                taken = any(m in output for m in ("address already in use", "connection in use", "can't connect to"))
                if not taken or attempt == 2:
                    raise
                procs.stop([proc])
                self.log(f"port {port} was taken before {name} bound it; another one")
                continue
            self.settle(proc)
            self.sampler.track(kind, proc.pid)
            return proc, port
        raise AssertionError("unreachable")

    def settle(self, proc: procs.Proc, quiet_cpu: float = 0.03, interval: float = 0.3) -> None:
        """Until the process tree used less than `quiet_cpu` CPU seconds in `interval` (bounded)."""
        deadline = time.monotonic() + min(30.0, self.sizes.start_timeout)
        last = None
        while time.monotonic() < deadline:
            try:
                root = psutil.Process(proc.pid)
                tree = [root, *root.children(recursive=True)]
                cpu = sum(sum(p.cpu_times()[:2]) for p in tree)
            except psutil.Error:
                return
            if last is not None and cpu - last < quiet_cpu:
                return
            last = cpu
            time.sleep(interval)

    def start_web(self, extra_env: dict | None = None, name: str = "web", kind: str = "web") -> tuple[procs.Proc, int]:
        """The Procfile's web command (its ${VAR:-default} read from the run's environment), on loopback."""
        env = {**self.env, **(extra_env or {})}

        def command(port):
            return procs.serve_on(procs.procfile_commands({**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port)})["web"],
                                  "127.0.0.1", port)

        return self.start_server(name, kind, command, env)

    def fast_ceiling_argv(self, port: int) -> list[str]:
        workers = 2 * (os.cpu_count() or 1) + 1
        # --preload: Django is imported once, before the fork (a faster start; each request runs the same)
        return ["gunicorn", "bench.wsgi_ceiling_fast:application", "--worker-class", "sync", "--workers", str(workers),
                "--preload", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]

    def start_fast_ceiling(self) -> tuple[procs.Proc, int]:
        """The bare insert served the fastest way this stack allows: gunicorn sync x (2 x cores + 1), no
        middleware, a persistent connection per worker (bench/settings_ceiling_fast.py)."""
        env = {**self.env, "DJANGO_SETTINGS_MODULE": "bench.settings_ceiling_fast"}
        return self.start_server("ceiling-fast", "ceiling_fast_web", self.fast_ceiling_argv, env)

    def start_loop(self, kind: str, extra_env: dict | None = None, name: str | None = None, sample_kind: str | None = None) -> procs.Proc:
        """The Procfile's relay or archiver (a manage.py loop), without its liveness heartbeat file."""
        env = {**self.env, **(extra_env or {})}
        argv = self.bin(procs.procfile_commands(env)[kind]) + ["--heartbeat-file", ""]
        proc = procs.start(name or kind, sample_kind or kind, argv, env, self.logs)
        self.settle(proc)  # its start-up (Django, connections) is not the CPU of what it then does
        self.sampler.track(sample_kind or kind, proc.pid)
        return proc

    def start_relay(self, extra_env: dict | None = None, name: str = "relay", kind: str = "relay") -> procs.Proc:
        return self.start_loop("relay", extra_env, name=name, sample_kind=kind)

    def pipeline_env(self, latency_ms: int = 0) -> dict:
        return {**self.env, "ENRICHMENT_LATENCY_MS": str(latency_ms)}

    def workers(self, env: dict) -> list[procs.WorkerSpec]:
        """Every worker of the Procfile (entries named worker*), expanded from `env`."""
        return procs.procfile_workers(env)

    def enrichment_split(self, env: dict) -> tuple[list[procs.WorkerSpec], list[procs.WorkerSpec]]:
        return enrichment_split(self.workers(env))

    def start_workers(self, specs: list[procs.WorkerSpec], env: dict, *, app: str | None = None, kind_prefix: str = "") -> list[procs.Proc]:
        """One Celery worker per spec (its own node name); ready when each of their queues has as many
        consumers as workers started on it (the Procfile's log level hides 'ready')."""
        started, expected = [], {}
        for spec in specs:
            tag = uuid.uuid4().hex[:6]
            argv = [CELERY if a == "celery" else a for a in spec.argv]
            if app:
                argv = procs.set_option(argv, ("-A", "--app"), app)
            node = procs.option(argv, "-n", "--hostname") or f"{spec.name}@%h"
            argv = procs.set_option(argv, ("-n", "--hostname"), node.replace("@", f"-{tag}@") if "@" in node else f"{node}-{tag}")
            argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
            kind = f"{kind_prefix}{spec.name}"
            proc = procs.start(f"{kind}-{tag}", kind, argv, env, self.logs)
            self.sampler.track(kind, proc.pid)
            started.append(proc)
            for queue in spec.queues:
                expected[queue] = expected.get(queue, 0) + 1
        if started:
            self.wait_consumers(started, expected)
        return started

    def start_pipeline(self, *, latency_ms: int = 0, specs: list[procs.WorkerSpec] | None = None) -> list[procs.Proc]:
        env = self.pipeline_env(latency_ms)
        return self.start_workers(self.workers(env) if specs is None else specs, env)

    def ceiling_specs(self, env: dict) -> list[procs.WorkerSpec]:
        return ceiling_specs(self.workers(env))

    def start_ceiling_workers(self) -> list[procs.Proc]:
        env = {k: v for k, v in self.env.items() if k != "DJANGO_SETTINGS_MODULE"}
        return self.start_workers(self.ceiling_specs(env), env, app="bench.ceiling_celery", kind_prefix="ceiling_")

    def stop(self, started: list[procs.Proc]) -> None:
        """Workers at the end of a phase: nothing is in flight any more (the phase waited for it), so a
        warm shutdown buys nothing, and a threads-pool worker takes up to 10 s to notice SIGTERM (its
        event loop sleeps in epoll until the next timer, up to 10 s): SIGKILL after WORKER_STOP_GRACE."""
        started = [p for p in started if p is not None]
        procs.stop(started, grace=WORKER_STOP_GRACE)
        for p in started:
            self.sampler.forget(p.kind, [p.pid])

    def stop_servers(self, servers: list[procs.Proc]) -> None:
        """Web servers and relays this run started (the A/B pair, the fast ceiling): gone for good."""
        servers = [p for p in servers if p is not None]
        procs.stop(servers)
        for p in servers:
            self.sampler.forget(p.kind, [p.pid])
            if p in self.servers:
                self.servers.remove(p)

    # ----------------------------------------------------------------------- load
    def load(self, label: str, path: str, *, port: int, concurrency: int = 0, rate: float = 0.0,
             seconds: float | None = None, count: int | None = None, ids: bool = False, catalog: str = "hot") -> dict:
        argv = [PY, "-m", "bench.load", "--url", f"http://127.0.0.1:{port}{path}", "--token", TOKEN,
                "--duration", str(seconds if seconds is not None else self.sizes.phase_timeout), "--seed", str(len(self.results["load_runs"])),
                "--catalog", catalog, "--zipf-s", str(self.sizes.zipf_s), "--zipf-skus", str(ZIPF_SKUS)]
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
        result["path"] = path
        self.results["load_runs"][label] = result
        errors = f", {result['errors_total']} errors ({result['statuses']}, {result['errors']})" if result["errors_total"] else ""
        self.log(
            f"load {label}: {result['accepted']}/{result['sent']} accepted, {result['accept_rate']}/s, "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms{errors}, generator {result['generator_cores']} cores"
        )
        if ids:
            result = {**result, "ids": [line for line in ids_file.read_text().splitlines() if line]}
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

    def fill(self, label: str, port: int, orders: int, catalog: str = "hot") -> int:
        result = self.load(label, "/orders", port=port, concurrency=16, count=orders, catalog=catalog)
        self.wait_published()
        return result["accepted"]

    def pipeline_run(self, label: str, port: int, orders: int, *, catalog: str = "hot", keep: bool = False):
        """The latency-0 drain: `orders` POSTed with no worker running, then every Procfile worker starts."""
        self.reset()
        self.sampler.begin()
        accepted = self.fill(f"{label}-fill", port, orders, catalog)
        started_at = time.monotonic()
        workers = self.start_pipeline(latency_ms=0)
        result = self.drain(accepted, started_at)
        result["cost"] = self.sampler.end()
        result.update(latency_ms=0, catalog=catalog, zipf_s=self.sizes.zipf_s if catalog == "zipf" else None,
                      skus=ZIPF_SKUS if catalog == "zipf" else 5)
        self.results["phases"][label] = result
        self.log(f"{label}: {result['completed']} completed ({result['failed']} failed) at {result['rate']} orders/s, end={result['end']}")
        if keep:
            return result, workers
        self.stop(workers)
        return result, []

    def enrichment_run(self, label: str, port: int, orders: int, *, processes: int = 1, concurrency: int | None = None,
                       threads_only: bool = False) -> dict:
        """The rest of the pipeline already running, no worker on the enrichment queue: the backlog is
        filled through the API and waits in the enrichment queue; then `processes` copies of the Procfile's
        enrichment consumer(s) start at the provider's latency (its pool; its concurrency, or `concurrency`
        -- with `threads_only`, only for a threads/gevent/eventlet pool), and the rate of completed orders
        is what the enrichment stage sustains."""
        self.reset()
        accepted = self.fill(f"{label}-fill", port, orders)
        try:
            wait_until(lambda: self.queue_depth(ENRICHMENT_QUEUE) >= accepted, timeout=self.sizes.phase_timeout,
                       what="backlog in the enrichment queue", interval=0.25)
        except TimeoutError:
            self.log("warning: the process stage did not move the whole backlog in time")
        latency = self.sizes.enrichment_latency_ms
        env = self.pipeline_env(latency)
        _, enrich = self.enrichment_split(env)
        if concurrency:
            enrich = [s.with_concurrency(concurrency) if (not threads_only or s.pool in procs.THREAD_POOLS) else s for s in enrich]
        specs = [spec for spec in enrich for _ in range(processes)]
        self.sampler.begin()
        started_at = time.monotonic()
        workers = self.start_workers(specs, env)
        result = self.drain(accepted, started_at)
        result["cost"] = self.sampler.end()
        result.update(latency_ms=latency, enrichment_processes=processes,
                      enrichment_pool=enrich[0].pool if enrich else None,
                      enrichment_concurrency=enrich[0].concurrency if enrich else None)
        self.results["phases"][label] = result
        self.log(f"{label}: {result['completed']} completed ({result['failed']} failed) at {result['rate']} orders/s, end={result['end']}")
        self.stop(workers)
        return result

    def open_loop(self, label: str, port: int, rate: float, seconds: float, *, catalog: str = "hot") -> dict:
        """Open loop at `rate` for `seconds` against running workers, then wait (bounded) until every
        accepted order is terminal; latency per order = history `accepted` -> finalize `completed`."""
        result = self.load(label, "/orders", port=port, rate=rate, seconds=seconds, ids=True, catalog=catalog)
        ids = result.pop("ids")
        terminal = lambda: self.sql(  # noqa: E731
            "SELECT count(*) FROM orders_order WHERE id = ANY(%s::uuid[]) AND status IN ('completed','failed')", [ids])[0][0]
        end = self.wait_progress(terminal, len(ids), self.pipeline_waiting, f"{label} orders terminal")
        rows = self.sql(
            "SELECT extract(epoch FROM f.created_at - a.created_at) FROM orders_orderhistory a "
            "JOIN orders_orderhistory f ON f.order_id = a.order_id AND f.stage = 'finalize' AND f.event = 'completed' "
            "WHERE a.event = 'accepted' AND a.order_id = ANY(%s::uuid[])",
            [ids],
        )
        latencies = sorted(float(r[0]) for r in rows)
        summary = latency_summary(latencies, len(ids))
        summary["failed"] = self.sql("SELECT count(*) FROM orders_order WHERE id = ANY(%s::uuid[]) AND status = 'failed'", [ids])[0][0]
        summary["end"] = end
        summary["post"] = {k: result[k] for k in ("sent", "accepted", "accept_rate", "p50_ms", "p99_ms", "max_ms", "errors_total",
                                                  "non_2xx", "connection_errors", "generator_cores")}
        return summary

    def warm(self, port: int, path: str, label: str) -> None:
        """`api_warmup` requests at c=16 to a freshly started web server (each worker's first requests
        load the URLconf and open its database and broker connections); with workers running, wait until
        the orders it made are terminal (bounded)."""
        if not self.sizes.api_warmup:
            return
        accepted = self.load(label, path, port=port, concurrency=16, count=self.sizes.api_warmup)["accepted"]
        if path == "/orders":
            self.wait_progress(self.terminal_count, accepted, self.pipeline_waiting, f"{label} orders terminal")

    def e2e(self, label: str, port: int) -> dict:
        """Open loop at e2e_rate (workers at latency 0)."""
        summary = self.open_loop(label, port, self.sizes.e2e_rate, self.sizes.e2e_seconds)
        summary["publish"] = self.publish_of(port)
        self.results["phases"][label] = summary
        self.log(f"{label}: {summary}")
        return summary

    def sustained(self, port: int) -> dict:
        """The whole system as the Procfile defines it (web, every worker, relay, archiver; already running),
        provider latency 0, offered a fixed rate per step (open loop, `sustained_seconds`); per step the
        POST -> completed latencies and the CPU per completed order of every process kind, the machine's
        PostgreSQL/RabbitMQ/Redis included. Each step starts from empty tables and queues, after the one
        before it is terminal."""
        s = self.sizes
        steps, skip = [], None
        if s.sustained_warmup_seconds and s.sustained_rates:
            self.reset()
            self.open_loop("sustained-warmup", port, float(s.sustained_rates[0]), s.sustained_warmup_seconds, catalog=s.sustained_catalog)
        for rate in s.sustained_rates:
            rate = float(rate)
            if skip:
                steps.append({"rate": rate, "skipped": skip})
                self.log(f"sustained {rate:g}/s skipped: {skip}")
                continue
            self.reset()
            self.sampler.begin()
            started = time.monotonic()
            summary = self.open_loop(f"sustained-{rate:g}", port, rate, s.sustained_seconds, catalog=s.sustained_catalog)
            cost = self.sampler.end()
            post = summary["post"]
            completed = summary["measured"]
            step = {
                "rate": rate, "seconds": s.sustained_seconds, "offered": int(round(rate * s.sustained_seconds)),
                "sent": post["sent"], "accepted": post["accepted"], "completed": completed, "failed": summary["failed"],
                "errors": post["errors_total"], "non_2xx": post["non_2xx"], "connection_errors": post["connection_errors"],
                "accept_rate": post["accept_rate"], "post_p50_ms": post["p50_ms"], "post_p99_ms": post["p99_ms"],
                "p50_ms": summary["p50_ms"], "p90_ms": summary["p90_ms"], "p99_ms": summary["p99_ms"], "max_ms": summary["max_ms"],
                "end": summary["end"], "wall_s": round(time.monotonic() - started, 2), "generator_cores": post["generator_cores"],
                "cost": cost, **cpu_per_order(cost, completed),
            }
            step["ok"] = step_ok(step, s.sustained_p99_target_ms)
            steps.append(step)
            self.log(f"sustained {rate:g}/s: {completed}/{step['sent']} completed, p50 {step['p50_ms']} ms, p99 {step['p99_ms']} ms, "
                     f"POST p99 {step['post_p99_ms']} ms, {step['errors']} errors, CPU {step['cpu_ms_per_order_total']} ms/order")
            if s.sustained_skip_p99_ms and (step["p99_ms"] is None or step["p99_ms"] > s.sustained_skip_p99_ms):
                skip = f"p99 {step['p99_ms']} ms at {rate:g}/s > {s.sustained_skip_p99_ms:g} ms (sustained_skip_p99_ms)"
        met = [st["rate"] for st in steps if st.get("ok")]
        phase = {"steps": steps, "catalog": s.sustained_catalog, "p99_target_ms": s.sustained_p99_target_ms,
                 "max_rate_p99_ok": max(met) if met else 0.0, "publish": self.publish_of(port)}
        self.results["phases"]["sustained"] = phase
        return phase

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

    # ----------------------------------------------------------------------- publish settings
    def publish_setup(self) -> None:
        """Which publish the product's default settings use (OUTBOX_PUBLISH_INLINE's effective value, read
        from the settings as every process of this run loads them, --env included), and the other one,
        measured as an A/B by a second web server + relay pair. Runs are labelled by these values."""
        inline = self.results["settings"].get("OUTBOX_PUBLISH_INLINE")
        if not isinstance(inline, bool):
            raise RuntimeError(f"could not read OUTBOX_PUBLISH_INLINE from the settings: {self.results['settings']}")
        self.publish = {True: "inline", False: "relay only"}[inline]
        self.ab_env = {"OUTBOX_PUBLISH_INLINE": str(not inline)}
        self.ab_publish = {True: "inline", False: "relay only"}[not inline]
        self.ab_slug = self.ab_publish.replace(" ", "-")  # load-run labels: api-orders-relay-only-c16
        self.ab_key = self.ab_publish.replace(" ", "_")  # phase and figure keys: pipeline_e2e_relay_only
        self.results["publish"] = {"default": self.publish, "default_inline": inline, "ab": self.ab_publish, "ab_key": self.ab_key}

    def publish_of(self, port: int) -> str:
        return self.ab_publish if port == self.ab_port else self.publish

    def start_ab(self) -> int:
        """The A/B web server with the other publish setting, and a relay with the same setting."""
        web, port = self.start_web(self.ab_env, name=f"web-{self.ab_slug}", kind="web_ab")
        relay = self.start_relay(self.ab_env, name=f"relay-{self.ab_slug}", kind="relay_ab")
        self.ab = [web, relay]
        self.servers += self.ab
        self.ab_port = port
        return port

    def stop_ab(self) -> None:
        self.stop_servers(self.ab)
        self.ab, self.ab_port = [], None

    # ----------------------------------------------------------------------- the run
    def run(self) -> dict:
        s = self.sizes
        self.results["started_at"] = datetime.now(timezone.utc).isoformat()
        self.results["machine"] = machine()
        self.prepare()
        self.results["versions"] = self.versions()
        self.results["settings"] = self.settings_snapshot()
        self.publish_setup()
        for kind, pids in procs.infra_pids().items():
            for pid in pids:
                self.sampler.track(kind, pid)
        only = self.results["only"] = self.args.only
        if only == "ceiling":
            self.ceiling_run()
            return self.finish()
        web, port = self.start_web()
        self.relay = self.start_relay()
        self.servers += [web, self.relay]
        self.log(f"web on 127.0.0.1:{port}: {' '.join(web.popen.args)} (publish {self.publish})")

        if only == "pipeline":
            self.ceiling_run()
            self.pipeline_run("pipeline_drain", port, s.drain_orders)
            return self.finish()
        if only == "zipf":
            self.ceiling_run()
            self.pipeline_run("pipeline_drain_zipf", port, s.drain_orders, catalog="zipf")
            return self.finish()
        if only in ("e2e", "sustained"):
            self.reset()
            workers = self.start_pipeline()
            if only == "e2e":
                self.e2e("pipeline_e2e", port)
            else:
                archiver = self.start_loop("archiver")
                self.sustained(port)
                self.stop_servers([archiver])
            self.stop(workers)
            return self.finish()

        # 1. API accept rate and p99, pipeline idle (no workers; queues purged between runs): the product as
        #    deployed, the same bare insert on the same server, the bare insert served the fastest way, and the A/B
        fast, fast_port = self.start_fast_ceiling()
        self.servers.append(fast)
        port2 = self.start_ab()
        self.log(f"fast API ceiling on 127.0.0.1:{fast_port}: {' '.join(fast.popen.args)}; A/B web (publish {self.ab_publish}) on {port2}")
        if s.api_warmup:
            self.load("warmup-ceiling-fast", "/bench/ceiling", port=fast_port, concurrency=16, count=s.api_warmup)
            self.load("warmup-ceiling", "/bench/ceiling", port=port, concurrency=16, count=s.api_warmup)
            self.load("warmup-orders", "/orders", port=port, concurrency=16, count=s.api_warmup)
            self.load(f"warmup-orders-{self.ab_slug}", "/orders", port=port2, concurrency=16, count=s.api_warmup)
        for c in (16, 64):
            self.reset()
            self.load(f"api-ceiling-fast-c{c}", "/bench/ceiling", port=fast_port, concurrency=c, seconds=s.api_seconds)
            self.reset()
            self.load(f"api-ceiling-c{c}", "/bench/ceiling", port=port, concurrency=c, seconds=s.api_seconds)
            self.reset()
            self.load(f"api-orders-c{c}", "/orders", port=port, concurrency=c, seconds=s.api_seconds)
            self.reset()
            self.load(f"api-orders-{self.ab_slug}-c{c}", "/orders", port=port2, concurrency=c, seconds=s.api_seconds)
        self.stop_servers([fast])
        self.stop_ab()  # back later for the end-to-end A/B; meanwhile its relay would share the default's outbox work
        if only == "api":
            return self.finish()

        # 2. decoupling: POST p99 idle, then with the backlog waiting in the queues
        self.reset()
        idle = self.load("decouple-idle", "/orders", port=port, concurrency=16, seconds=s.decouple_seconds)
        self.reset()
        self.log(f"flooding the process queue with {s.backlog_messages} messages")
        self.flood(s.backlog_messages)
        depth = self.queue_depth("process")
        busy = self.load("decouple-backlog", "/orders", port=port, concurrency=16, seconds=s.decouple_seconds)
        self.results["phases"]["decoupling"] = {"backlog_messages": depth, "idle_p99_ms": idle["p99_ms"], "backlog_p99_ms": busy["p99_ms"],
                                                "idle_errors": idle["errors_total"], "backlog_errors": busy["errors_total"]}

        # 3. bare chain ceiling: drain and steady-rate latency
        self.ceiling_run()

        # 4. pipeline drains at latency 0: the hot catalog, then 1,000 SKUs picked Zipf-style; then the
        #    end-to-end latency at e2e_rate (default publish and the A/B) and the sustained steps on the same workers
        self.pipeline_run("pipeline_drain", port, s.drain_orders)
        _, workers = self.pipeline_run("pipeline_drain_zipf", port, s.drain_orders, catalog="zipf", keep=True)
        self.wait_published()
        self.truncate()
        self.e2e("pipeline_e2e", port)
        port2 = self.start_ab()
        self.warm(port2, "/orders", f"warmup-e2e-{self.ab_slug}")
        self.wait_published()
        self.truncate()
        self.e2e(f"pipeline_e2e_{self.ab_key}", port2)
        self.stop_ab()

        # 5. sustained: the whole Procfile (web, every worker, relay, archiver), one rate step after another
        archiver = self.start_loop("archiver")
        self.servers.append(archiver)
        self.sustained(port)
        self.stop_servers([archiver])

        # 6. I/O-bound enrichment at 1000 ms with the Procfile's pool and concurrency (the rest of the pipeline keeps running)
        env = self.pipeline_env(0)
        rest, _ = self.enrichment_split(env)
        consuming = {spec.name for spec in self.workers(env) if ENRICHMENT_QUEUE in spec.queues}
        self.stop([w for w in workers if w.kind in consuming])
        workers = [w for w in workers if w.kind not in consuming]
        workers += self.start_workers([spec for spec in rest if spec.name in consuming], env)  # a shared worker's other queues
        self.enrichment_run("enrichment_io", port, s.io_orders, concurrency=self.args.enrichment_concurrency or None)

        # 7. scale-out: 1, 2, 4 enrichment processes at 1000 ms
        for k in s.scale_processes:
            self.enrichment_run(f"scale_out_{k}", port, s.scale_orders, processes=k, concurrency=self.args.scale_concurrency,
                                threads_only=True)
        self.stop(workers)
        self.results["figures"] = figures(self.results, s)
        return self.finish()

    def finish(self) -> dict:
        """Stop the web servers and relays this run started; record when and how long."""
        self.stop_servers(list(self.servers))
        self.results["finished_at"] = datetime.now(timezone.utc).isoformat()
        self.results["duration_s"] = round(time.monotonic() - self.t0, 1)
        if self.args.only:
            self.results["figures"] = figures(self.results, self.sizes)
        return self.results

    # ----------------------------------------------------------------------- record
    def versions(self) -> dict:
        def dist(name):
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                return None

        found = {"python": platform.python_version()}
        for name in ("django", "djangorestframework", "celery", "kombu", "amqp", "gunicorn", "uvicorn", "psycopg", "psycopg-pool", "redis",
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
        snapshot["procfile_path"] = str(procs.PROCFILE)
        snapshot["procfile"] = {k: " ".join(v) for k, v in self.commands.items() if k not in ("flower", "live")}
        snapshot["procfile_workers"] = {w.name: {"queues": w.queues, "pool": w.pool, "concurrency": w.concurrency}
                                        for w in self.workers(self.env)}
        snapshot["ceiling_fast_web"] = " ".join(self.fast_ceiling_argv(0)).replace("127.0.0.1:0", "127.0.0.1:PORT")
        snapshot["ceiling_workers"] = {w.name: w.queues for w in self.ceiling_specs(self.env)}
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


def cpu_per_order(cost: dict, completed: int) -> dict:
    """CPU milliseconds per completed order, per process kind, in all, and without the shared servers."""
    if not completed:
        return {"cpu_ms_per_order": {}, "cpu_ms_per_order_total": None, "cpu_ms_per_order_own": None}
    per = {kind: round(v["cpu_s"] / completed * 1000, 3) for kind, v in cost.items()}
    return {"cpu_ms_per_order": per, "cpu_ms_per_order_total": round(sum(per.values()), 3),
            "cpu_ms_per_order_own": round(sum(v for k, v in per.items() if not k.endswith(SHARED)), 3)}


def step_ok(step: dict, p99_target_ms: float) -> bool:
    """A sustained step is kept up with: every order sent was accepted (no error) and completed, none
    failed, everything ended in time, and POST -> completed p99 is within the target."""
    return (step.get("end") == "done" and not step.get("errors") and not step.get("failed")
            and step.get("completed") == step.get("sent") == step.get("accepted")
            and step.get("p99_ms") is not None and step["p99_ms"] <= p99_target_ms)


def reference_step(phase: dict, rate: float) -> dict | None:
    """The measured sustained step at `rate`, or the nearest one (smoke runs offer other rates)."""
    steps = [st for st in phase.get("steps", []) if not st.get("skipped")]
    return min(steps, key=lambda st: (abs(st["rate"] - rate), st["rate"])) if steps else None


def met_ratio(value, ceiling, at_least: float | None = None, at_most: float | None = None):
    rt = ratio(value, ceiling)
    if rt is None:
        return None
    return (at_least is None or rt >= at_least) and (at_most is None or rt <= at_most)


def figures(r: dict, s: Sizes) -> dict:
    """Every figure of the run, each with its ceiling measured in the same run; parts a partial run (--only)
    did not measure are left out."""
    runs, phases = r["load_runs"], r["phases"]
    pub = r.get("publish", {})
    default_note = f"publish {pub.get('default', '?')}: OUTBOX_PUBLISH_INLINE={pub.get('default_inline')}"
    ab_note = f"A/B: OUTBOX_PUBLISH_INLINE={not pub.get('default_inline')}"
    ab_key, ab_slug = pub.get("ab_key", ""), pub.get("ab", "").replace(" ", "-")
    out = {}
    fast_name = "bare DRF insert, gunicorn sync x(2 x cores + 1), no middleware"
    for suffix, label, note in (("", "", default_note), (f"_{ab_key}", f"-{ab_slug}", ab_note)):
        for c in (16, 64):
            p, fast, same = runs.get(f"api-orders{label}-c{c}"), runs.get(f"api-ceiling-fast-c{c}"), runs.get(f"api-ceiling-c{c}")
            if not (p and fast and same):
                continue
            target = ">= 0.5x" if c == 16 else "reported"
            out[f"api_accept_rate_c{c}{suffix}"] = figure(
                p["accept_rate"], fast["accept_rate"], "req/s", target,
                met_ratio(p["accept_rate"], fast["accept_rate"], at_least=0.5) if c == 16 else None, note=note, ceiling_name=fast_name)
            out[f"api_accept_rate_c{c}_same_server{suffix}"] = figure(
                p["accept_rate"], same["accept_rate"], "req/s", "reported", None, note=note,
                ceiling_name="bare DRF insert, same server, middleware and settings")
            if c == 16:
                out[f"api_p99_c16{suffix}"] = figure(p["p99_ms"], fast["p99_ms"], "ms", "<= 50 ms",
                                                     p["p99_ms"] is not None and p["p99_ms"] <= 50, note=note, ceiling_name=f"{fast_name}, p99")
            out[f"api_errors_c{c}{suffix}"] = figure(
                p["errors_total"], fast["errors_total"], "errors", "0" if c == 64 else "reported",
                p["errors_total"] == 0 if c == 64 else None, note=f"{note}; non-2xx {p['non_2xx']}, connection errors {p['connection_errors']}, "
                f"of {p['sent']}", ceiling_name="fast ceiling's errors")
    chain_phase = phases.get("ceiling_chain_drain")
    chain = chain_phase["rate"] if chain_phase else None
    for key, note in (("pipeline_drain", "hot catalog: 1-3 of 5 SKUs"), ("pipeline_drain_zipf", f"{ZIPF_SKUS:,} SKUs, Zipf s={s.zipf_s:g}")):
        drain = phases.get(key)
        if drain and chain_phase:
            name = "pipeline_throughput" if key == "pipeline_drain" else "pipeline_throughput_zipf"
            out[name] = figure(drain["rate"], chain, "orders/s", ">= 0.6x", met_ratio(drain["rate"], chain, at_least=0.6),
                               note=f"{note}; backlog {drain['expected']}, {drain['failed']} failed", ceiling_name="bare 3-task chain, no DB")
    drain = phases.get("pipeline_drain")
    io = phases.get("enrichment_io")
    if io and drain and chain_phase:
        out["enrichment_io_vs_latency0"] = figure(io["rate"], drain["rate"], "orders/s", "reported", None,
                                                  note=f"latency {io['latency_ms']} ms, {io['enrichment_pool']} x{io['enrichment_concurrency']}",
                                                  ceiling_name="pipeline at latency 0")
        out["enrichment_io_vs_chain"] = figure(io["rate"], chain, "orders/s", "reported", None, ceiling_name="bare 3-task chain")
    dec = phases.get("decoupling")
    if dec:
        out["decoupling_p99"] = figure(dec["backlog_p99_ms"], dec["idle_p99_ms"], "ms", "<= 1.2x",
                                       met_ratio(dec["backlog_p99_ms"], dec["idle_p99_ms"], at_most=1.2),
                                       note=f"{dec['backlog_messages']} messages waiting", ceiling_name="POST p99 idle")
    ce2e = phases.get("ceiling_chain_e2e", {})
    for suffix, note in (("", default_note), (f"_{ab_key}", ab_note)):
        e2e = phases.get(f"pipeline_e2e{suffix}")
        if not e2e or not ce2e:
            continue
        out[f"e2e_latency_p50{suffix}"] = figure(e2e["p50_ms"], ce2e["p50_ms"], "ms", "<= 50 ms", e2e["p50_ms"] is not None and e2e["p50_ms"] <= 50,
                                                 note=f"{s.e2e_rate:g} orders/s, {note}", ceiling_name="bare chain p50 at the same rate")
        out[f"e2e_latency_p99{suffix}"] = figure(e2e["p99_ms"], ce2e["p99_ms"], "ms", "<= 250 ms", e2e["p99_ms"] is not None and e2e["p99_ms"] <= 250,
                                                 note=f"{s.e2e_rate:g} orders/s, {note}", ceiling_name="bare chain p99 at the same rate")
    sus = phases.get("sustained")
    if sus:
        chain_cpu = cpu_per_order(chain_phase["cost"], chain_phase["completed"]) if chain_phase else {}
        best = sus["max_rate_p99_ok"]
        out["sustained_max_rate"] = figure(best, chain, "orders/s", ">= 100 orders/s", best >= 100,
                                           note=f"highest offered rate with POST->completed p99 <= {sus['p99_target_ms']:g} ms, every order "
                                           f"completed, no error; steps {', '.join(format(st['rate'], 'g') for st in sus['steps'])}; {default_note}",
                                           ceiling_name="bare chain drain rate")
        ref = reference_step(sus, s.sustained_reference_rate)
        if ref:
            at = f"at {ref['rate']:g} orders/s offered"
            out["sustained_p50_at_50"] = figure(ref["p50_ms"], ce2e.get("p50_ms"), "ms", "<= 50 ms", ref["p50_ms"] is not None and ref["p50_ms"] <= 50,
                                                note=f"POST->completed {at}; {ref['completed']}/{ref['sent']} completed",
                                                ceiling_name=f"bare chain p50 at {s.e2e_rate:g}/s")
            out["sustained_p99_at_50"] = figure(ref["p99_ms"], ce2e.get("p99_ms"), "ms", "reported", None, note=f"POST->completed {at}",
                                                ceiling_name=f"bare chain p99 at {s.e2e_rate:g}/s")
            total = ref["cpu_ms_per_order_total"]
            out["sustained_cpu_per_order_at_50"] = figure(
                total, chain_cpu.get("cpu_ms_per_order_total"), "CPU ms", "<= 15 ms", total is not None and total <= 15,
                note=f"every process kind {at}, PostgreSQL/RabbitMQ/Redis (shared) included; without them {ref['cpu_ms_per_order_own']} ms",
                ceiling_name="bare chain, CPU per chain (workers + servers)")
    # cost: worker CPU per 1000 completed orders vs the bare chain's workers per 1000 chains
    if drain and chain_phase:
        pipeline_cost = per_1000(drain["cost"], drain["completed"])
        chain_cost = per_1000(chain_phase["cost"], chain_phase["completed"])
        workers_cpu = sum(v["cpu_s_per_1000"] for k, v in pipeline_cost.items() if k.startswith("worker"))
        chain_cpu_1000 = sum(v["cpu_s_per_1000"] for k, v in chain_cost.items() if k.startswith("ceiling_worker"))
        out["cost_worker_cpu_per_1000"] = figure(round(workers_cpu, 2), round(chain_cpu_1000, 2), "CPU s", "reported", None,
                                                 ceiling_name="bare chain workers")
        r["cost"] = {"pipeline_per_1000_orders": pipeline_cost, "bare_chain_per_1000_chains": chain_cost}
        zipf = phases.get("pipeline_drain_zipf")
        if zipf:
            r["cost"]["pipeline_zipf_per_1000_orders"] = per_1000(zipf["cost"], zipf["completed"])
    base = phases.get(f"scale_out_{s.scale_processes[0]}", {}).get("rate")
    for k in s.scale_processes:
        ph = phases.get(f"scale_out_{k}")
        if ph:
            out[f"scale_out_{k}"] = figure(ph["rate"], base, "orders/s", "reported", None,
                                           note=f"{k} x {ph['enrichment_pool']} {ph['enrichment_concurrency']}, latency {ph['latency_ms']} ms",
                                           ceiling_name=f"{s.scale_processes[0]} process")
    r["generator_cpu"] = {label: {"cores": run["generator_cores"], "cpu_s": run["generator_cpu_s"]} for label, run in runs.items()}
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
    parser.add_argument("--enrichment-concurrency", type=int, default=0,
                        help="concurrency of the enrichment consumer in the 1000 ms run (default: the Procfile's)")
    parser.add_argument("--scale-concurrency", type=int, default=0,
                        help="threads per enrichment process in the scale-out runs, if its pool is a thread pool (default 16; "
                             "4 with --smoke, which measures nothing and should not take 64 of the shared PostgreSQL's connection slots)")
    parser.add_argument("--size", action="append", default=[],
                        help="override one size, e.g. drain_orders=1000 or sustained_rates=25,50 (recorded)")
    parser.add_argument("--only", choices=ONLY, default=None,
                        help="one part only, its results as JSON on stdout, no report files (quick A/B comparisons): "
                             "api (the API phase), ceiling (the bare chain), pipeline (the bare chain and the hot-catalog drain), "
                             "zipf (the bare chain and the 1,000-SKU Zipf drain), e2e (end to end at e2e_rate), "
                             "sustained (the sustained rate steps)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every process (e.g. WEB_CONCURRENCY=2)")
    parser.add_argument("--procfile", default="", help="run the processes of this Procfile instead of ./Procfile (recorded)")
    parser.add_argument("--lock-wait", type=float, default=900.0,
                        help="seconds to wait for another run of the same name to finish (one run per name at a time)")
    args = parser.parse_args(argv)
    if args.procfile:
        procs.PROCFILE = Path(args.procfile).resolve()
        if not procs.PROCFILE.is_file():
            parser.error(f"no such Procfile: {args.procfile}")
    args.name = args.name or ("orders_bench_smoke" if args.smoke else "orders_bench")
    args.scale_concurrency = args.scale_concurrency or (4 if args.smoke else 16)
    sizes = SMOKE() if args.smoke else Sizes()
    for pair in args.size:
        key, _, value = pair.partition("=")
        if not hasattr(sizes, key):
            parser.error(f"unknown size {key}")
        current = getattr(sizes, key)
        try:
            if isinstance(current, tuple):  # comma-separated, of the type of the default's items
                setattr(sizes, key, tuple(type(current[0])(v) for v in value.split(",") if v.strip()))
            else:
                setattr(sizes, key, type(current)(value))
        except ValueError:
            parser.error(f"bad value for {key}: {value!r}")
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
        print(json.dumps({key: results.get(key) for key in ("only", "publish", "figures", "phases", "load_runs")}, indent=1, default=str))
        return 0
    from bench import report

    paths = report.write(results, Path(args.out), bench.stamp)
    print(report.markdown(results))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
