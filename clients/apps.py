from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_default_client(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    # Tests that flush the database (and `manage.py flush`) emit post_migrate: the built-in client comes back.
    from django.db import connections

    from clients.models import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_NAME, ApiClient

    if ApiClient._meta.db_table not in connections[using].introspection.table_names():
        return  # `migrate` to a target before this app's tables
    ApiClient.objects.using(using).get_or_create(id=DEFAULT_CLIENT_ID, defaults={"name": DEFAULT_CLIENT_NAME})


class ClientsConfig(AppConfig):
    name = "clients"
    verbose_name = "API clients"

    def ready(self) -> None:
        post_migrate.connect(_ensure_default_client, sender=self)
