"""A chaos run's configuration, and the environment and commands of the system it runs: the Procfile's
processes (but `live` and flower) on their own database, RabbitMQ vhost and Redis db, with short retry and
outbox timings so that the faults' effects are over quickly."""

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Production settings refuse short or placeholder secrets (orders_project/settings.py, "Security").
TOKEN = "chaos-token-Hc4sW9pLq2Xv7Nz3Rt6Ym1Kd8"  # noqa: S105  the local chaos stack's own token, not a secret
KINDS = ["web", "worker_process", "worker_enrichment", "worker_finalize", "worker_refund", "relay", "archiver"]


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
    cluster: bool = False  # on the local three-node cluster, processes on two hosts (chaos/cluster.py)
    cluster_faults: tuple[str, ...] = ("kill", "isolate", "vanish")
    clean: bool = False  # normal orders only: no fault SKUs, duplicates or cancels (a latency measurement)
    db_ha: bool = False  # PostgreSQL on the local Patroni pair behind PgBouncer (devtools/db_ha.py, make db-ha)
    db_name: str = "orders_chaos"
    vhost: str = "orders_chaos"
    redis_url: str = "redis://127.0.0.1:6379/10"

    @property
    def database_url(self) -> str:
        """The processes' DATABASE_URL: PostgreSQL, or with db_ha the pooler in front of the Patroni pair."""
        if self.cluster:
            from devtools import cluster

            return cluster.database_url(self.db_name, "pooled" if self.db_ha else "postgres")
        if self.db_ha:
            from devtools import db_ha

            return db_ha.pooled_url(self.db_name)
        return f"postgres://postgres@127.0.0.1:5432/{self.db_name}"

    @property
    def direct_database_url(self) -> str:
        """A session on the current primary (the relay's LISTEN; creating the database, migrating)."""
        if self.cluster and self.db_ha:
            from devtools import cluster

            return cluster.database_url(self.db_name, "direct")
        if self.db_ha:
            from devtools import db_ha

            return db_ha.direct_url(self.db_name)
        return self.database_url

    @property
    def web_address(self) -> str:
        """Where the load reaches the web: loopback, or host 1's address on the cluster."""
        if self.cluster:
            from devtools import cluster

            return cluster.host(1).address
        return "127.0.0.1"


def system_env(cfg: Config) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="orders_project.settings",
        DJANGO_SECRET_KEY="chaos-secret-key-Jf5rT8wQ1zN4xC7vB2mL6kP9hG3dS0aYq",  # noqa: S106  local chaos stack only
        DJANGO_HTTPS="false",  # plain HTTP on 127.0.0.1: no SSL redirect
        SECRET_TOKEN=TOKEN,
        DATABASE_URL=cfg.database_url,
        CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{cfg.vhost}",
        REDIS_URL=cfg.redis_url,
        CACHE_KEY_PREFIX="chaos",
        CHANNELS_PREFIX="asgi-chaos",
        LOG_FORMAT="json",
        ENRICHMENT_LATENCY_MS="20",
        DEMO_FAULTS_ENABLED="true",  # the load orders the fault items (FLAKY, DOWN, BOMBA)
        ORDERS_IN_FLIGHT_MAX="0",  # no cap: kills and restarts leave many of the one client's orders in flight
        THROTTLE_CLIENT_RATE="100000/s",
        TASK_MAX_RETRIES="3",
        TASK_RETRY_BACKOFF_BASE="1",
        TASK_RETRY_BACKOFF_MAX="4",
        OUTBOX_GRACE_SECONDS="2",
        # The reconciler finds the orders whose messages the queue purge took, within the run's quiet time.
        STUCK_ORDER_SECONDS="15",
        RECONCILE_INTERVAL_SECONDS="3",
        RECONCILE_MAX_ATTEMPTS="6",
        DB_CONNECT_TIMEOUT="2",
        HEARTBEAT_FILE=str(cfg.workdir / "heartbeat"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if cfg.db_ha:
        env.update(DATABASE_DIRECT_URL=cfg.direct_database_url, DB_TRANSACTION_POOLER="true")
    if cfg.cluster:
        from devtools import cluster

        env.update(
            CELERY_BROKER_URL=cluster.amqp_urls(cfg.vhost),
            REDIS_URL=cluster.redis_url(int(cfg.redis_url.rsplit("/", 1)[1])),
            DB_CONNECT_TIMEOUT="3",
            DJANGO_ALLOWED_HOSTS=f"127.0.0.1,{cluster.host(1).address}",
        )
    return env


def commands(cfg: Config) -> dict[str, list[str]]:
    celery = [
        str(BIN / "celery"),
        "-A",
        "orders_project",
        "worker",
        "-l",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    manage = [sys.executable, "manage.py"]
    argv = {
        # The Procfile's web (gunicorn). Its `live` (the WebSocket) is not started: the run only drives HTTP.
        "web": [
            str(BIN / "gunicorn"),
            "orders_project.wsgi:application",
            "--config",
            "python:orders_project.gunicorn_conf",
            "--bind",
            f"{'0.0.0.0' if cfg.cluster else '127.0.0.1'}:{cfg.port}",  # noqa: S104  (host 1's own namespace)
        ],
        "worker_process": [*celery, "-Q", "process", "-n", "process-chaos@%h", "-c", "2"],
        "worker_enrichment": [*celery, "-Q", "enrichment", "-n", "enrichment-chaos@%h", "-P", "threads", "-c", "16"],
        "worker_finalize": [*celery, "-Q", "finalize", "-n", "finalize-chaos@%h", "-c", "2"],
        "worker_refund": [*celery, "-Q", "refund", "-n", "refund-chaos@%h", "-P", "threads", "-c", "4"],
        "relay": [*manage, "relay_outbox"],
        "archiver": [*manage, "archive_dead_letters"],
    }
    if cfg.cluster:  # a second relay and forward workers, on host 2 (chaos/cluster.py)
        for kind in ("worker_process", "worker_enrichment", "worker_finalize", "relay"):
            argv[f"{kind}@2"] = [a.replace("-chaos@", "-chaos2@") for a in argv[kind]]
    return argv
