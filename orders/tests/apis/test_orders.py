import threading
import uuid

import pytest
from django.conf import settings

from orders.models import Order, OrderStatus, OutboxMessage
from orders.tests.factories import order_create

pytestmark = pytest.mark.django_db

VALID = {"customer_id": "123", "source": "mobile", "items": [{"sku": "ABC", "qty": 2}, {"sku": "XYZ", "qty": 1}]}


def post(client, body, **headers):
    return client.post("/orders", body, format="json", **headers)


# --- auth -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token", "Token test-token", "Bearer", "Bearer a b", f"bearer {'x' * 10}"],
)
def test_post_without_valid_token_is_401_json_and_stores_nothing(anon_client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = post(anon_client, VALID, **extra)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["message"]
    assert response["WWW-Authenticate"] == "Bearer"
    assert Order.objects.count() == 0


def test_post_with_token_is_202_pending(api_client):
    response = post(api_client, VALID)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    order = Order.objects.get(id=body["order_id"])
    assert (order.customer_id, order.source, order.items.count()) == ("123", "mobile", 2)
    assert OutboxMessage.objects.filter(order=order).count() == 1


@pytest.mark.parametrize("path", ["/orders", "/orders/"])
def test_post_works_with_and_without_trailing_slash(api_client, path):
    response = api_client.post(path, VALID, format="json")
    assert response.status_code == 202


def test_source_defaults_to_api(api_client):
    response = post(api_client, {"customer_id": "1", "items": [{"sku": "ABC", "qty": 1}]})
    assert response.status_code == 202
    assert Order.objects.get(id=response.json()["order_id"]).source == "api"


# --- validation -----------------------------------------------------------------------------
def _with(**changes):
    body = {**VALID, **changes}
    return {k: v for k, v in body.items() if v is not ...}


@pytest.mark.parametrize(
    "body, field",
    [
        (_with(customer_id=...), "customer_id"),
        (_with(customer_id=""), "customer_id"),
        (_with(customer_id="   "), "customer_id"),
        (_with(customer_id="x" * 65), "customer_id"),
        (_with(customer_id=123), "customer_id"),
        (_with(customer_id=None), "customer_id"),
        (_with(source="fax"), "source"),
        (_with(source=None), "source"),
        (_with(items=...), "items"),
        (_with(items=[]), "items"),
        (_with(items="ABC"), "items"),
        (_with(items=[{"sku": "ABC", "qty": 1}] * 101), "items"),
        (_with(items=[{"qty": 1}]), "items"),
        (_with(items=[{"sku": "", "qty": 1}]), "items"),
        (_with(items=[{"sku": "A" * 65, "qty": 1}]), "items"),
        (_with(items=[{"sku": "AB C", "qty": 1}]), "items"),
        (_with(items=[{"sku": "AB/C", "qty": 1}]), "items"),
        (_with(items=[{"sku": 7, "qty": 1}]), "items"),
        (_with(items=[{"sku": "ABC"}]), "items"),
        (_with(items=[{"sku": "ABC", "qty": 0}]), "items"),
        (_with(items=[{"sku": "ABC", "qty": -1}]), "items"),
        (_with(items=[{"sku": "ABC", "qty": 1001}]), "items"),
        (_with(items=[{"sku": "ABC", "qty": 1.5}]), "items"),
        (_with(items=[{"sku": "ABC", "qty": "lots"}]), "items"),
        (_with(items=["ABC"]), "items"),
    ],
)
def test_invalid_body_is_400_with_the_field_named(api_client, body, field):
    response = post(api_client, body)
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["code"] == "invalid"
    assert field in payload["extra"]["fields"]
    assert Order.objects.count() == 0


def test_limits_are_inclusive(api_client):
    body = {"customer_id": "x" * 64, "items": [{"sku": "A" * 64, "qty": 1000}] + [{"sku": "a-b_C9", "qty": 1}] * 99}
    assert post(api_client, body).status_code == 202


@pytest.mark.parametrize("raw", [b"{", b"[]", b"null", b'"text"', b"", b"\xff\xfe"])
def test_malformed_json_is_400_never_500(api_client, raw):
    response = api_client.post("/orders", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"]


def test_non_json_body_is_415(api_client):
    response = api_client.post("/orders", "customer_id=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_overlong_idempotency_key_is_400(api_client):
    response = post(api_client, VALID, HTTP_X_IDEMPOTENCY_KEY="k" * 256)
    assert response.status_code == 400


# --- idempotency ----------------------------------------------------------------------------
def test_same_key_returns_same_order(api_client):
    first = post(api_client, VALID, HTTP_X_IDEMPOTENCY_KEY="abc-1")
    second = post(api_client, VALID, HTTP_X_IDEMPOTENCY_KEY="abc-1")
    assert first.status_code == second.status_code == 202
    assert first.json()["order_id"] == second.json()["order_id"]
    assert second["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


def test_same_key_other_body_is_409(api_client):
    first = post(api_client, VALID, HTTP_X_IDEMPOTENCY_KEY="abc-2")
    response = post(api_client, {**VALID, "customer_id": "other"}, HTTP_X_IDEMPOTENCY_KEY="abc-2")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_reused"
    assert response.json()["extra"]["order_id"] == first.json()["order_id"]
    assert Order.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_one_order(clean_queues):
    from rest_framework.test import APIClient

    results, barrier = [], threading.Barrier(8)

    def worker():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.SECRET_TOKEN}")
        barrier.wait()
        response = post(client, VALID, HTTP_X_IDEMPOTENCY_KEY="race-key")
        results.append((response.status_code, response.json().get("order_id")))
        from django.db import connection

        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [code for code, _ in results] == [202] * 8
    assert len({order_id for _, order_id in results}) == 1
    assert Order.objects.count() == 1
    assert OutboxMessage.objects.count() == 1


# --- reads ----------------------------------------------------------------------------------
def test_get_order_returns_status_items_and_history(api_client, catalog):
    order = order_create(items=[("ABC", 2)])
    response = api_client.get(f"/orders/{order.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["order_id"] == str(order.id)
    assert body["status"] == "pending"
    assert body["items"] == [{"sku": "ABC", "qty": 2, "unit_price": None}]
    assert body["enrichment"] is None and body["invoice"] is None
    assert [h["event"] for h in body["history"]] == ["accepted"]


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-a-uuid", "123"])
def test_unknown_or_malformed_order_id_is_404_json(api_client, order_id):
    response = api_client.get(f"/orders/{order_id}")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_get_order_is_not_stale_after_a_transition(api_client, catalog, django_capture_on_commit_callbacks):
    from orders import services

    order = order_create(items=[("ABC", 1)])
    assert api_client.get(f"/orders/{order.id}").json()["status"] == "pending"  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        services.order_process(order_id=order.id)
    assert api_client.get(f"/orders/{order.id}").json()["status"] == "processing"


def test_list_orders_filters_by_status(api_client, catalog):
    from orders import services

    processing = order_create(items=[("ABC", 1)])
    services.order_process(order_id=processing.id)
    order_create(items=[("ABC", 1)])
    response = api_client.get("/orders?status=processing")
    assert response.status_code == 200
    assert [o["order_id"] for o in response.json()["results"]] == [str(processing.id)]
    assert api_client.get("/orders/?status=bogus").status_code == 400
    assert "count" not in response.json()  # cursor pages: no COUNT(*)


def test_products_list_shows_stock(anon_client, catalog):
    response = anon_client.get("/products")
    assert response.status_code == 200
    abc = next(p for p in response.json() if p["sku"] == "ABC")
    assert (abc["stock"], abc["available"]) == (1000, 1000)


def test_browsable_api_renders_html(anon_client, catalog):
    response = anon_client.get("/products", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"<html" in response.content.lower()


def test_status_is_stored_as_pending(api_client):
    response = post(api_client, VALID)
    assert Order.objects.get(id=response.json()["order_id"]).status == OrderStatus.PENDING
