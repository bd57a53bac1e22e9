"""POST /orders/{id}/cancel: the owning client's key or staff; idempotent; 404 for others, 409 for failed."""

import uuid

import pytest
from rest_framework.test import APIClient

from clients.tests.factories import api_client_for, client_with_key
from orders import services
from orders.models import Order, OrderStatus, OutboxMessage
from orders.pipeline import OutboxKind
from orders.tests.factories import order_completed, order_create, staff_user_create

pytestmark = pytest.mark.django_db


def _cancel(http: APIClient, order_id, body=None):
    return http.post(f"/orders/{order_id}/cancel", body if body is not None else {}, format="json")


def test_the_owner_cancels_a_pending_order_and_a_second_call_answers_the_same(api_client, catalog):
    # given
    order = order_create()
    # when
    first = _cancel(api_client, order.id, {"reason": "changed my mind"})
    second = _cancel(api_client, order.id)
    # then
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"order_id": str(order.id), "status": "cancelled"}
    detail = api_client.get(f"/orders/{order.id}").json()
    assert detail["cancellation"]["by"] == "client:default" and detail["cancellation"]["reason"] == "changed my mind"
    assert detail["credit_note"] is None and detail["invoice"] is None


def test_a_completed_order_answers_202_refund_pending_then_shows_its_credit_note(api_client, catalog):
    # given
    order = order_completed()
    # when
    response = _cancel(api_client, order.id)
    services.order_refund(order_id=order.id)
    # then
    assert response.status_code == 202 and response.json()["status"] == "refund_pending"
    assert OutboxMessage.objects.filter(order=order, kind=OutboxKind.REFUND_REQUESTED).count() == 1
    detail = api_client.get(f"/orders/{order.id}").json()
    assert detail["status"] == "refunded"
    assert detail["credit_note"]["total"] == "-" + detail["invoice"]["total"]
    assert [line["qty"] for line in detail["credit_note"]["lines"]] == [
        -line["qty"] for line in detail["invoice"]["lines"]
    ]


def test_another_clients_order_and_unknown_ids_are_404(catalog):
    # given: the default client's order, and a shop's key
    order = order_create()
    _, key = client_with_key("shop")
    shop = api_client_for(key)
    # then
    assert _cancel(shop, order.id).status_code == 404
    assert _cancel(shop, uuid.uuid4()).status_code == 404
    assert _cancel(shop, "not-a-uuid").status_code == 404
    assert Order.objects.get(id=order.id).status == OrderStatus.PENDING


def test_a_failed_order_is_409_with_a_clear_message(api_client, catalog):
    order = order_create(items=[("NOPE", 1)])
    services.order_process(order_id=order.id)
    response = _cancel(api_client, order.id)
    assert response.status_code == 409
    assert response.json()["code"] == "order_not_cancellable" and "nothing to cancel" in response.json()["message"]


def test_a_cancel_needs_a_key(anon_client, catalog):
    order = order_create()
    assert _cancel(anon_client, order.id).status_code == 401
    assert Order.objects.get(id=order.id).status == OrderStatus.PENDING


@pytest.mark.parametrize("body", [{"reason": 12}, {"reason": "x" * 501}, [1, 2]])
def test_a_bad_body_is_400_and_changes_nothing(api_client, catalog, body):
    order = order_create()
    assert _cancel(api_client, order.id, body).status_code == 400
    assert Order.objects.get(id=order.id).status == OrderStatus.PENDING


def test_staff_cancel_any_order_and_clients_see_staff_not_a_username(api_client, catalog):
    # given: an order of the default client, cancelled by a staff member's session
    order = order_create()
    staff = APIClient()
    staff.force_login(
        staff_user_create("oncall", password="pw", permissions=("orders.cancel_order", "orders.view_every_order"))
    )
    # when
    response = staff.post(f"/orders/{order.id}/cancel", {}, format="json")
    # then
    assert response.status_code == 200
    assert Order.objects.get(id=order.id).cancelled_by == "staff:oncall"
    assert api_client.get(f"/orders/{order.id}").json()["cancellation"]["by"] == "staff"
    assert staff.get(f"/orders/{order.id}").json()["cancellation"]["by"] == "staff:oncall"
