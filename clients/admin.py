from django.contrib import admin
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from clients.models import ApiClient, ApiClientKey

# The library's own key model is unused here: keys belong to clients.
admin.site.unregister(APIKey)


class ApiClientKeyInline(admin.TabularInline):
    model = ApiClientKey
    fields = ["prefix", "name", "created", "expiry_date", "revoked"]
    readonly_fields = ["prefix", "name", "created", "expiry_date", "revoked"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: ApiClient | None = None) -> bool:
        return False  # a key is created on its own page, which shows it once


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [ApiClientKeyInline]


@admin.register(ApiClientKey)
class ApiClientKeyAdmin(APIKeyModelAdmin):
    """Add a key (its value is shown once, in the message after saving), set an expiry, revoke it."""

    # The library's APIKeyModelAdmin sets these as unannotated tuples, which mypy types as fixed-length
    # tuples of exactly those strings: any other list (what Django's stubs accept) is an "incompatible" override.
    list_display = ["prefix", "client", "name", "created", "expiry_date", "_has_expired", "revoked"]  # type: ignore[assignment]
    list_filter = ["client", "revoked", "created"]  # type: ignore[assignment]
    search_fields = ["prefix", "name", "client__name"]  # type: ignore[assignment]
    autocomplete_fields = ["client"]
