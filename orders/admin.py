import contextlib
import uuid

from django.contrib import admin, messages
from django.http import HttpRequest

from core.admin import ReadOnlyAdminMixin, pretty_json
from core.exceptions import ApplicationError
from orders import services
from orders.dead_letters.admin import DeadLetterInline, redrive_in_admin
from orders.models import CreditNote, DeadLetterStatus, Order, OrderHistory, OrderItem, OrderStatus, Product
from orders.webhooks.admin import WebhookEventInline


class OrderItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderItem
    fields = (
        "sku",
        "qty",
        "unit_price",
    )
    readonly_fields = fields
    extra = 0


class OrderHistoryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderHistory
    fields = (
        "created_at",
        "stage",
        "event",
        "detail",
    )
    readonly_fields = fields
    extra = 0
    ordering = ["created_at", "id"]


# The columns of the list, shown read-only on the detail page too.
ORDER_SUMMARY_FIELDS = (
    "id",
    "customer_id",
    "source",
    "status",
    "total_amount",
    "failure_reason",
    "created_at",
    "updated_at",
)


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ORDER_SUMMARY_FIELDS
    list_filter = ["status", "source", "created_at"]
    search_fields = ["customer_id"]
    date_hierarchy = "created_at"
    readonly_fields = [
        *ORDER_SUMMARY_FIELDS,
        "enrichment_data",
        "invoice_data",
        "cancelled_by",
        "cancelled_at",
        "cancel_reason",
        "credit_note_data",
    ]
    inlines = [OrderItemInline, OrderHistoryInline, DeadLetterInline, WebhookEventInline]
    actions = ["retry_failed_orders", "cancel_orders"]

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        with contextlib.suppress(ValueError):  # not an order id: the customer_id search stands
            results |= queryset.filter(id=uuid.UUID(search_term.strip()))
        return results, may_have_duplicates

    @admin.display(description="enrichment")
    def enrichment_data(self, order):
        return pretty_json(getattr(order, "enrichment", None) and order.enrichment.data)

    @admin.display(description="invoice")
    def invoice_data(self, order):
        invoice = getattr(order, "invoice", None)
        if invoice is None:
            return "—"
        return pretty_json(
            {
                "number": invoice.number,
                "subtotal": invoice.subtotal,
                "discount": invoice.discount,
                "total": invoice.total,
                "lines": invoice.lines,
            }
        )

    @admin.display(description="credit note")
    def credit_note_data(self, order):
        credit_note = getattr(order, "credit_note", None)
        if credit_note is None:
            return "—"
        return pretty_json({"number": credit_note.number, "total": credit_note.total, "lines": credit_note.lines})

    # Staff rights by permission (docs/security.md "Security"): an action shows and runs only with its permission.
    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.cancel_order")

    def has_redrive_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.redrive_deadletter")

    @admin.action(description="Cancel selected orders (refund the completed ones)", permissions=["cancel"])
    def cancel_orders(self, request, queryset):
        actor = f"staff:{request.user.get_username()}"
        done: dict[str, int] = {}
        for order_id in queryset.values_list("id", flat=True):
            try:
                result = services.order_cancel(order_id=order_id, actor=actor, reason="cancelled in the admin")
            except ApplicationError as exc:
                self.message_user(request, f"Order {order_id}: {exc.message}", messages.WARNING)
                continue
            if result.changed:
                done[result.order.status] = done.get(result.order.status, 0) + 1
        if done:
            summary = ", ".join(f"{count} {status}" for status, count in sorted(done.items()))
            self.message_user(request, f"Cancelled: {summary}.", messages.SUCCESS)

    @admin.action(description="Retry selected failed orders (redrive their dead letters)", permissions=["redrive"])
    def retry_failed_orders(self, request, queryset):
        failed = queryset.filter(status=OrderStatus.FAILED)
        ids = []
        for order in failed:
            letter = order.dead_letters.filter(status=DeadLetterStatus.ARCHIVED).order_by("-archived_at").first()
            if letter is None:
                self.message_user(
                    request,
                    f"Order {order.id} failed a business rule ({order.failure_reason}); nothing to redrive.",
                    messages.WARNING,
                )
            else:
                ids.append(letter.pk)
        if ids:
            redrive_in_admin(self, request, ids)
        skipped = queryset.exclude(status=OrderStatus.FAILED).count()
        if skipped:
            self.message_user(
                request, f"{skipped} selected order(s) are not failed and were left alone.", messages.WARNING
            )


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "stock", "reserved", "available"]
    search_fields = ["sku", "name"]
    readonly_fields = ["reserved"]


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["number", "order", "total", "created_at"]
    search_fields = ["number"]
    readonly_fields = ["number", "order", "total", "lines", "created_at"]
