"""Reads: an order's webhook events with their attempts (staff), the undelivered backlog."""

from typing import Any

from orders.webhooks.models import WebhookEvent, WebhookEventStatus


def order_webhooks(*, order_id: Any) -> list[dict]:
    events = WebhookEvent.objects.filter(order_id=order_id).prefetch_related("deliveries").order_by("created_at")
    return [
        {
            "webhook_id": event.webhook_id,
            "type": event.type,
            "status": event.status,
            "created_at": event.created_at.isoformat(),
            "delivered_at": event.delivered_at.isoformat() if event.delivered_at else None,
            "attempts": [
                {
                    "attempt": d.attempt,
                    "outcome": d.outcome,
                    "status_code": d.status_code,
                    "duration_ms": d.duration_ms,
                    "error": d.error,
                    "response_excerpt": d.response_excerpt,
                    "at": d.created_at.isoformat(),
                }
                for d in event.deliveries.all()
            ],
        }
        for event in events
    ]


def webhook_backlog() -> int:
    """Events not delivered yet and not dead (the partial index)."""
    return WebhookEvent.objects.filter(status=WebhookEventStatus.PENDING).count()
