"""Where a bench run runs: its own PostgreSQL database, RabbitMQ vhost, Redis db and key prefixes, all named
after the run (--name, --redis-db), and the product's settings every process it starts gets (bench_env).
prepare() sets them up before the first phase."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import procs
from bench.load import ZIPF_SKUS, zipf_sku
from devtools.procs import wait_until

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CELERY = str(Path(sys.executable).parent / "celery")
# Production settings refuse short or placeholder secrets (orders_project/settings.py, "Security").
TOKEN = "bench-token-Hc4sW9pLq2Xv7Nz3Rt6Ym1Kd8"  # noqa: S105  the local bench stack's own token, not a secret
SETUP_WAIT = 180.0  # seconds PostgreSQL or RabbitMQ may be down at set-up (someone's chaos run restarts them)
# The PostgreSQL server of a run: the driver's own connection (bench/db.py), CREATE DATABASE, and the processes'
# DATABASE_URL unless `--env DATABASE_URL=...` overrides it (e.g. a pooler in front of this server). Its path, if
# any, is ignored: the database is always the run's name. BENCH_DATABASE_URL sets another server.
DEFAULT_DATABASE_SERVER = "postgres://postgres@127.0.0.1:5432"


def database_url(name: str, server: str | None = None) -> str:
    """The URL of database `name` on `server` (default: BENCH_DATABASE_URL, else the machine's 127.0.0.1:5432)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(server or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_SERVER)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def bench_env(args) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "PYTEST", "COV_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings_bench",
        DJANGO_DEBUG="False",
        DJANGO_SECRET_KEY="bench-secret-key-Jf5rT8wQ1zN4xC7vB2mL6kP9hG3dS0aYq",  # noqa: S106  local bench stack only
        DJANGO_HTTPS="false",  # plain HTTP on 127.0.0.1: no SSL redirect
        SECRET_TOKEN=TOKEN,
        DATABASE_URL=database_url(args.name),
        CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{args.name}",
        REDIS_URL=f"redis://127.0.0.1:6379/{args.redis_db}",
        CACHE_KEY_PREFIX=args.name,
        CHANNELS_PREFIX=f"asgi-{args.name}",
        # The default log level, as deployed (a line per accepted order and per stage); `--env LOG_LEVEL=WARNING`
        # for an A/B without them.
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        # The live page as `make run` serves it (the demo's anonymous reader): the browser needs no login.
        LIVE_FEED_ANONYMOUS="True",
        ENRICHMENT_LATENCY_MS="0",
        ENRICHMENT_FAILURE_RATE="0",
        # The throttle still runs on every request (its Redis round trip is measured); its default limit
        # (1,000/s per client) capped the same-server ceiling on a quiet machine (429s at 1,011 req/s).
        THROTTLE_CLIENT_RATE="1000000/s",
        # A backlog drain puts tens of thousands of one client's orders in flight at once: no cap for it
        # (the cap's bounded count still runs on every POST, so its cost is measured).
        ORDERS_IN_FLIGHT_MAX="100000000",
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(ctx) -> None:
    """The run's lock, what a dead run of the same name left behind reaped, the database and vhost
    (created if missing), migrated and seeded, the bare chain's queues declared, nobody else consuming
    them, every table and queue empty."""
    name = ctx.args.name
    procs.lock_run(name, wait=ctx.args.lock_wait, log=ctx.log)
    procs.reap_leftovers(name, log=ctx.log)
    ctx.log(f"set-up: database and vhost {name}, redis db {ctx.args.redis_db}")
    deadline = time.monotonic() + SETUP_WAIT  # one bound for both servers
    ensure_database(name, deadline, ctx.log)
    ctx.queues.ensure_vhost(name, deadline, ctx.log)
    migrate_and_seed(ctx.env)
    seed_zipf_catalog(ctx.db)
    from bench import ceiling_celery  # imported late: its Celery app reads the run's environment

    with ctx.queues.connection() as conn:
        ceiling_celery.declare(conn)
    no_consumers(ctx)
    ctx.reset(relays_running=False)  # nothing of this run publishes yet: no outbox to wait for


def ensure_database(name: str, deadline: float, log) -> None:
    """Create the database if missing; PostgreSQL down is waited for until `deadline`."""
    import psycopg

    while True:
        try:
            admin = psycopg.connect(database_url("postgres"), connect_timeout=5)
            break
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise
            log(f"PostgreSQL not available ({str(exc).strip()[:80]}); retrying")
            time.sleep(3)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def migrate_and_seed(env: dict) -> None:
    # one Django start-up for the three set-up commands of the README (migrate, seed_catalog, declare_topology)
    code = (
        "import django; django.setup(); from django.core.management import call_command as c; "
        "c('migrate', interactive=False, verbosity=0); "
        "c('seed_catalog', verbosity=0); c('declare_topology', verbosity=0)"
    )
    subprocess.run([PY, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, timeout=300)


def seed_zipf_catalog(db) -> None:
    """The 1,000 extra SKUs of the Zipf drain (Z0000..Z0999, bench database only); reset() refills their stock."""
    db.sql(
        "INSERT INTO orders_product (sku, name, price, stock, reserved) "
        "SELECT %s || lpad(g::text, 4, '0'), 'Bench Zipf item ' || g, 1 + (g %% 50), 1000000, 0 "
        "FROM generate_series(0, %s) AS g ON CONFLICT (sku) DO NOTHING",
        [zipf_sku(0)[0], ZIPF_SKUS - 1],
    )


def no_consumers(ctx) -> None:
    """Nobody else consumes this run's queues (a worker of a dead run would take its messages)."""
    queues = ctx.queues
    try:
        wait_until(
            lambda: not any(queues.consumers(q) for q in queues.work_queues()),
            timeout=30,
            what="no consumers on the bench queues",
            interval=0.5,
        )
    except TimeoutError:
        found = {q: queues.consumers(q) for q in queues.work_queues()}
        raise RuntimeError(
            f"processes this run did not start consume vhost {ctx.args.name}: {found}; stop them first"
        ) from None
