"""The dead letters' admin (orders/dead_letters/admin.py), browser-free (Django test client): grouped by
failure, redriven by an action that only staff can run."""

import pytest
from django.contrib.auth.models import User

from orders.models import DeadLetter, DeadLetterStatus, Order
from orders.tests.factories import dead_letter_archived

pytestmark = pytest.mark.django_db


def test_dead_letters_grouped_by_failure_with_redrive_action(admin_client_logged, failed_order, clean_queues):
    letter = dead_letter_archived(order_id=failed_order.id)
    page = admin_client_logged.get("/admin/orders/deadletter/").content.decode()
    assert "enrichment.enrich:rejected (1)" in page
    assert admin_client_logged.get(f"/admin/orders/deadletter/{letter.pk}/change/").status_code == 200
    response = admin_client_logged.post(
        "/admin/orders/deadletter/", {"action": "redrive", "_selected_action": [letter.pk]}, follow=True
    )
    assert "Redriven 1 dead letter" in response.content.decode()


def _nothing_changed(letter: DeadLetter, orders_before: int) -> bool:
    letter.refresh_from_db()
    return (
        letter.status == DeadLetterStatus.ARCHIVED and not letter.redriven_by and Order.objects.count() == orders_before
    )


@pytest.mark.django_db
def test_admin_actions_refuse_non_staff(client, letter):
    User.objects.create_user("bob", password="pw-bob")
    client.login(username="bob", password="pw-bob")
    response = client.post(
        "/admin/orders/deadletter/", {"action": "redrive", "_selected_action": [letter.pk], "index": 0}
    )
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert _nothing_changed(letter, Order.objects.count())
