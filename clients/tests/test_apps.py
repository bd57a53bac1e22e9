"""The clients app (clients/apps.py) makes the built-in client `default` after migrating."""

import pytest
from django.conf import settings

from clients.models import DEFAULT_CLIENT_ID

pytestmark = pytest.mark.django_db


def test_the_default_client_exists_after_migrations() -> None:
    from clients.models import ApiClient

    assert ApiClient.objects.get(id=DEFAULT_CLIENT_ID).name == "default"
    assert settings.SECRET_TOKEN  # its key
