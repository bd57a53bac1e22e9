"""The admin's dead letters: list, failure-group filter, redrive and discard actions (through the services)."""

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html

from core.admin import ReadOnlyAdminMixin, pretty_json
from orders.dead_letters.redrive import dead_letter_discard, dead_letter_redrive_many
from orders.dead_letters.selectors import dead_letter_groups, dead_letter_list
from orders.models import DeadLetter, DeadLetterStatus

# One tuple for both: django-stubs type `fields` and `readonly_fields` as different lists (a list fits only one).
_INLINE_FIELDS = ("id", "status", "task_name", "reason", "exception", "attempts", "archived_at", "redriven_by")


class DeadLetterInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeadLetter
    fields = _INLINE_FIELDS
    readonly_fields = _INLINE_FIELDS
    extra = 0
    show_change_link = True


def redrive_in_admin(modeladmin: admin.ModelAdmin, request: HttpRequest, dead_letter_ids: list[int]) -> None:
    result = dead_letter_redrive_many(dead_letter_ids=dead_letter_ids, actor=f"admin:{request.user.get_username()}")
    if result.redriven:
        modeladmin.message_user(request, f"Redriven {len(result.redriven)} dead letter(s).", messages.SUCCESS)
    for pk, why in result.refused.items():
        modeladmin.message_user(request, f"Dead letter {pk} refused: {why}", messages.ERROR)


class FailureGroupFilter(admin.SimpleListFilter):
    title = "failure group"
    parameter_name = "group"

    def lookups(self, request, model_admin):
        return [(g["group"], f"{g['group']} ({g['count']})") for g in dead_letter_groups(status=None)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset & dead_letter_list(group=self.value())
        return queryset


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "group",
        "order_link",
        "reason",
        "attempts",
        "error_message",
        "archived_at",
        "redriven_by",
    ]
    list_filter = ["status", FailureGroupFilter, "reason", "stage"]
    search_fields = ["message_key", "error_message", "exception"]
    readonly_fields = [
        "message_key",
        "order",
        "task_name",
        "stage",
        "queue",
        "reason",
        "exception",
        "error_message",
        "attempts",
        "first_death_at",
        "last_death_at",
        "status",
        "archived_at",
        "redriven_at",
        "redriven_by",
        "redrive_task_id",
        "content_type",
        "headers_pretty",
        "body",
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
        return pretty_json(dead_letter.headers)

    # Staff rights by permission (docs/security.md "Security"): an action shows and runs only with its permission.
    def has_redrive_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.redrive_deadletter")

    def has_discard_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.discard_deadletter")

    @admin.action(description="Redrive selected dead letters", permissions=["redrive"])
    def redrive(self, request, queryset):
        redrive_in_admin(self, request, list(queryset.values_list("pk", flat=True)))

    @admin.action(description="Discard selected dead letters", permissions=["discard"])
    def discard(self, request, queryset):
        actor = f"admin:{request.user.get_username()}"
        done = 0
        for dead_letter in queryset.filter(status=DeadLetterStatus.ARCHIVED):
            dead_letter_discard(dead_letter_id=dead_letter.pk, actor=actor)
            done += 1
        self.message_user(request, f"Discarded {done} dead letter(s).", messages.SUCCESS)
