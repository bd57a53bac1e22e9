"""Health (liveness), readiness (every backing service) and Prometheus metrics."""
import os

from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client import REGISTRY


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return "migrations not applied"
    return None


def _check_broker() -> str | None:
    from orders_project.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return None


def _check_redis() -> str | None:
    cache.get("readyz")
    return None


def readyz(request):
    checks = {"database": _check_database, "rabbitmq": _check_broker, "redis": _check_redis}
    results, ok = {}, True
    for name, check in checks.items():
        try:
            problem = check()
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        results[name] = problem or "ok"
        ok = ok and problem is None
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": results}, status=200 if ok else 503)


def metrics_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def metrics_view(request):
    from orders import metrics_collect

    metrics_collect.refresh_gauges()
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
