"""Bearer keys (clients/auth.py): a client's key authenticates it, an expired or wrong key is refused,
SECRET_TOKEN is the key of the built-in client `default`, and every key is compared in constant time."""

import ast
import hmac
import inspect
import textwrap
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

import clients.auth
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


def test_secret_token_is_the_key_of_the_default_client(api_client: APIClient, catalog: dict[str, Product]) -> None:
    response = api_client.post("/orders", ORDER, format="json")
    assert Order.objects.get(id=response.json()["order_id"]).client_id == DEFAULT_CLIENT_ID
    assert Order.objects.get(id=response.json()["order_id"]).client.name == "default"


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


# --- constant-time token comparison ---------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    "presented",
    [
        pytest.param(lambda t: "".join("x" if c != "x" else "y" for c in t), id="equal length"),
        pytest.param(lambda t: t[:-1], id="shorter"),
        pytest.param(lambda t: t + "-and-more", id="longer"),
        pytest.param(lambda t: "t", id="one char"),
    ],
)
def test_the_token_goes_through_hmac_compare_digest_whatever_its_length(
    monkeypatch: pytest.MonkeyPatch, presented: Callable[[str], str]
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(clients.auth.hmac, "compare_digest", spy)
    token = presented(settings.SECRET_TOKEN)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post("/orders", ORDER, format="json")
    assert response.status_code == 401
    # one comparison, of the full presented token against the full secret: no early exit on length
    assert calls == [(token.encode(), settings.SECRET_TOKEN.encode())]


@pytest.mark.django_db
def test_the_right_token_also_goes_through_hmac_compare_digest(
    monkeypatch: pytest.MonkeyPatch, catalog: dict[str, Product]
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(clients.auth.hmac, "compare_digest", spy)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.SECRET_TOKEN}")
    assert client.post("/orders", ORDER, format="json").status_code == 202
    assert calls == [(settings.SECRET_TOKEN.encode(), settings.SECRET_TOKEN.encode())]


def test_client_auth_compares_the_token_only_with_hmac_compare_digest() -> None:
    assert clients.auth.hmac is hmac
    tree = ast.parse(textwrap.dedent(inspect.getsource(clients.auth)))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "hmac.compare_digest"
    ]
    assert calls and any("SECRET_TOKEN" in ast.unparse(node) for node in calls)
    # no `==`, `!=`, `in` (short-circuiting, timing-leaky) comparison touches the token
    leaky = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare) and "SECRET_TOKEN" in ast.unparse(node)
    ]
    assert leaky == []
