"""A client's key authenticates it, is stored hashed, can be rotated (several active) and revoked;
SECRET_TOKEN is the key of the built-in client `default`."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from clients import services
from clients.models import DEFAULT_CLIENT_ID, ApiClientKey
from clients.tests.factories import api_client_for, client_with_key
from orders.models import Order, Product

pytestmark = pytest.mark.django_db
ORDER = {"customer_id": "c-1", "items": [{"sku": "ABC", "qty": 1}]}


def test_a_new_clients_key_creates_orders_owned_by_that_client(catalog: dict[str, Product]) -> None:
    # given
    shop, key = client_with_key("web-shop")
    # when
    response = api_client_for(key).post("/orders", ORDER, format="json")
    # then
    assert response.status_code == 202
    assert Order.objects.get(id=response.json()["order_id"]).client_id == shop.id


def test_the_key_is_stored_only_hashed(catalog: dict[str, Product]) -> None:
    _, key = client_with_key("web-shop")
    stored = ApiClientKey.objects.get(prefix=key.split(".")[0])
    assert key not in (stored.hashed_key, stored.id) and key.split(".")[1] not in stored.hashed_key
    assert stored.hashed_key.startswith("sha512$$")


def test_secret_token_is_the_key_of_the_default_client(api_client: APIClient, catalog: dict[str, Product]) -> None:
    response = api_client.post("/orders", ORDER, format="json")
    assert Order.objects.get(id=response.json()["order_id"]).client_id == DEFAULT_CLIENT_ID
    assert Order.objects.get(id=response.json()["order_id"]).client.name == "default"


def test_two_active_keys_both_work_and_revoking_one_keeps_the_other(catalog: dict[str, Product]) -> None:
    # given: a rotation in progress
    shop, old = client_with_key("mobile")
    _, new = services.api_client_key_create(client=shop, label="2026-12")
    assert api_client_for(old).post("/orders", ORDER, format="json").status_code == 202
    assert api_client_for(new).post("/orders", ORDER, format="json").status_code == 202
    # when
    services.api_client_key_revoke(prefix=old.split(".")[0])
    # then
    assert api_client_for(old).post("/orders", ORDER, format="json").status_code == 401
    assert api_client_for(new).post("/orders", ORDER, format="json").status_code == 202


def test_revoking_a_client_revokes_all_its_keys(catalog: dict[str, Product]) -> None:
    shop, first = client_with_key("partner")
    _, second = services.api_client_key_create(client=shop)
    assert services.api_client_revoke(name="partner") == 2
    for key in (first, second):
        assert api_client_for(key).get("/orders").status_code == 401


def test_an_expired_key_is_refused(catalog: dict[str, Product]) -> None:
    _, key = client_with_key("partner")
    ApiClientKey.objects.filter(prefix=key.split(".")[0]).update(expiry_date=timezone.now() - timedelta(seconds=1))
    assert api_client_for(key).get("/orders").status_code == 401


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda k: k[:-1] + ("a" if k[-1] != "a" else "b"), id="right prefix, wrong secret"),
        pytest.param(lambda k: "zzzzzzzz." + k.split(".")[1], id="unknown prefix"),
        pytest.param(lambda k: k.split(".")[0], id="prefix alone"),
        pytest.param(lambda k: k + "." + k, id="two dots"),
        pytest.param(lambda k: "é" + k, id="non-ascii"),
        pytest.param(lambda k: k * 40, id="very long"),
    ],
)
def test_a_wrong_key_is_401_and_stores_nothing(catalog: dict[str, Product], mangle: Callable[[str], str]) -> None:
    _, key = client_with_key("shop")
    response = api_client_for(mangle(key)).post("/orders", ORDER, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert Order.objects.count() == 0


def test_the_default_client_exists_after_migrations() -> None:
    from clients.models import ApiClient

    assert ApiClient.objects.get(id=DEFAULT_CLIENT_ID).name == "default"
    assert settings.SECRET_TOKEN  # its key
