"""Rate limits per client and per anonymous IP, counted in the real Redis: over the limit a 429 with
Retry-After in the error shape; each client and each IP has its own budget."""

from typing import Any

import pytest
from django.test.utils import override_settings
from rest_framework.test import APIClient

from clients.tests.factories import api_client_for, client_with_key
from orders.models import Product

pytestmark = pytest.mark.django_db


@override_settings(THROTTLE_RATES={"client": "3/min", "anon": "2/min"})
def test_a_client_over_its_rate_gets_429_with_retry_after_and_another_client_does_not(
    catalog: dict[str, Product],
) -> None:
    _, shop_key = client_with_key("shop")
    _, partner_key = client_with_key("partner")
    shop, partner = api_client_for(shop_key), api_client_for(partner_key)
    assert [shop.get("/orders").status_code for _ in range(3)] == [200, 200, 200]
    limited = shop.get("/orders")
    assert limited.status_code == 429
    assert limited.json()["code"] == "throttled"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert partner.get("/orders").status_code == 200


@override_settings(THROTTLE_RATES={"client": "2/min", "anon": "100/min"})
def test_a_clients_keys_share_one_budget(catalog: dict[str, Product]) -> None:
    from clients import services

    shop, first = client_with_key("shop")
    _, second = services.api_client_key_create(client=shop)
    assert api_client_for(first).get("/orders").status_code == 200
    assert api_client_for(second).get("/orders").status_code == 200
    assert api_client_for(second).get("/orders").status_code == 429


@override_settings(THROTTLE_RATES={"client": "100/min", "anon": "2/min"})
def test_anonymous_callers_are_limited_per_ip(anon_client: APIClient, catalog: dict[str, Product]) -> None:
    assert [anon_client.get("/products", REMOTE_ADDR="10.0.0.1").status_code for _ in range(3)] == [200, 200, 429]
    assert anon_client.get("/products", REMOTE_ADDR="10.0.0.2").status_code == 200
    # a rejected key is not a way around the anonymous limit: it is a 401 before any throttle
    assert anon_client.get("/orders", REMOTE_ADDR="10.0.0.1").status_code == 401


@override_settings(
    THROTTLE_RATES={"client": "1/min", "anon": "1/min"},
    CACHES={
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    },
)
def test_without_redis_requests_are_let_through(api_client: APIClient, catalog: dict[str, Product]) -> None:
    assert [api_client.get("/orders").status_code for _ in range(3)] == [200, 200, 200]


@override_settings(THROTTLE_RATES={"client": "100/min", "anon": "2/min"})
def test_a_varying_x_forwarded_for_does_not_bypass_the_anonymous_limit_without_num_proxies(
    anon_client: APIClient, catalog: dict[str, Product]
) -> None:
    # NUM_PROXIES unset (the default): nobody's X-Forwarded-For is trusted, REMOTE_ADDR is the caller
    codes = [
        anon_client.get("/products", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}").status_code
        for i in range(4)
    ]
    assert codes == [200, 200, 429, 429]


def test_behind_num_proxies_the_address_the_nearest_proxy_saw_is_counted(
    anon_client: APIClient, catalog: dict[str, Product], settings: Any
) -> None:
    # one proxy in front: the last X-Forwarded-For entry is the client's; what the client put before it is not
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    settings.THROTTLE_RATES = {"client": "100/min", "anon": "2/min"}
    proxy = "10.0.0.9"
    codes = [
        anon_client.get("/products", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}, 203.0.113.7").status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429]
    assert anon_client.get("/products", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200
