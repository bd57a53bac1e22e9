"""What a run records about itself besides its measurements: the machine, the versions of everything it
ran, and the settings and processes as they ran (the results' "machine", "versions" and "settings")."""

import json
import os
import platform
import subprocess
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import psutil

from bench import procs
from bench.env import PY, ROOT
from bench.servers import FAST_CEILING_SERVERS, fast_ceiling_argv

DISTRIBUTIONS = (
    "django",
    "djangorestframework",
    "celery",
    "kombu",
    "amqp",
    "gunicorn",
    "uvicorn",
    "psycopg",
    "psycopg-pool",
    "redis",
    "channels",
    "channels-redis",
    "aiohttp",
    "psutil",
)
# the settings the figures depend on, as every process of the run loads them (--env included)
SETTINGS_CODE = (
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


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": model,
        "platform": platform.platform(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions(ctx) -> dict:
    found = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        found[name] = distribution_version(name)
    try:
        found["rabbitmq"] = subprocess.run(
            ["rabbitmqctl", "version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except Exception as exc:
        found["rabbitmq"] = f"unknown ({exc})"
    found["postgresql"] = ctx.db.sql("SHOW server_version")[0][0]
    found["redis_server"] = ctx.redis().info("server").get("redis_version")
    try:
        found["git"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        found["git_dirty_files"] = [line[3:] for line in dirty.splitlines()]
    except Exception:  # noqa: S110  git metadata is best-effort (no git, not a checkout)
        pass
    return found


def distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def settings_snapshot(ctx) -> dict:
    done = subprocess.run([PY, "-c", SETTINGS_CODE], cwd=ROOT, env=ctx.env, capture_output=True, text=True, timeout=60)
    snapshot = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-500:]}
    snapshot["procfile_path"] = str(procs.PROCFILE)
    snapshot["procfile"] = {k: " ".join(v) for k, v in ctx.commands.items() if k not in ("flower", "live")}
    snapshot["procfile_workers"] = {
        w.name: {"queues": w.queues, "pool": w.pool, "concurrency": w.concurrency} for w in ctx.workers.specs(ctx.env)
    }
    snapshot["ceiling_fast_web"] = {
        server: " ".join(fast_ceiling_argv(0, server)).replace("127.0.0.1:0", "127.0.0.1:PORT")
        for server in FAST_CEILING_SERVERS
    }
    snapshot["ceiling_workers"] = {w.name: w.queues for w in ctx.workers.ceiling_specs(ctx.env)}
    snapshot["sizes"] = asdict(ctx.sizes)
    snapshot["smoke"] = ctx.args.smoke
    snapshot["env_overrides"] = list(ctx.args.env)
    snapshot["scale_concurrency_per_process"] = ctx.args.scale_concurrency
    snapshot["database"], snapshot["vhost"], snapshot["redis_db"] = ctx.args.name, ctx.args.name, ctx.args.redis_db
    return snapshot
