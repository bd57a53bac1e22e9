"""Reads of the dead-letter archive: lists and failure groups for the operators' tools."""

from typing import Any

from django.db.models import Count, Max, Q, QuerySet

from orders.models import DeadLetter, DeadLetterStatus


def dead_letter_list(
    *, status: str | None = None, group: str | None = None, order_id: Any = None
) -> QuerySet[DeadLetter]:
    qs = DeadLetter.objects.select_related("order").order_by("-archived_at")
    if status:
        qs = qs.filter(status=status)
    if order_id:
        qs = qs.filter(order_id=order_id)
    if group:
        task_name, _, failure = group.partition(":")
        qs = qs.filter(task_name=task_name).filter(_failure_q(failure))
    return qs


def _failure_q(failure: str) -> Q:
    return Q(exception=failure) | (Q(exception="") & Q(reason=failure))


def dead_letter_groups(*, status: str | None = DeadLetterStatus.ARCHIVED) -> list[dict]:
    """Failure groups (same task + exception type) with counts, biggest first."""
    qs = DeadLetter.objects.all()
    if status:
        qs = qs.filter(status=status)
    rows = qs.values("task_name", "exception", "reason").annotate(count=Count("id"), last=Max("archived_at"))
    groups: dict[str, dict] = {}
    for row in rows:
        key = f"{row['task_name']}:{row['exception'] or row['reason']}"
        entry = groups.setdefault(
            key,
            {
                "group": key,
                "task": row["task_name"],
                "failure": row["exception"] or row["reason"],
                "count": 0,
                "last_archived_at": row["last"],
            },
        )
        entry["count"] += row["count"]
        entry["last_archived_at"] = max(entry["last_archived_at"], row["last"])
    return sorted(groups.values(), key=lambda g: (-g["count"], g["group"]))
