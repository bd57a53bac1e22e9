"""Writes: clients and their keys."""

from typing import cast

from django.db import transaction

from clients.models import ApiClient, ApiClientKey
from core.exceptions import ApplicationError


class ClientNotFound(ApplicationError):
    code = "client_not_found"


def api_client_create(*, name: str) -> tuple[ApiClient, str]:
    """A new client with its first key; the key is returned once and stored only hashed."""
    with transaction.atomic():
        client, created = ApiClient.objects.get_or_create(name=name)
        if not created:
            raise ApplicationError(f"API client {name!r} already exists; use `api_client key {name}` for another key.")
        _, key = api_client_key_create(client=client)
    return client, key


def api_client_key_create(*, client: ApiClient, label: str = "") -> tuple[ApiClientKey, str]:
    api_key, key = ApiClientKey.objects.create_key(client=client, name=(label or client.name)[:50])
    # The library's manager is typed for its abstract base; it creates an instance of its own model.
    return cast(ApiClientKey, api_key), key


def api_client_key_revoke(*, prefix: str) -> ApiClientKey:
    """Revoke one key (by its prefix, the part before the dot); the client's other keys keep working."""
    key = ApiClientKey.objects.filter(prefix=prefix).first()
    if key is None:
        raise ClientNotFound(f"No API key with prefix {prefix!r}.")
    if not key.revoked:
        key.revoked = True
        key.save(update_fields=["revoked"])
    return key


def api_client_revoke(*, name: str) -> int:
    """Revoke every key of a client; returns how many were active."""
    client = ApiClient.objects.filter(name=name).first()
    if client is None:
        raise ClientNotFound(f"No API client named {name!r}.")
    return ApiClientKey.objects.filter(client=client, revoked=False).update(revoked=True)
