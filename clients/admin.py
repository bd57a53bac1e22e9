from django.contrib import admin
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

    def has_add_permission(self, request, obj=None):
        return False  # a key is created on its own page, which shows it once


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [ApiClientKeyInline]


@admin.register(ApiClientKey)
class ApiClientKeyAdmin(APIKeyModelAdmin):
    """Add a key (its value is shown once, in the message after saving), set an expiry, revoke it."""

    list_display = ["prefix", "client", "name", "created", "expiry_date", "_has_expired", "revoked"]
    list_filter = ["client", "revoked", "created"]
    search_fields = ["prefix", "name", "client__name"]
    autocomplete_fields = ["client"]
