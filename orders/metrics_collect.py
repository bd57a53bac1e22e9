"""Backing-service health and the gauges read at scrape time: PostgreSQL, RabbitMQ (with the DLQ's
depth), Redis, the outbox backlog and the webhooks' backlog. /metrics and the staff diagnostics endpoint read
them; /readyz
does not (it checks only what the web cannot serve without: deploy/README.md "Probes and readiness").

Nothing here opens a connection per call: the broker check keeps one AMQP connection per process and
reuses it, Redis is pinged over django-redis's pool, and their answers and the database gauges' queries are
cached for DIAGNOSTICS_CACHE_SECONDS, however many probes and scrapers ask.
"""

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone

from core.broker_nodes import broker_connect, broker_drop, broker_nodes
from core.db import database_ping
from core.logging import get_logger
from orders import metrics, topology
from orders.models import IN_FLIGHT_STATUSES, Order, OutboxMessage
from orders.webhooks.selectors import webhook_backlog

log = get_logger(__name__)


@dataclass(frozen=True)
class Check:
    ok: bool
    error: str = ""
    value: float | None = None

    @classmethod
    def failed(cls, exc: BaseException) -> "Check":
        return cls(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])


class CachedCheck:
    """Runs `check` at most once per DIAGNOSTICS_CACHE_SECONDS in this process; callers in between get
    its last answer (a failure too, so a down service is not hammered by every probe)."""

    def __init__(self, check: Callable[[], Check]):
        self.check = check
        self.lock = threading.Lock()
        self.result: Check | None = None
        self.checked_at = float("-inf")

    def __call__(self) -> Check:
        with self.lock:
            if time.monotonic() - self.checked_at >= settings.DIAGNOSTICS_CACHE_SECONDS:
                try:
                    self.result = self.check()
                except Exception as exc:
                    self.result = Check.failed(exc)
                self.checked_at = time.monotonic()
            return cast(Check, self.result)  # set above on the first call

    def reset(self) -> None:
        with self.lock:
            self.result, self.checked_at = None, float("-inf")


class BrokerProbe:
    """The DLQ's depth over one kept AMQP connection (a passive declare proves the broker answers). A
    kept connection the broker closed meanwhile (idle, restart) is replaced once, at once."""

    def __init__(self):
        self.conn = None
        self.channel = None
        self.pid = None

    def _depth(self) -> int:
        if self.conn is None or self.pid != os.getpid():  # a forked child never shares its parent's socket
            # idle between checks: nothing would service heartbeats
            self.conn = broker_connect(role="probe", heartbeat=0)
            self.pid = os.getpid()
            self.channel = self.conn.channel()
        _, count, _ = cast(Any, self.channel).queue_declare(topology.DEAD_LETTER_QUEUE_NAME, passive=True)
        return count

    def __call__(self) -> Check:
        for attempt in (1, 2):
            reused = self.conn is not None and self.pid == os.getpid()
            try:
                return Check(ok=True, value=self._depth())
            except Exception as exc:
                self.close()
                if not reused or attempt == 2:
                    return Check.failed(exc)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None and self.pid == os.getpid():
            broker_drop(self.conn)
        self.conn = self.channel = None


def _redis_ping() -> Check:
    from django_redis import get_redis_connection

    get_redis_connection("default").ping()
    return Check(ok=True)


broker_check = CachedCheck(BrokerProbe())
redis_check = CachedCheck(_redis_ping)


def database_check() -> Check:
    try:
        database_ping()
        return Check(ok=True)
    except Exception as exc:
        return Check.failed(exc)


@dataclass(frozen=True)
class OutboxState:
    backlog: int
    oldest_age_seconds: float


def outbox_state() -> OutboxState:
    # One scan of the unsent rows (the partial index) for both numbers.
    row = OutboxMessage.objects.filter(published_at__isnull=True).aggregate(
        backlog=Count("id"), oldest=Min("created_at")
    )
    oldest = row["oldest"]
    return OutboxState(row["backlog"], (timezone.now() - oldest).total_seconds() if oldest else 0.0)


def oldest_in_flight_age() -> float:
    """Seconds since the least recently changed order in flight last changed (the partial index)."""
    oldest = Order.objects.filter(status__in=IN_FLIGHT_STATUSES).aggregate(oldest=Min("updated_at"))["oldest"]
    return (timezone.now() - oldest).total_seconds() if oldest else 0.0


def _set_up(service: str, check: Check) -> None:
    metrics.BACKING_SERVICE_UP.labels(service=service).set(1 if check.ok else 0)


def _database_gauges() -> Check:
    """The aggregate queries behind the database gauges; their values stay set until the next run."""
    state = outbox_state()
    metrics.OUTBOX_BACKLOG.set(state.backlog)
    metrics.OUTBOX_OLDEST_AGE.set(state.oldest_age_seconds)
    metrics.OLDEST_IN_FLIGHT_AGE.set(oldest_in_flight_age())
    metrics.WEBHOOK_BACKLOG.set(webhook_backlog())
    return Check(ok=True)


# The aggregate queries on every scrape would let anyone who can reach /metrics load the database at will:
# they run at most once per DIAGNOSTICS_CACHE_SECONDS per process, like the broker and Redis checks.
database_gauges = CachedCheck(_database_gauges)


def refresh_gauges() -> None:
    _set_up("database", database_gauges())
    rabbitmq = broker_check()
    _set_up("rabbitmq", rabbitmq)
    if rabbitmq.ok and rabbitmq.value is not None:
        metrics.DLQ_DEPTH.set(rabbitmq.value)
    _set_up("redis", redis_check())


def _entry(check: Check, **values) -> dict:
    return {"status": "ok", **values} if check.ok else {"status": "error", "error": check.error}


def diagnostics() -> dict:
    """Every backing service, ok or the error's text (staff only: GET /ops/diagnostics)."""
    database = database_check()
    try:
        state = outbox_state()
        outbox = {"status": "ok", "backlog": state.backlog, "oldest_age_seconds": round(state.oldest_age_seconds, 3)}
    except Exception as exc:
        outbox = _entry(Check.failed(exc))
    rabbitmq, redis = broker_check(), redis_check()
    return {
        "database": _entry(database),
        "rabbitmq": _entry(
            rabbitmq,
            nodes=broker_nodes().nodes,  # this process's order: the one it failed on last
            connected=broker_nodes().node_by_role,
            failovers=broker_nodes().failovers,
        ),
        "redis": _entry(redis),
        "dlq": _entry(rabbitmq, depth=int(rabbitmq.value or 0)),
        "outbox": outbox,
        "cached_for_seconds": settings.DIAGNOSTICS_CACHE_SECONDS,
    }
