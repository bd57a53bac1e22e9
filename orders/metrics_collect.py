"""Gauges read from the system of record at scrape time (outbox backlog, DLQ depth)."""
from django.db.models import Min
from django.utils import timezone

from orders import metrics
from orders.models import OutboxMessage


def refresh_gauges() -> None:
    try:
        unsent = OutboxMessage.objects.filter(published_at__isnull=True).aggregate(oldest=Min("created_at"))
        metrics.OUTBOX_BACKLOG.set(OutboxMessage.objects.filter(published_at__isnull=True).count())
        oldest = unsent["oldest"]
        metrics.OUTBOX_OLDEST_AGE.set((timezone.now() - oldest).total_seconds() if oldest else 0)
    except Exception:
        pass
    try:
        from orders.dead_letters import dlq_depth

        metrics.DLQ_DEPTH.set(dlq_depth())
    except Exception:
        pass
