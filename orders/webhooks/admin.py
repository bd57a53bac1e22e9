"""Webhook events and their attempts in the admin (read-only: they change by delivery and redrive)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from core.admin import ReadOnlyAdminMixin
from orders.webhooks.models import WebhookDelivery, WebhookEvent


class WebhookDeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = WebhookDelivery
    fields = (
        "created_at",
        "attempt",
        "outcome",
        "status_code",
        "duration_ms",
        "error",
        "response_excerpt",
    )
    readonly_fields = fields
    extra = 0


class WebhookEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """On the order's page."""

    model = WebhookEvent
    fields = (
        "event_link",
        "type",
        "status",
        "attempts",
        "created_at",
        "delivered_at",
        "last_error",
    )
    readonly_fields = fields
    extra = 0

    @admin.display(description="event")
    def event_link(self, event: WebhookEvent) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:orders_webhookevent_change", args=[event.pk]), event.webhook_id
        )


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["webhook_id", "type", "status", "attempts", "client", "order_link", "created_at", "delivered_at"]
    list_filter = ["status", "type", "created_at"]
    search_fields = ["=order__id", "client__name"]
    list_select_related = ["client"]
    readonly_fields = [
        "webhook_id",
        "type",
        "status",
        "attempts",
        "client",
        "order_link",
        "created_at",
        "delivered_at",
        "last_error",
        "body",
    ]
    fields = list(readonly_fields)
    inlines = [WebhookDeliveryInline]

    @admin.display(description="order")
    def order_link(self, event: WebhookEvent) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:orders_order_change", args=[event.order_id]), event.order_id
        )
