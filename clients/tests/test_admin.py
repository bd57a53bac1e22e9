"""Staff manage clients and keys in the admin: a new key is shown once, in the message after saving."""

import re

import pytest
from django.test import Client

from clients.models import ApiClient, ApiClientKey
from clients.tests.factories import api_client_for
from orders.models import Product

pytestmark = pytest.mark.django_db


def test_adding_a_key_in_the_admin_shows_it_once_and_it_works(
    admin_client_logged: Client, catalog: dict[str, Product]
) -> None:
    shop = ApiClient.objects.create(name="shop")
    response = admin_client_logged.post(
        "/admin/clients/apiclientkey/add/",
        {"client": shop.id, "name": "checkout", "expiry_date_0": "", "expiry_date_1": ""},
        follow=True,
    )
    assert response.status_code == 200
    shown = re.search(r"The API key for checkout is: (\S+)\.", response.content.decode())
    assert shown is not None
    key = shown.group(1)
    assert ApiClientKey.objects.get(client=shop).prefix == key.split(".")[0]
    assert api_client_for(key).get("/orders").status_code == 200
    assert key not in admin_client_logged.get("/admin/clients/apiclientkey/").content.decode()


def test_revoking_in_the_admin_refuses_the_key(admin_client_logged: Client, catalog: dict[str, Product]) -> None:
    from clients import services

    shop, key = services.api_client_create(name="shop")
    api_key = ApiClientKey.objects.get(client=shop)
    response = admin_client_logged.post(
        f"/admin/clients/apiclientkey/{api_key.pk}/change/",
        {"client": shop.id, "name": api_key.name, "revoked": "on", "expiry_date_0": "", "expiry_date_1": ""},
        follow=True,
    )
    assert response.status_code == 200
    assert ApiClientKey.objects.get(pk=api_key.pk).revoked
    assert api_client_for(key).get("/orders").status_code == 401


def test_the_clients_page_lists_its_keys_by_prefix(admin_client_logged: Client) -> None:
    from clients import services

    shop, key = services.api_client_create(name="shop")
    page = admin_client_logged.get(f"/admin/clients/apiclient/{shop.id}/change/").content.decode()
    assert key.split(".")[0] in page and key not in page
