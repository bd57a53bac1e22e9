"""The webhooks' rows, in the orders app (loaded by orders/models.py)."""

import uuid

from django.db import models
from django.utils import timezone


class WebhookEventType(models.TextChoices):
    COMPLETED = "order.completed"
    FAILED = "order.failed"
    CANCELLED = "order.cancelled"
    REFUNDED = "order.refunded"


class WebhookEventStatus(models.TextChoices):
    PENDING = "pending"  # to be delivered (queued, or waiting for a retry)
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # dead-lettered (refused, or retries exhausted); a redrive makes it pending again


class WebhookEvent(models.Model):
    """One terminal transition of an order whose client has an endpoint, written in the transition's own
    transaction (so an event exists exactly when the state change committed). Its id is the `webhook-id`
    every attempt carries: the receiver's deduplication key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey("orders.Order", related_name="webhook_events", on_delete=models.CASCADE)
    client = models.ForeignKey("clients.ApiClient", related_name="+", on_delete=models.CASCADE, db_index=False)
    type = models.CharField(max_length=40, choices=WebhookEventType.choices)
    status = models.CharField(
        max_length=12, choices=WebhookEventStatus.choices, default=WebhookEventStatus.PENDING, db_default="pending"
    )
    # The JSON body, fixed at the first attempt so that every attempt and redrive sends the same bytes.
    body = models.TextField(blank=True, default="", db_default="")
    attempts = models.PositiveIntegerField(default=0, db_default=0)
    last_error = models.TextField(blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)  # the state change's time (the body's `timestamp`)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            # The backlog gauge: undelivered events only (a small partial index; most events are delivered).
            models.Index(fields=["created_at"], name="webhook_event_pending_idx", condition=models.Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.webhook_id}"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.id.hex}"


class WebhookDelivery(models.Model):
    """One attempt to deliver an event: what the endpoint answered (no more of its body than the excerpt)."""

    class Outcome(models.TextChoices):
        DELIVERED = "delivered"
        RETRY = "retry"  # transient (timeout, connection error, 429, 5xx): tried again later
        FAILED = "failed"  # refused (another 3xx/4xx, unsafe address) or the last retry: dead-lettered

    event = models.ForeignKey(WebhookEvent, related_name="deliveries", on_delete=models.CASCADE)
    attempt = models.PositiveIntegerField()
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.FloatField()
    error = models.TextField(blank=True, default="")
    response_excerpt = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event_id} #{self.attempt}"
