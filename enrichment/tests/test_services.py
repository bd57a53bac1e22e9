import threading
import time

import pytest
from django.db import connection, transaction

from orders.services import order_enrich
from orders import services
from orders.models import HistoryEvent, OrderEnrichment, OrderStatus
from orders.tests.factories import order_create


@pytest.mark.django_db(transaction=True)
def test_enrich_delivered_before_the_redrive_that_published_it_commits_waits_for_it(catalog):
    # given: an order that failed at enrich, and a redrive holding its lock, not committed yet
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    services.order_fail(order_id=order.id, stage="enrich", reason="provider down")
    locked, release = threading.Event(), threading.Event()

    def redrive_in_flight():
        try:
            with transaction.atomic():
                reopened = services.order_lock(order.id)
                reopened.status = OrderStatus.PROCESSING
                reopened.save(update_fields=["status"])
                locked.set()
                release.wait(5)
                time.sleep(0.3)  # the message is already out; the commit comes a little later
        finally:
            connection.close()

    redrive = threading.Thread(target=redrive_in_flight)
    redrive.start()
    assert locked.wait(5)
    release.set()
    # when: the redriven message is delivered at once
    result = order_enrich(order_id=order.id)
    redrive.join()
    # then: it waited for the commit and enriched, instead of skipping the order as failed
    assert OrderEnrichment.objects.filter(order=order).exists()
    assert result.status == OrderStatus.PROCESSING
    assert ("enrich", HistoryEvent.DUPLICATE_SKIPPED) not in list(order.history.values_list("stage", "event"))


@pytest.mark.django_db
def test_enrich_of_a_failed_order_is_skipped(catalog):
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    services.order_fail(order_id=order.id, stage="enrich", reason="x")
    assert order_enrich(order_id=order.id).status == OrderStatus.FAILED
    assert not OrderEnrichment.objects.filter(order=order).exists()
