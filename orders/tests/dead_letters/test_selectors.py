"""Lists of dead letters (orders/dead_letters/selectors.py): grouped by task and failure."""

import pytest

from orders import dead_letters
from orders.tests.factories import dead_letter_archived, order_create, order_failed_at_enrich

pytestmark = pytest.mark.django_db


def test_groups_count_by_task_and_exception(catalog):
    for _ in range(3):
        order = order_failed_at_enrich()
        dead_letter_archived(order_id=order.id)
    order = order_create(items=[("ABC", 1)])
    dead_letter_archived(order_id=order.id, task="orders.process", queue="process", reason="delivery_limit")
    groups = {g["group"]: g["count"] for g in dead_letters.dead_letter_groups()}
    assert groups == {"enrichment.enrich:rejected": 3, "orders.process:WorkerLost": 1}
    assert dead_letters.dead_letter_list(group="orders.process:WorkerLost").count() == 1
