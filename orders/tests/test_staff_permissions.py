"""Staff rights by permission (orders/models.py Meta.permissions): being staff alone neither cancels an order
nor redrives or discards a dead letter nor reads every client's orders, in the admin, on /ops or on /orders;
each needs its permission, and without it the answer is a 403 (the admin does not offer the action)."""

import base64

import pytest
from django.test import Client
from rest_framework.test import APIClient

from orders import services
from orders.models import DeadLetter, DeadLetterStatus, Order, OrderStatus
from orders.tests.factories import catalog_create, dead_letter_archived, order_completed, order_create
from orders.tests.factories import staff_user_create as staff

pytestmark = pytest.mark.django_db


def basic(username: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{username}:pw-{username}".encode()).decode())
    return client


def session(username: str, *permissions: str) -> Client:
    client = Client()
    client.force_login(staff(username, password=f"pw-{username}", permissions=permissions))
    return client


@pytest.fixture
def letter() -> DeadLetter:
    catalog_create()
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    services.order_fail(order_id=order.id, stage="enrich", reason="x")
    return dead_letter_archived(order_id=order.id)


def test_admin_cancel_needs_the_cancel_permission(catalog) -> None:
    # given: a completed order, a staff user who may only view orders, and one who may cancel
    order = order_completed()
    viewer = session("viewer", "orders.view_order")
    canceller = session("canceller", "orders.view_order", "orders.cancel_order")
    action = {"action": "cancel_orders", "_selected_action": [str(order.id)]}

    # when / then: the viewer is not offered the action, and posting it changes nothing
    assert "cancel_orders" not in viewer.get("/admin/orders/order/").content.decode()
    viewer.post("/admin/orders/order/", action)
    assert Order.objects.get(id=order.id).status == OrderStatus.COMPLETED

    # the canceller is: the completed order goes to its refund
    assert "cancel_orders" in canceller.get("/admin/orders/order/").content.decode()
    canceller.post("/admin/orders/order/", action)
    assert Order.objects.get(id=order.id).status == OrderStatus.REFUND_PENDING


@pytest.mark.parametrize("action, permission", [("redrive", "redrive_deadletter"), ("discard", "discard_deadletter")])
def test_admin_dead_letter_actions_need_their_permission(letter: DeadLetter, action: str, permission: str) -> None:
    viewer = session("viewer", "orders.view_deadletter")
    body = {"action": action, "_selected_action": [str(letter.pk)]}
    page = viewer.get("/admin/orders/deadletter/").content.decode()
    assert f'value="{action}"' not in page
    viewer.post("/admin/orders/deadletter/", body)
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetterStatus.ARCHIVED

    allowed = session("allowed", "orders.view_deadletter", f"orders.{permission}")
    assert f'value="{action}"' in allowed.get("/admin/orders/deadletter/").content.decode()


def test_ops_endpoints_refuse_staff_without_their_permission(letter: DeadLetter) -> None:
    # given: a staff user with no permission at all
    staff("bare", password="pw-bare", permissions=())
    bare = basic("bare")
    json = {"format": "json"}

    # when / then: every operator endpoint is a 403 naming what is missing, and nothing changed
    redrive_all = bare.post("/ops/dead-letters/redrive", {"all": True}, **json)
    assert redrive_all.status_code == 403
    assert "orders.redrive_deadletter" in redrive_all.json()["message"]
    for action, permission in (("redrive", "orders.redrive_deadletter"), ("discard", "orders.discard_deadletter")):
        refused = bare.post(f"/ops/dead-letters/{letter.pk}/{action}", {}, **json)
        assert refused.status_code == 403 and permission in refused.json()["message"]
    assert bare.get("/ops/dead-letters").status_code == 403
    assert bare.get(f"/ops/dead-letters/{letter.pk}").status_code == 403
    assert bare.get("/ops/diagnostics").status_code == 403
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetterStatus.ARCHIVED


def test_ops_endpoints_serve_staff_with_their_permission(letter: DeadLetter) -> None:
    staff("reader", password="pw-reader", permissions=("orders.view_deadletter",))
    staff("discarder", password="pw-discarder", permissions=("orders.discard_deadletter",))
    assert basic("reader").get("/ops/dead-letters").status_code == 200
    # reading does not allow discarding, and discarding is allowed on its own
    assert basic("reader").post(f"/ops/dead-letters/{letter.pk}/discard", {}, format="json").status_code == 403
    assert basic("discarder").post(f"/ops/dead-letters/{letter.pk}/discard", {}, format="json").status_code == 200
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetterStatus.DISCARDED


def test_reading_every_clients_orders_and_cancelling_through_the_api_need_their_permission(catalog) -> None:
    # given: an order of the default client
    order = order_create()
    bare, reader = APIClient(), APIClient()
    bare.force_login(staff("bare", permissions=()))
    reader.force_login(staff("reader", permissions=("orders.view_every_order",)))

    # then: staff alone reads nothing and cancels nothing
    assert bare.get("/orders").status_code == 403
    assert bare.get(f"/orders/{order.id}").status_code == 403
    refused = bare.post(f"/orders/{order.id}/cancel", {}, format="json")
    assert refused.status_code == 403
    assert "orders.cancel_order" in refused.json()["message"]
    assert Order.objects.get(id=order.id).status == OrderStatus.PENDING
    # with the permission, every client's orders are readable (cancelling still needs its own)
    assert reader.get(f"/orders/{order.id}").status_code == 200
    assert str(order.id) in str(reader.get("/orders").json())
    assert reader.post(f"/orders/{order.id}/cancel", {}, format="json").status_code == 403
