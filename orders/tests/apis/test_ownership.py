"""Orders belong to the client that created them: a key or a staff session on every read, another
client's order is a 404, idempotency keys are per client, and clients see no staff names or exception text."""

import json
import uuid

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from clients.tests.factories import api_client_for, client_with_key
from orders import disclosure, services
from orders.models import HistoryEvent, Order
from orders.tests.factories import order_create, staff_user_create

pytestmark = pytest.mark.django_db
ORDER = {"customer_id": "c-1", "items": [{"sku": "ABC", "qty": 1}]}


@pytest.fixture
def shop():
    client, key = client_with_key("shop")
    return client, api_client_for(key)


@pytest.fixture
def partner():
    client, key = client_with_key("partner")
    return client, api_client_for(key)


@pytest.fixture
def staff_session():
    user = staff_user_create("oncall", password="pw", permissions=("orders.view_every_order",))
    http = APIClient()
    http.force_login(user)
    return http


@pytest.mark.parametrize("path", ["/orders", "/orders/", f"/orders/{uuid.uuid4()}"])
def test_order_reads_without_a_key_are_401(anon_client, catalog, path):
    order_create(items=[("ABC", 1)])
    response = anon_client.get(path)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert "customer_id" not in response.content.decode()


def test_a_non_staff_session_cannot_read_orders(catalog):
    user = User.objects.create_user("shopper", password="pw")
    http = APIClient()
    http.force_login(user)
    order = order_create(items=[("ABC", 1)])
    assert http.get("/orders").status_code == 403
    assert http.get(f"/orders/{order.id}").status_code == 403


def test_another_clients_order_is_404_and_its_own_is_200(shop, partner, catalog):
    (_, shop_http), (_, partner_http) = shop, partner
    order_id = shop_http.post("/orders", ORDER, format="json").json()["order_id"]
    assert shop_http.get(f"/orders/{order_id}").status_code == 200
    response = partner_http.get(f"/orders/{order_id}")
    assert response.status_code == 404
    assert response.json() == partner_http.get(f"/orders/{uuid.uuid4()}").json()  # indistinguishable from absent


def test_another_clients_order_stays_404_when_its_detail_is_cached(shop, partner, catalog):
    (_, shop_http), (_, partner_http) = shop, partner
    order_id = shop_http.post("/orders", ORDER, format="json").json()["order_id"]
    shop_http.get(f"/orders/{order_id}")  # now cached in Redis
    assert partner_http.get(f"/orders/{order_id}").status_code == 404


def test_the_list_shows_only_the_callers_orders_and_staff_see_all(shop, partner, staff_session, catalog):
    (_, shop_http), (_, partner_http) = shop, partner
    mine = {shop_http.post("/orders", ORDER, format="json").json()["order_id"] for _ in range(2)}
    theirs = {partner_http.post("/orders", ORDER, format="json").json()["order_id"]}
    assert {o["order_id"] for o in shop_http.get("/orders").json()["results"]} == mine
    assert {o["order_id"] for o in partner_http.get("/orders").json()["results"]} == theirs
    for query in ("?status=pending", "?source=api", "?updated_since=2000-01-01T00:00:00Z"):
        assert {o["order_id"] for o in partner_http.get(f"/orders{query}").json()["results"]} == theirs
    assert {o["order_id"] for o in staff_session.get("/orders").json()["results"]} == mine | theirs
    assert staff_session.get(f"/orders/{next(iter(theirs))}").status_code == 200


def test_the_same_idempotency_key_from_two_clients_makes_two_orders(shop, partner, catalog):
    (_shop_client, shop_http), (partner_client, partner_http) = shop, partner
    first = shop_http.post("/orders", ORDER, format="json", HTTP_X_IDEMPOTENCY_KEY="k-1")
    second = partner_http.post("/orders", ORDER, format="json", HTTP_X_IDEMPOTENCY_KEY="k-1")
    replay = shop_http.post("/orders", ORDER, format="json", HTTP_X_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == replay.status_code == 202
    assert first.json()["order_id"] != second.json()["order_id"]
    assert replay.json()["order_id"] == first.json()["order_id"] and replay["Idempotent-Replayed"] == "true"
    assert Order.objects.get(id=second.json()["order_id"]).client_id == partner_client.id
    # a key reused with another body is still a conflict within one client
    other = {**ORDER, "customer_id": "c-2"}
    assert partner_http.post("/orders", other, format="json", HTTP_X_IDEMPOTENCY_KEY="k-1").status_code == 409


def _failed_with_staff_details(order_id) -> None:
    """An order that retried (exception text), failed with an exception, and was touched by an operator."""
    services.order_retry_record(
        order_id=order_id, stage="enrich", attempt=1, error="ConnectionError: secret-host:5432 refused", delay=1
    )
    services.order_fail(
        order_id=order_id,
        stage="enrich",
        reason="enrich: ValueError: token=abc123 leaked",
        kind="permanent",
        detail={"task": "orders.enrich", "task_id": "t-1", "exception": "ValueError", "message": "token=abc123 leaked"},
    )
    order = Order.objects.get(id=order_id)
    services.order_history_append(
        order=order, stage="dlq", event=HistoryEvent.REDRIVEN, detail={"by": "oncall-alice", "dead_letter_id": 7}
    )


def test_clients_see_no_staff_names_or_exception_text_but_staff_do(shop, staff_session, catalog):
    _, shop_http = shop
    order_id = shop_http.post("/orders", ORDER, format="json").json()["order_id"]
    _failed_with_staff_details(order_id)
    for path in (f"/orders/{order_id}", "/orders"):
        body = shop_http.get(path).content.decode()
        for secret in ("oncall-alice", "secret-host", "token=abc123", "ValueError", "ConnectionError"):
            assert secret not in body, (path, secret)
    detail = shop_http.get(f"/orders/{order_id}").json()
    assert detail["status"] == "failed" and detail["failure_reason"] == disclosure.PUBLIC_FAILURE_REASON
    assert [h["event"] for h in detail["history"]][-3:] == ["retry", "failed", "redriven"]
    staff_body = staff_session.get(f"/orders/{order_id}").content.decode()
    for secret in ("oncall-alice", "secret-host", "token=abc123"):
        assert secret in staff_body


def test_a_business_failure_reason_is_shown_to_the_client(shop, catalog):
    _, shop_http = shop
    order_id = shop_http.post(
        "/orders", {"customer_id": "c", "items": [{"sku": "NOPE", "qty": 1}]}, format="json"
    ).json()["order_id"]
    services.order_process(order_id=order_id)
    detail = shop_http.get(f"/orders/{order_id}").json()
    assert detail["failure_reason"] == "unknown sku NOPE"
    assert detail["history"][-1]["detail"]["reason"] == "unknown sku NOPE"
    assert shop_http.get("/orders").json()["results"][0]["failure_reason"] == "unknown sku NOPE"


def test_the_demos_anonymous_page_reads_orders_without_customer_data(anon_client, shop, settings, catalog):
    # given: the demo (`make run`) turns the anonymous live page on
    settings.LIVE_FEED_ANONYMOUS = True
    _, shop_http = shop
    order_id = shop_http.post("/orders", {**ORDER, "customer_id": "alice@example.com"}, format="json").json()[
        "order_id"
    ]
    _failed_with_staff_details(order_id)
    # when
    detail = anon_client.get(f"/orders/{order_id}")
    listing = anon_client.get("/orders")
    # then: status, items and history for the page; no customer, no staff names or exception text
    assert detail.status_code == listing.status_code == 200
    assert detail.json()["status"] == "failed" and detail.json()["items"]
    for body in (detail.content.decode(), listing.content.decode()):
        for secret in ("alice@example.com", "oncall-alice", "secret-host", "token=abc123"):
            assert secret not in body
    # and it is reading only: no anonymous writes
    assert anon_client.post("/orders", ORDER, format="json").status_code == 401


def test_the_demos_anonymous_reader_sees_no_invoice_or_credit_note_numbers_or_totals(
    anon_client, shop, settings, catalog, django_capture_on_commit_callbacks
):
    # given: a completed, then refunded order of a client, and the demo's anonymous page on
    settings.LIVE_FEED_ANONYMOUS = True
    _, shop_http = shop
    order_id = shop_http.post("/orders", ORDER, format="json").json()["order_id"]
    with django_capture_on_commit_callbacks(execute=True):
        services.order_process(order_id=order_id)
        services.order_enrich(order_id=order_id)
        services.order_finalize(order_id=order_id)
        services.order_cancel(order_id=order_id, actor="client:shop", reason="")
        services.order_refund(order_id=order_id)
    order = Order.objects.select_related("invoice", "credit_note").get(id=order_id)
    numbers = (order.invoice.number, order.credit_note.number)
    # when
    anonymous = anon_client.get(f"/orders/{order_id}").json()
    own = shop_http.get(f"/orders/{order_id}").json()
    # then: the anonymous reader sees the history without them (the order's total_amount stays: the
    # page's total column); the client still reads its own
    assert anonymous["status"] == own["status"] == "refunded"
    for number in numbers:
        assert number not in json.dumps(anonymous)
        assert number in str(own)
    for entry in anonymous["history"]:
        assert not {"invoice", "credit_note", "total"} & set(entry["detail"])
