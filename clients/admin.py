from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from clients import services
from clients.models import ApiClient, ApiClientKey, WebhookEndpoint
from core.exceptions import ApplicationError

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


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        max_length=2000, assume_scheme="https", help_text=WebhookEndpoint._meta.get_field("url").help_text
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["client", "url"]

    def clean_url(self) -> str:
        try:
            return services.webhook_url_validate(url=self.cleaned_data["url"])
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Set a client's endpoint (saving it again rotates its secret); the secret is shown in the message
    after saving, and never on the page."""

    form = WebhookEndpointForm
    list_display = ["client", "url", "secret_hint", "previous_secret_expires_at", "updated_at"]
    search_fields = ["client__name", "url"]
    readonly_fields = ["secret_hint", "previous_secret_expires_at", "created_at", "updated_at"]
    autocomplete_fields = ["client"]
    actions = ["rotate_secret"]

    @admin.display(description="secret")
    def secret_hint(self, endpoint: WebhookEndpoint) -> str:
        return f"whsec_…{endpoint.secret[-4:]}" if endpoint.secret else "—"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        endpoint, secret = services.webhook_endpoint_set(client=obj.client, url=obj.url)
        obj.pk, obj._state.adding = endpoint.pk, False
        self.message_user(
            request,
            f"Signing secret of {obj.client.name}'s endpoint (store it now; it is not shown again): {secret}",
            messages.SUCCESS,
        )

    @admin.action(description="Rotate the signing secret (the old one stays valid for the grace period)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet) -> None:
        for endpoint in queryset.select_related("client"):
            _, secret = services.webhook_secret_rotate(client=endpoint.client)
            self.message_user(
                request, f"New signing secret of {endpoint.client.name}'s endpoint: {secret}", messages.SUCCESS
            )
