"""Redriving and discarding dead letters (orders/dead_letters/redrive.py): the order re-opened and the
stage re-published with its retries reset, once; a completed order or an unreadable letter refused."""

import json

import pytest

from conftest import queue_messages
from orders import dead_letters, services
from orders.models import DeadLetterStatus, HistoryEvent, OrderStatus, Product
from orders.tests.factories import dead_letter_archived, order_create, order_failed_at_enrich

pytestmark = pytest.mark.django_db


def test_redrive_reopens_the_order_and_publishes_with_retries_reset(catalog, clean_queues):
    order = order_failed_at_enrich()
    letter = dead_letter_archived(order_id=order.id, task_id="T-1")
    # when
    dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="staff:alice")
    # then
    order.refresh_from_db()
    letter.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING and order.failure_reason == ""
    assert Product.objects.get(sku="ABC").reserved == 2
    assert (letter.status, letter.redriven_by) == (DeadLetterStatus.REDRIVEN, "staff:alice")
    redriven = order.history.filter(event=HistoryEvent.REDRIVEN).get()
    assert redriven.detail["by"] == "staff:alice"
    [message] = queue_messages("enrichment")
    args, _kwargs, embed = json.loads(message.body)
    assert args == [str(order.id)]
    assert message.headers["id"] == letter.redrive_task_id != "T-1"
    assert message.headers["retries"] == 0
    assert [s["task"] for s in embed["chain"]] == ["orders.finalize"]


def test_redrive_twice_is_refused(catalog, clean_queues):
    order = order_failed_at_enrich()
    letter = dead_letter_archived(order_id=order.id)
    dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="a")
    with pytest.raises(dead_letters.RedriveRefused, match="already redriven"):
        dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="a")


def test_redrive_of_a_completed_order_is_refused(catalog, clean_queues):
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    services.order_enrichment_store(order_id=order.id, data={})
    services.order_finalize(order_id=order.id)
    letter = dead_letter_archived(order_id=order.id)
    with pytest.raises(dead_letters.RedriveRefused, match="already completed"):
        dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="a")
    letter.refresh_from_db()
    assert letter.status == DeadLetterStatus.ARCHIVED
    assert queue_messages("enrichment") == []


def test_a_malformed_dead_letter_with_a_pipeline_task_name_is_never_redriven(catalog):
    letter, _ = dead_letters.dead_letter_archive(
        body=b"[1,2,3]", headers={"task": "orders.process", "id": "M-1"}, properties={}, content_type="application/json"
    )
    assert letter.exception == "MalformedMessage"
    with pytest.raises(dead_letters.RedriveRefused):
        dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="t")


def test_discard_marks_it_handled(catalog):
    order = order_failed_at_enrich()
    letter = dead_letter_archived(order_id=order.id)
    dead_letters.dead_letter_discard(dead_letter_id=letter.pk, actor="a")
    letter.refresh_from_db()
    assert letter.status == DeadLetterStatus.DISCARDED
    with pytest.raises(dead_letters.RedriveRefused):
        dead_letters.dead_letter_discard(dead_letter_id=letter.pk, actor="a")
