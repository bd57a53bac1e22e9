"""Celery worker hooks: /metrics on METRICS_PORT from the main process, clean-up of the per-process
metric files of pool children that exit (prometheus-client multiprocess mode), and the database
connection check after each task."""

import os
from typing import Any

from celery.signals import task_postrun, worker_init, worker_process_shutdown
from django.conf import settings
from django.db import close_old_connections

from core.logging import get_logger

log = get_logger(__name__)


@worker_init.connect
def start_metrics_server(**kwargs: Any) -> None:
    if not settings.METRICS_PORT:
        return
    from prometheus_client import start_http_server

    from core.views import metrics_registry

    start_http_server(settings.METRICS_PORT, registry=metrics_registry())
    log.info("worker_metrics_listening", port=settings.METRICS_PORT)


@worker_process_shutdown.connect
def mark_child_dead(pid: int | None = None, **kwargs: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


@task_postrun.connect
def drop_broken_connection(task: Any = None, **kwargs: Any) -> None:
    if task is not None and getattr(task.request, "is_eager", False):
        return  # run in the caller's process and transaction (tests): not ours to close
    # With CELERY_DB_REUSE_MAX the fix-up keeps connections across tasks; like Django after a request,
    # drop one that errored (a PostgreSQL restart) or outlived CONN_MAX_AGE, so the next task reconnects.
    close_old_connections()
