"""Reads: the client a bearer key belongs to, clients and their keys, webhook endpoints."""

import hashlib
from datetime import datetime
from typing import TypedDict

from django.utils import timezone

from clients.models import DEFAULT_CLIENT_ID, ApiClient, ApiClientKey, WebhookEndpoint


class ApiKeyRow(TypedDict):
    prefix: str
    label: str
    created: datetime
    expires: datetime | None
    revoked: bool


class ApiClientRow(TypedDict):
    name: str
    created_at: datetime
    webhook_url: str
    keys: list[ApiKeyRow]


def secret_token_prefix(*, token: str) -> str:
    """The prefix of SECRET_TOKEN's key row (clients/services.py:secret_token_key_ensure): 8 hex digits of its
    SHA-256, so another SECRET_TOKEN (a rotation) is another row, never revoked with the old one."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def secret_token_revoked(*, token: str) -> bool:
    """Whether this SECRET_TOKEN value was revoked (`api_client revoke --all default`): one indexed lookup."""
    return ApiClientKey.objects.filter(
        prefix=secret_token_prefix(token=token), client_id=DEFAULT_CLIENT_ID, revoked=True
    ).exists()


def client_for_key(*, key: str) -> ApiClient | None:
    """The client of an active, unexpired key, or None: one indexed lookup by the key's prefix (the part
    before the dot), then a constant-time comparison of the key's SHA-512 hash (the library's hasher)."""
    prefix, dot, _ = key.partition(".")
    if not dot:
        return None
    api_key = ApiClientKey.objects.select_related("client").filter(prefix=prefix, revoked=False).first()
    if api_key is None or api_key.has_expired or not api_key.is_valid(key):
        return None
    return api_key.client


def api_client_list() -> list[ApiClientRow]:
    """Every client with its keys (prefix, label, created, expiry, revoked): what `api_client list` prints."""
    return [
        ApiClientRow(
            name=client.name,
            created_at=client.created_at,
            webhook_url=getattr(getattr(client, "webhook_endpoint", None), "url", ""),
            keys=[
                ApiKeyRow(
                    prefix=k.prefix,
                    label=k.name,
                    created=k.created,
                    expires=k.expiry_date,
                    revoked=k.revoked,
                )
                for k in client.keys.order_by("created")
            ],
        )
        for client in ApiClient.objects.select_related("webhook_endpoint").prefetch_related("keys").order_by("name")
    ]


def webhook_endpoint_get(*, client_id: int) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.filter(client_id=client_id).first()


def webhook_signing_secrets(*, endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one while its grace
    period after a rotation lasts."""
    now = now or timezone.now()
    active = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        active.append(endpoint.previous_secret)
    return active
