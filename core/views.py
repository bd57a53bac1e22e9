"""Liveness, readiness and Prometheus metrics.

Readiness is what the process cannot serve without: PostgreSQL and its migrations. RabbitMQ and Redis
are shared by every pod, so failing readiness on them would take every web pod out of the Service at
once, although POST (outbox) and GET (database) still work: their health is a gauge on /metrics and the
staff-only GET /ops/diagnostics (orders/metrics_collect.py, registered with on_metrics_scrape). Anonymous
callers never see error text.
"""

import ipaddress
import os
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from core.db import database_ping
from core.logging import get_logger

log = get_logger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    database_ping()
    return None


# Loading the migration graph reads every migration file: done until it first says "applied", then never
# again in this process (migrations are not unapplied under a running deployment).
_migrations_applied = False


def _check_migrations() -> str | None:
    global _migrations_applied
    if not _migrations_applied:
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            return "not applied"
        _migrations_applied = True
    return None


READINESS_CHECKS = {"database": _check_database, "migrations": _check_migrations}


def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, str] = {}
    ok = True
    for name, check in READINESS_CHECKS.items():
        if not ok:
            results[name] = "not checked"
            continue
        try:
            problem = check()
        except Exception as exc:
            # The text goes to the log, not to whoever called: it can name hosts, users, databases.
            log.warning("readiness_check_failed", check=name, error=f"{type(exc).__name__}: {exc}")
            problem = "unavailable"
        results[name] = problem or "ok"
        ok = problem is None
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": results}, status=200 if ok else 503)


def metrics_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


# Gauges read at scrape time (outbox backlog, backing services), registered by the apps that own them
# (AppConfig.ready), so that this module depends on none of them.
_scrape_hooks: list[Callable[[], None]] = []


def on_metrics_scrape(hook: Callable[[], None]) -> None:
    if hook not in _scrape_hooks:
        _scrape_hooks.append(hook)


def _metrics_host_allowed(request: HttpRequest) -> bool:
    """An IP-address Host (a scrape by the pod's address) or a name in METRICS_ALLOWED_HOSTS: never the
    public host the Ingress routes, so /metrics is not served to the internet (the request's raw Host, as
    ProbeMiddleware runs before host validation)."""
    host = (request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME") or "").strip().lower()
    name = host[1 : host.index("]")] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    allowed = {h.lower() for h in settings.METRICS_ALLOWED_HOSTS}
    return name in allowed or f"[{name}]" in allowed or host in allowed


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _metrics_host_allowed(request):
        return HttpResponseNotFound(b"Not Found", content_type="text/plain")
    for hook in _scrape_hooks:
        hook()
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
