"""Webhook events and their attempts in the admin (read-only: they change by delivery and redrive), and
the endpoints' status: failing or disabled, with the action that re-enables them."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from clients.models import WebhookEndpointStatus
from core.admin import ReadOnlyAdminMixin
from orders.webhooks.delivery import webhook_endpoint_enable
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


class EndpointStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("disabled", "disabled"), ("failing", "failing"), ("ok", "ok")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "disabled":
            return queryset.filter(disabled_at__isnull=False)
        if self.value() == "failing":
            return queryset.filter(disabled_at__isnull=True, consecutive_failures__gt=0)
        if self.value() == "ok":
            return queryset.filter(disabled_at__isnull=True, consecutive_failures=0)
        return queryset


@admin.register(WebhookEndpointStatus)
class WebhookEndpointStatusAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Which endpoints fail and which were disabled (their clients' events wait, pending); re-enabling one
    sends its waiting events (docs/pipeline.md "Webhooks"). Needs clients.change_webhookendpointstatus."""

    list_display = [
        "client",
        "url",
        "state",
        "consecutive_failures",
        "failing_since",
        "disabled_at",
        "waiting_events",
    ]
    list_filter = [EndpointStateFilter]
    search_fields = ["client__name", "url"]
    list_select_related = ["client"]
    readonly_fields = ("client", "url", "consecutive_failures", "failing_since", "disabled_at", "disabled_reason")
    fields = readonly_fields
    actions = ["reenable"]

    @admin.display(description="state")
    def state(self, endpoint: WebhookEndpointStatus) -> str:
        if endpoint.disabled_at is not None:
            return "disabled"
        return "failing" if endpoint.consecutive_failures else "ok"

    @admin.display(description="events waiting")
    def waiting_events(self, endpoint: WebhookEndpointStatus) -> int:
        return WebhookEvent.objects.filter(client_id=endpoint.client_id, status="pending").count()

    def has_reenable_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("clients.change_webhookendpointstatus")

    @admin.action(description="Re-enable selected endpoints (and send their waiting events)", permissions=["reenable"])
    def reenable(self, request: HttpRequest, queryset: QuerySet) -> None:
        published = sum(webhook_endpoint_enable(endpoint=endpoint) for endpoint in queryset)
        self.message_user(
            request,
            f"{queryset.count()} endpoint(s) enabled, {published} waiting event(s) sent again",
            messages.SUCCESS,
        )
