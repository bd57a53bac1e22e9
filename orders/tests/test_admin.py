"""The orders' admin (orders/admin.py), browser-free (Django test client)."""

import pytest
from django.contrib.auth.models import User

from orders.models import DeadLetterStatus, OrderStatus
from orders.tests.factories import dead_letter_archived

pytestmark = pytest.mark.django_db


def test_order_changelist_filters_and_searches(admin_client_logged, failed_order):
    response = admin_client_logged.get("/admin/orders/order/?status__exact=failed")
    assert response.status_code == 200
    assert str(failed_order.id) in response.content.decode()
    assert (
        admin_client_logged.get("/admin/orders/order/?status__exact=completed")
        .content.decode()
        .count(str(failed_order.id))
        == 0
    )
    assert str(failed_order.id) in admin_client_logged.get("/admin/orders/order/?q=cust-42").content.decode()
    assert str(failed_order.id) in admin_client_logged.get(f"/admin/orders/order/?q={failed_order.id}").content.decode()


def test_order_page_shows_items_history_and_is_read_only(admin_client_logged, failed_order):
    response = admin_client_logged.get(f"/admin/orders/order/{failed_order.id}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "ABC" in page and "retries exhausted" in page and "Accepted" in page
    assert 'name="_save"' not in page
    assert admin_client_logged.get("/admin/orders/order/add/").status_code == 403


def test_retry_action_redrives_failed_orders(admin_client_logged, failed_order, clean_queues):
    letter = dead_letter_archived(order_id=failed_order.id)
    response = admin_client_logged.post(
        "/admin/orders/order/",
        {"action": "retry_failed_orders", "_selected_action": [str(failed_order.id)]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Redriven 1 dead letter" in response.content.decode()
    letter.refresh_from_db()
    failed_order.refresh_from_db()
    assert letter.status == DeadLetterStatus.REDRIVEN and letter.redriven_by == "admin:root"
    assert failed_order.status == OrderStatus.PROCESSING


def test_products_show_stock(admin_client_logged, catalog):
    page = admin_client_logged.get("/admin/orders/product/").content.decode()
    assert "Notebook" in page and "1000" in page


@pytest.mark.parametrize("path", ["/admin/orders/order/", "/admin/orders/deadletter/"])
def test_admin_refuses_anonymous_and_non_staff(client, path):
    assert client.get(path).status_code == 302
    User.objects.create_user("bob", password="pw")
    client.login(username="bob", password="pw")
    response = client.get(path)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
