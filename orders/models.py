import uuid

from django.db import models

# The webhooks' models live with their package (orders/webhooks/); imported here so the app loads them.
from orders.webhooks.models import WebhookDelivery, WebhookEvent, WebhookEventStatus, WebhookEventType  # noqa: F401


class OrderStatus(models.TextChoices):
    PENDING = "pending"  # accepted, not yet picked up by the process stage
    PROCESSING = "processing"  # stock reserved; enrichment and finalize to go
    COMPLETED = "completed"  # invoice written, stock moved (terminal)
    FAILED = "failed"  # ended with failure_reason (terminal)
    CANCELLED = "cancelled"  # cancelled before it completed; its reservation released, no invoice (terminal)
    REFUND_PENDING = "refund_pending"  # cancelled after it completed; the refund stage is on its way
    REFUNDED = "refunded"  # credit note written, stock returned (terminal)


TERMINAL_STATUSES = (OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.REFUNDED)
# Where the forward stages (process, enrich, finalize) still have work; past these they skip and end the chain.
FORWARD_STATUSES = (OrderStatus.PENDING, OrderStatus.PROCESSING)
# A stage's message is on its way for these (the reconciler watches them; the in-flight index covers them).
IN_FLIGHT_STATUSES = (OrderStatus.PENDING, OrderStatus.PROCESSING, OrderStatus.REFUND_PENDING)


class OrderSource(models.TextChoices):
    WEB = "web"
    MOBILE = "mobile"
    API = "api"


class HistoryEvent(models.TextChoices):
    ACCEPTED = "accepted"  # the POST committed the order
    PUBLISHED = "published"  # the chain left the outbox for the broker
    STARTED = "started"  # a stage began its work
    COMPLETED = "completed"  # a stage finished its work
    RETRY = "retry"  # a transient error; the stage will run again after a delay
    DUPLICATE_SKIPPED = "duplicate_skipped"  # redelivery or replay of a stage already done
    FAILED = "failed"  # the order ended failed
    DEAD_LETTERED = "dead_lettered"  # its message reached the DLQ
    REDRIVEN = "redriven"  # an operator re-published its dead letter
    CANCELLED = "cancelled"  # cancelled before it completed
    REFUND_REQUESTED = "refund_requested"  # cancelled after it completed: the refund stage will run
    REFUNDED = "refunded"  # the refund stage wrote the credit note and returned the stock
    RECONCILED = "reconciled"  # no progress for STUCK_ORDER_SECONDS: its stage's message re-published


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    # `stock` moves only at finalize; `reserved` is held between process and finalize/fail.
    stock = models.PositiveIntegerField(default=0)
    reserved = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=models.Q(reserved__lte=models.F("stock")), name="reserved_lte_stock")
        ]

    def __str__(self) -> str:
        return self.sku

    @property
    def available(self) -> int:
        return self.stock - self.reserved


class Order(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The API client that created it: the only client that may read it (staff read all).
    client = models.ForeignKey("clients.ApiClient", related_name="orders", on_delete=models.PROTECT, db_index=False)
    customer_id = models.CharField(max_length=64, db_index=True)
    source = models.CharField(max_length=10, choices=OrderSource.choices, default=OrderSource.API)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING, db_index=True)
    total_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    failure_reason = models.TextField(blank=True, default="")
    # business (the client's to read: unknown sku, no stock), or error, permanent, retries_exhausted,
    # dead_letter (the reason may carry exception text: staff only).
    failure_kind = models.CharField(max_length=20, blank=True, default="")
    # Who asked to cancel it (`client:<name>` or `staff:<username>`), when and why (POST /orders/{id}/cancel).
    # db_default: the accepting INSERT (orders/services/create.py) names only the columns it sets.
    cancelled_by = models.CharField(max_length=200, blank=True, default="", db_default="")
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=500, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        # Staff rights beyond Django's view/add/change/delete (docs/security.md "Security"): checked by the admin's
        # actions, GET/cancel on /orders and /ops/diagnostics; a staff user without them gets a 403.
        permissions = [
            ("cancel_order", "Can cancel an order (a completed one is refunded)"),
            ("view_every_order", "Can read every client's orders through the API"),
            ("view_diagnostics", "Can read the backing services' diagnostics (/ops/diagnostics)"),
        ]
        # What GET /orders pages through (cursor pagination: newest first, or by updated_at for
        # `updated_since`), for one client and for staff; the client's index also serves its FK.
        indexes = [
            models.Index(fields=["client", "-created_at"], name="order_client_created_idx"),
            models.Index(fields=["client", "updated_at"], name="order_client_updated_idx"),
            models.Index(fields=["-created_at"], name="order_created_idx"),
            # The reconciler's candidates (orders still in flight, oldest change first), and the oldest
            # in-flight order's age: a small partial index, since most orders are terminal.
            models.Index(
                fields=["updated_at"],
                name="order_in_flight_idx",
                condition=models.Q(status__in=IN_FLIGHT_STATUSES),
            ),
            # A client's orders in flight, counted (up to ORDERS_IN_FLIGHT_MAX) on every POST /orders.
            models.Index(
                fields=["client"],
                name="order_client_in_flight_idx",
                condition=models.Q(status__in=IN_FLIGHT_STATUSES),
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def forward_done(self) -> bool:
        """The forward stages have nothing left to do (completed, failed, cancelled or being refunded)."""
        return self.status not in FORWARD_STATUSES


class OrderItem(models.Model):
    order = models.ForeignKey(Order, related_name="items", on_delete=models.CASCADE)
    sku = models.CharField(max_length=64)
    qty = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.sku} x{self.qty}"


class OrderEnrichment(models.Model):
    order = models.OneToOneField(Order, related_name="enrichment", on_delete=models.CASCADE)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"enrichment of {self.order_id}"


class Invoice(models.Model):
    # One invoice per order, enforced by the database and not only by the state guard.
    order = models.OneToOneField(Order, related_name="invoice", on_delete=models.CASCADE)
    number = models.CharField(max_length=40, unique=True)
    subtotal = models.DecimalField(max_digits=14, decimal_places=2)
    discount = models.DecimalField(max_digits=14, decimal_places=2)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    lines = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.number


class CreditNote(models.Model):
    """The refund of a completed order: the negative of its invoice. One per order, enforced by the database."""

    order = models.OneToOneField(Order, related_name="credit_note", on_delete=models.CASCADE)
    number = models.CharField(max_length=40, unique=True)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    lines = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.number


class IdempotencyKey(models.Model):
    """An X-Idempotency-Key, scoped to the client that sent it (two clients may use the same key)."""

    order = models.OneToOneField(Order, related_name="idempotency_key", on_delete=models.CASCADE, primary_key=True)
    client = models.ForeignKey("clients.ApiClient", related_name="+", on_delete=models.CASCADE, db_index=False)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_key_per_client")]

    def __str__(self) -> str:
        return f"{self.client_id}:{self.key}"


class OutboxMessage(models.Model):
    """A chain to publish, written in the order's transaction (the transactional outbox)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, related_name="outbox", on_delete=models.CASCADE)
    kind = models.CharField(max_length=40, default="order.created")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"], name="outbox_unpublished_idx", condition=models.Q(published_at__isnull=True)
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.order_id}"


class OrderHistory(models.Model):
    order = models.ForeignKey(Order, related_name="history", on_delete=models.CASCADE)
    stage = models.CharField(max_length=20)
    event = models.CharField(max_length=20, choices=HistoryEvent.choices)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "order history"
        indexes = [
            # The reconciler's look for failed orders whose dead letter was lost: failures are few.
            models.Index(
                fields=["created_at"], name="history_failed_idx", condition=models.Q(event=HistoryEvent.FAILED)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stage} {self.event}"


class DeadLetterStatus(models.TextChoices):
    ARCHIVED = "archived"  # stored from the DLQ, waiting for an operator
    REDRIVEN = "redriven"  # re-published to its stage queue
    DISCARDED = "discarded"  # an operator decided it needs no redrive


class DeadLetter(models.Model):
    """A message taken off the RabbitMQ DLQ by the archiver, with what an operator needs to act on it."""

    # Celery's task id (a redrive gets a new one); a hash of the body for non-Celery messages.
    message_key = models.CharField(max_length=128, unique=True)
    order = models.ForeignKey(Order, related_name="dead_letters", null=True, blank=True, on_delete=models.SET_NULL)
    task_name = models.CharField(max_length=200, blank=True, default="")
    stage = models.CharField(max_length=20, blank=True, default="")
    queue = models.CharField(max_length=100, blank=True, default="")
    reason = models.CharField(max_length=40, help_text="x-death reason: rejected, delivery_limit, expired, ...")
    exception = models.CharField(max_length=200, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=1)
    first_death_at = models.DateTimeField(null=True, blank=True)
    last_death_at = models.DateTimeField(null=True, blank=True)
    headers = models.JSONField(default=dict)
    properties = models.JSONField(default=dict)
    body = models.TextField(blank=True, default="")
    content_type = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(
        max_length=12, choices=DeadLetterStatus.choices, default=DeadLetterStatus.ARCHIVED, db_index=True
    )
    archived_at = models.DateTimeField(auto_now_add=True)
    redriven_at = models.DateTimeField(null=True, blank=True)
    redriven_by = models.CharField(max_length=150, blank=True, default="")
    redrive_task_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-archived_at"]
        # Reading them is Django's view_deadletter (the admin and GET /ops/dead-letters).
        permissions = [
            ("redrive_deadletter", "Can redrive a dead letter (publish its message again)"),
            ("discard_deadletter", "Can discard a dead letter"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name or 'message'} {self.message_key} ({self.reason})"

    @property
    def failure_group(self) -> str:
        return f"{self.task_name}:{self.exception or self.reason}"
