"""Manage API clients and their keys.

manage.py api_client create NAME      a client and its first key (the key alone on the last line)
manage.py api_client key NAME         another key for a client (rotation: move callers, then revoke the old)
manage.py api_client list             clients and their keys (prefixes only; keys are stored hashed)
manage.py api_client revoke PREFIX    revoke one key (its prefix, the part before the dot)
manage.py api_client revoke --all NAME  revoke every key of a client (of `default`: SECRET_TOKEN's value too)
manage.py api_client set-webhook NAME URL     the client's webhook endpoint (again: new URL, secret rotated);
                                              its signing secret alone on the last line
manage.py api_client rotate-webhook-secret NAME  a new signing secret (the old one valid for
                                                 WEBHOOK_SECRET_GRACE_SECONDS)
manage.py api_client remove-webhook NAME      no more events for this client
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clients import selectors, services
from clients.models import DEFAULT_CLIENT_NAME, ApiClient
from core.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create, list and revoke API clients' keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("create", help="a new client and its first key").add_argument("name")
        key = sub.add_parser("key", help="another key for an existing client")
        key.add_argument("name")
        key.add_argument("--label", default="", help="what the key is for (e.g. 'checkout 2026-12')")
        sub.add_parser("list", help="clients and their keys")
        revoke = sub.add_parser("revoke", help="revoke a key by prefix, or every key of a client with --all")
        revoke.add_argument("target", help="a key prefix, or a client name with --all")
        revoke.add_argument("--all", action="store_true", help="revoke every key of the client named TARGET")
        webhook = sub.add_parser("set-webhook", help="set the client's webhook endpoint; prints its signing secret")
        webhook.add_argument("name")
        webhook.add_argument("url", help="https://... (a public address)")
        sub.add_parser(
            "rotate-webhook-secret", help="a new signing secret; the old one stays valid for a grace period"
        ).add_argument("name")
        sub.add_parser("remove-webhook", help="remove the client's webhook endpoint").add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options.pop("action")
        try:
            getattr(self, f"_{action.replace('-', '_')}")(**options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _create(self, *, name: str, **_: Any) -> None:
        client = ApiClient(name=name)
        try:
            client.full_clean(validate_unique=False)
        except Exception as exc:
            raise CommandError("A client name is letters, digits, '-' and '_' (up to 64).") from exc
        client, key = services.api_client_create(name=name)
        self.stdout.write(f"Created API client {client.name!r}. Its key is shown once; store it now:")
        self.stdout.write(key)

    def _key(self, *, name: str, label: str, **_: Any) -> None:
        client = ApiClient.objects.filter(name=name).first()
        if client is None:
            raise CommandError(f"No API client named {name!r}.")
        api_key, key = services.api_client_key_create(client=client, label=label)
        self.stdout.write(f"New key {api_key.prefix} for {client.name!r}. Shown once; store it now:")
        self.stdout.write(key)

    def _list(self, **_: Any) -> None:
        for client in selectors.api_client_list():
            webhook = f"  webhook {client['webhook_url']}" if client["webhook_url"] else ""
            self.stdout.write(f"{client['name']}  (since {client['created_at']:%Y-%m-%d}){webhook}")
            for k in client["keys"]:
                state = (
                    "revoked"
                    if k["revoked"]
                    else ("expires " + f"{k['expires']:%Y-%m-%d}" if k["expires"] else "active")
                )
                self.stdout.write(f"  {k['prefix']}  {state:<18} {k['created']:%Y-%m-%d %H:%M}  {k['label']}")

    def _revoke(self, *, target: str, all: bool, **_: Any) -> None:
        if all:
            count = services.api_client_revoke(name=target)
            self.stdout.write(f"Revoked {count} key(s) of {target!r}.")
            if target == DEFAULT_CLIENT_NAME:
                self.stdout.write(
                    "SECRET_TOKEN's current value is revoked with them. To give 'default' a token again, set a new"
                    " SECRET_TOKEN and restart web, or issue it a key: api_client key default"
                )
        else:
            api_key = services.api_client_key_revoke(prefix=target)
            self.stdout.write(f"Revoked key {api_key.prefix} of {api_key.client.name!r}.")

    def _set_webhook(self, *, name: str, url: str, **_: Any) -> None:
        endpoint, secret = services.webhook_endpoint_set_by_name(name=name, url=url)
        self._print_secret(endpoint, secret)

    def _rotate_webhook_secret(self, *, name: str, **_: Any) -> None:
        endpoint, secret = services.webhook_secret_rotate_by_name(name=name)
        self._print_secret(endpoint, secret)

    def _remove_webhook(self, *, name: str, **_: Any) -> None:
        removed = services.webhook_endpoint_remove(name=name)
        self.stdout.write(
            f"Removed the webhook endpoint of {name!r}." if removed else f"{name!r} had no webhook endpoint."
        )

    def _print_secret(self, endpoint: Any, secret: str) -> None:
        self.stdout.write(f"Webhook endpoint of {endpoint.client.name!r}: {endpoint.url}")
        if endpoint.previous_secret_expires_at:
            self.stdout.write(
                f"The previous secret signs too until {endpoint.previous_secret_expires_at:%Y-%m-%d %H:%M:%S} UTC."
            )
        self.stdout.write("Signing secret (verify deliveries with it; Standard Webhooks):")
        self.stdout.write(secret)
