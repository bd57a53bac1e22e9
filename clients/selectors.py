"""Reads: the client a bearer key belongs to."""

from datetime import datetime
from typing import TypedDict

from clients.models import ApiClient, ApiClientKey


class ApiKeyRow(TypedDict):
    prefix: str
    label: str
    created: datetime
    expires: datetime | None
    revoked: bool


class ApiClientRow(TypedDict):
    name: str
    created_at: datetime
    keys: list[ApiKeyRow]


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
        for client in ApiClient.objects.prefetch_related("keys").order_by("name")
    ]
