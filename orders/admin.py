import json
import uuid

from django.contrib import admin, messages
from django.utils.html import format_html

from orders import dead_letters
from orders.models import DeadLetter, DeadLetterStatus, Order, OrderHistory, OrderItem, OrderStatus, Product


class ReadOnlyAdminMixin:
    """Orders and dead letters change only through services (their invariants live there)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _pretty_json(value) -> str:
    if value is None:
        return "—"
    return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(value, indent=2, default=str))


class OrderItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderItem
    fields = ["sku", "qty", "unit_price"]
    readonly_fields = fields
    extra = 0


class OrderHistoryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderHistory
    fields = ["created_at", "stage", "event", "detail"]
    readonly_fields = fields
    extra = 0
    ordering = ["created_at", "id"]


class DeadLetterInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeadLetter
    fields = ["id", "status", "task_name", "reason", "exception", "attempts", "archived_at", "redriven_by"]
    readonly_fields = fields
    extra = 0
    show_change_link = True


def _redrive(modeladmin, request, dead_letter_ids) -> None:
    result = dead_letters.dead_letter_redrive_many(dead_letter_ids=dead_letter_ids, actor=f"admin:{request.user.get_username()}")
    if result.redriven:
        modeladmin.message_user(request, f"Redriven {len(result.redriven)} dead letter(s).", messages.SUCCESS)
    for pk, why in result.refused.items():
        modeladmin.message_user(request, f"Dead letter {pk} refused: {why}", messages.ERROR)


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "customer_id", "source", "status", "total_amount", "failure_reason", "created_at", "updated_at"]
    list_filter = ["status", "source", "created_at"]
    search_fields = ["customer_id"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id", "customer_id", "source", "status", "total_amount", "failure_reason", "created_at", "updated_at",
        "enrichment_data", "invoice_data",
    ]
    inlines = [OrderItemInline, OrderHistoryInline, DeadLetterInline]
    actions = ["retry_failed_orders"]

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            results |= queryset.filter(id=uuid.UUID(search_term.strip()))
        except ValueError:
            pass  # not an order id: the customer_id search stands
        return results, may_have_duplicates

    @admin.display(description="enrichment")
    def enrichment_data(self, order):
        return _pretty_json(getattr(order, "enrichment", None) and order.enrichment.data)

    @admin.display(description="invoice")
    def invoice_data(self, order):
        invoice = getattr(order, "invoice", None)
        if invoice is None:
            return "—"
        return _pretty_json({"number": invoice.number, "subtotal": invoice.subtotal, "discount": invoice.discount, "total": invoice.total, "lines": invoice.lines})

    @admin.action(description="Retry selected failed orders (redrive their dead letters)")
    def retry_failed_orders(self, request, queryset):
        failed = queryset.filter(status=OrderStatus.FAILED)
        ids = []
        for order in failed:
            letter = order.dead_letters.filter(status=DeadLetterStatus.ARCHIVED).order_by("-archived_at").first()
            if letter is None:
                self.message_user(request, f"Order {order.id} failed a business rule ({order.failure_reason}); nothing to redrive.", messages.WARNING)
            else:
                ids.append(letter.pk)
        if ids:
            _redrive(self, request, ids)
        skipped = queryset.exclude(status=OrderStatus.FAILED).count()
        if skipped:
            self.message_user(request, f"{skipped} selected order(s) are not failed and were left alone.", messages.WARNING)


class FailureGroupFilter(admin.SimpleListFilter):
    title = "failure group"
    parameter_name = "group"

    def lookups(self, request, model_admin):
        return [(g["group"], f"{g['group']} ({g['count']})") for g in dead_letters.dead_letter_groups(status=None)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset & dead_letters.dead_letter_list(group=self.value())
        return queryset


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "status", "group", "order_link", "reason", "attempts", "error_message", "archived_at", "redriven_by"]
    list_filter = ["status", FailureGroupFilter, "reason", "stage"]
    search_fields = ["message_key", "error_message", "exception"]
    readonly_fields = [
        "message_key", "order", "task_name", "stage", "queue", "reason", "exception", "error_message", "attempts",
        "first_death_at", "last_death_at", "status", "archived_at", "redriven_at", "redriven_by", "redrive_task_id",
        "content_type", "headers_pretty", "body",
    ]
    exclude = ["headers", "properties"]
    actions = ["redrive", "discard"]

    @admin.display(description="failure group")
    def group(self, dead_letter):
        return dead_letter.failure_group

    @admin.display(description="order")
    def order_link(self, dead_letter):
        if dead_letter.order_id is None:
            return "—"
        return format_html('<a href="../order/{}/change/">{}</a>', dead_letter.order_id, dead_letter.order_id)

    @admin.display(description="headers")
    def headers_pretty(self, dead_letter):
        return _pretty_json(dead_letter.headers)

    @admin.action(description="Redrive selected dead letters")
    def redrive(self, request, queryset):
        _redrive(self, request, list(queryset.values_list("pk", flat=True)))

    @admin.action(description="Discard selected dead letters")
    def discard(self, request, queryset):
        actor = f"admin:{request.user.get_username()}"
        done = 0
        for dead_letter in queryset.filter(status=DeadLetterStatus.ARCHIVED):
            dead_letters.dead_letter_discard(dead_letter_id=dead_letter.pk, actor=actor)
            done += 1
        self.message_user(request, f"Discarded {done} dead letter(s).", messages.SUCCESS)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "stock", "reserved", "available"]
    search_fields = ["sku", "name"]
    readonly_fields = ["reserved"]
