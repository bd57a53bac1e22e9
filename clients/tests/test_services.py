"""Clients and keys (clients/services.py): a key is stored only hashed, can be rotated (several active)
and revoked, one at a time or all of a client's."""

import pytest

from clients import services
from clients.models import ApiClientKey
from clients.tests.factories import api_client_for, client_with_key
from orders.models import Product

pytestmark = pytest.mark.django_db
ORDER = {"customer_id": "c-1", "items": [{"sku": "ABC", "qty": 1}]}


def test_the_key_is_stored_only_hashed(catalog: dict[str, Product]) -> None:
    _, key = client_with_key("web-shop")
    stored = ApiClientKey.objects.get(prefix=key.split(".")[0])
    assert key not in (stored.hashed_key, stored.id) and key.split(".")[1] not in stored.hashed_key
    assert stored.hashed_key.startswith("sha512$$")


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
