"""API clients (a web shop, a mobile app, a partner) and their keys. A client owns the orders it creates."""

from django.db import models
from rest_framework_api_key.models import AbstractAPIKey

# The built-in client whose key is SECRET_TOKEN (existing callers, the seed, `make run`). Its id is fixed
# (a migration creates it and moves the id sequence past it; post_migrate re-creates it after a flush), so
# a request authenticated by SECRET_TOKEN needs no lookup.
DEFAULT_CLIENT_ID = 1
DEFAULT_CLIENT_NAME = "default"


class ApiClient(models.Model):
    name = models.SlugField(max_length=64, unique=True, help_text="Who calls the API: a shop, an app, a partner.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API client"

    def __str__(self) -> str:
        return self.name


class ApiClientKey(AbstractAPIKey):
    """A key of a client, stored hashed (SHA-512 of a high-entropy key), shown once. A client may hold several
    active keys at once, which is how a key is rotated: create the new one, move callers, revoke the old."""

    client = models.ForeignKey(ApiClient, related_name="keys", on_delete=models.CASCADE)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API client key"
        verbose_name_plural = "API client keys"


class WebhookEndpoint(models.Model):
    """Where a client's order events are POSTed (Standard Webhooks), and the secrets they are signed with.

    The secret is `whsec_` + base64 of 32 random bytes. It is stored as is: signing needs it (an HMAC key
    cannot be kept as a hash). Rotating keeps the old one valid for WEBHOOK_SECRET_GRACE_SECONDS: deliveries
    are signed with both meanwhile, so the receiver can switch over without losing a delivery."""

    client = models.OneToOneField(ApiClient, related_name="webhook_endpoint", on_delete=models.CASCADE)
    url = models.URLField(max_length=2000, help_text="https only; never a private, loopback or link-local address.")
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Its health (orders/webhooks/delivery.py): failed attempts in a row and since when. Past
    # WEBHOOK_DISABLE_AFTER_FAILURES or WEBHOOK_DISABLE_AFTER_SECONDS it is disabled: nothing is sent to it,
    # its client's events wait (pending) until an operator re-enables it, which sends them.
    consecutive_failures = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=500, blank=True, default="", db_default="", editable=False)

    class Meta:
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return f"{self.client.name}: {self.url}"


class WebhookEndpointStatus(WebhookEndpoint):
    """The endpoints' health for operators (the admin's "webhook endpoint status"): failing, disabled, and
    the re-enable action (a permission of its own: change)."""

    class Meta:
        proxy = True
        verbose_name = "webhook endpoint status"
        verbose_name_plural = "webhook endpoint statuses"
