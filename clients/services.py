"""Writes: clients, their keys and their webhook endpoints."""

import base64
import secrets
from datetime import timedelta
from typing import cast

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clients import selectors
from clients.models import DEFAULT_CLIENT_ID, ApiClient, ApiClientKey, WebhookEndpoint
from core.exceptions import ApplicationError
from core.netsafety import UnsafeUrl, url_check

# The label of the `default` client's key row that stands for SECRET_TOKEN (`api_client list` shows it).
SECRET_TOKEN_KEY_LABEL = "SECRET_TOKEN"  # noqa: S105  a label, not the secret


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


def secret_token_key_ensure() -> ApiClientKey:
    """The `default` client's key row standing for the current SECRET_TOKEN (label `SECRET_TOKEN`), so that
    revoking the client's keys revokes it too. The token itself is checked against the setting; the row only
    records whether that value was revoked (clients/auth.py)."""
    token = settings.SECRET_TOKEN
    prefix = selectors.secret_token_prefix(token=token)
    hashed_key = ApiClientKey.objects.key_generator.hash(token)
    key, _ = ApiClientKey.objects.get_or_create(
        prefix=prefix,
        defaults={
            "id": f"{prefix}.{hashed_key}",
            "hashed_key": hashed_key,
            "client_id": DEFAULT_CLIENT_ID,
            "name": SECRET_TOKEN_KEY_LABEL,
        },
    )
    return key


def api_client_revoke(*, name: str) -> int:
    """Revoke every key of a client; returns how many were active. For `default`, that includes SECRET_TOKEN's
    current value (rotate it: a new SECRET_TOKEN in the environment, then restart web)."""
    client = ApiClient.objects.filter(name=name).first()
    if client is None:
        raise ClientNotFound(f"No API client named {name!r}.")
    with transaction.atomic():  # transaction ensures SECRET_TOKEN's row is revoked with the others or not at all
        if client.id == DEFAULT_CLIENT_ID:
            secret_token_key_ensure()
        return ApiClientKey.objects.filter(client=client, revoked=False).update(revoked=True)


class WebhookUrlRefused(ApplicationError):
    code = "webhook_url_refused"


def webhook_secret_generate() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_url_validate(*, url: str) -> str:
    try:
        url_check(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS)
    except UnsafeUrl as exc:
        raise WebhookUrlRefused(f"Webhook URL refused: {exc}.") from None
    return url


def _client(name: str) -> ApiClient:
    client = ApiClient.objects.filter(name=name).first()
    if client is None:
        raise ClientNotFound(f"No API client named {name!r}.")
    return client


def _rotate(endpoint: WebhookEndpoint) -> str:
    """A new secret; the current one stays valid for the grace period (the one before it, if still in
    its grace, is dropped: two secrets at most)."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + timedelta(seconds=settings.WEBHOOK_SECRET_GRACE_SECONDS)
    endpoint.secret = webhook_secret_generate()
    return endpoint.secret


def webhook_endpoint_set(*, client: ApiClient, url: str) -> tuple[WebhookEndpoint, str]:
    """Store the client's endpoint and return its signing secret: a new endpoint gets a secret, an existing
    one gets its URL replaced and its secret rotated (the old one valid for the grace period)."""
    webhook_url_validate(url=url)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(client=client).first()
        if endpoint is None:
            endpoint = WebhookEndpoint.objects.create(client=client, url=url, secret=webhook_secret_generate())
            return endpoint, endpoint.secret
        endpoint.url = url
        secret = _rotate(endpoint)
        endpoint.save()
    return endpoint, secret


def webhook_endpoint_set_by_name(*, name: str, url: str) -> tuple[WebhookEndpoint, str]:
    return webhook_endpoint_set(client=_client(name), url=url)


def webhook_secret_rotate(*, client: ApiClient) -> tuple[WebhookEndpoint, str]:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(client=client).first()
        if endpoint is None:
            raise ClientNotFound(
                f"API client {client.name!r} has no webhook endpoint; set one with `api_client set-webhook`."
            )
        secret = _rotate(endpoint)
        endpoint.save()
    return endpoint, secret


def webhook_secret_rotate_by_name(*, name: str) -> tuple[WebhookEndpoint, str]:
    return webhook_secret_rotate(client=_client(name))


def webhook_endpoint_remove(*, name: str) -> bool:
    """The client's events stop being recorded from now on; those recorded already are still delivered
    while an endpoint exists (none: they fail and are dead-lettered, to redrive once one is set again)."""
    deleted, _ = WebhookEndpoint.objects.filter(client=_client(name)).delete()
    return bool(deleted)
