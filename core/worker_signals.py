"""Celery worker hooks: /metrics on METRICS_PORT from the main process, and clean-up of the
per-process metric files of pool children that exit (prometheus-client multiprocess mode)."""
import os

from celery.signals import worker_init, worker_process_shutdown
from django.conf import settings

from core.logging import get_logger

log = get_logger(__name__)


@worker_init.connect
def start_metrics_server(**kwargs) -> None:
    if not settings.METRICS_PORT:
        return
    from prometheus_client import start_http_server

    from core.views import metrics_registry

    start_http_server(settings.METRICS_PORT, registry=metrics_registry())
    log.info("worker_metrics_listening", port=settings.METRICS_PORT)


@worker_process_shutdown.connect
def mark_child_dead(pid=None, **kwargs) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
