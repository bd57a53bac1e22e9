"""The reconciler (orders/services/reconcile.py): stuck orders re-published at their stage, never a
backlog's, never one in a retry wait, and failed with a redrivable dead letter after the bound."""

from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from orders import dead_letters, services
from orders.models import DeadLetter, HistoryEvent, Order, OrderHistory, OrderStatus, OutboxMessage
from orders.services.reconcile import _LOCK_KEY
from orders.tests.factories import dead_letter_message, order_create, order_failed_at_enrich, order_refund_pending

pytestmark = pytest.mark.django_db
STUCK = 5.0


def idle(queue: str) -> int:
    return 0


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def published(order: Order) -> Order:
    """As the relay leaves it: every outbox row sent."""
    OutboxMessage.objects.filter(order=order).update(published_at=timezone.now())
    return order


def reconcile(*, at: float, depth=idle, attempts: int = 3, lookback: float = 3600):
    return services.orders_reconcile(
        now=later(at), stuck_seconds=STUCK, max_attempts=attempts, lookback_seconds=lookback, queue_depth=depth
    )


def kinds(order: Order) -> list[str]:
    return list(OutboxMessage.objects.filter(order=order, published_at__isnull=True).values_list("kind", flat=True))


def test_a_pending_order_whose_message_was_lost_is_republished_at_the_process_stage(catalog):
    # given: published, then nothing
    order = published(order_create())
    # when
    result = reconcile(at=STUCK + 1)
    # then
    assert (result.found, result.republished) == (1, {"process": 1})
    assert kinds(order) == ["order.resume.process"]
    entry = OrderHistory.objects.filter(order=order).latest("id")
    assert (entry.stage, entry.event, entry.detail) == ("process", HistoryEvent.RECONCILED, {"attempt": 1})


def test_an_order_younger_than_the_threshold_is_left_alone(catalog):
    order = published(order_create())
    assert reconcile(at=STUCK - 1).found == 0
    assert kinds(order) == []


def test_an_order_whose_outbox_row_is_unsent_is_the_relays(catalog):
    order = order_create()  # its outbox row not yet published
    assert reconcile(at=STUCK + 1).found == 0
    assert kinds(order) == ["order.created"]


def test_an_order_in_a_long_retry_wait_is_left_alone_until_the_delay_has_passed(catalog):
    # given: processing, its enrich retry scheduled 100 s out
    order = published(order_create())
    services.order_process(order_id=order.id)
    services.order_retry_record(order_id=order.id, stage="enrich", attempt=1, error="ProviderTransientError", delay=100)
    # then
    assert reconcile(at=STUCK + 50).found == 0
    result = reconcile(at=STUCK + 101)
    assert result.republished == {"enrich": 1} and kinds(order) == ["order.resume.enrich"]


def test_a_stage_with_ready_messages_is_a_backlog_and_none_of_its_orders_is_republished(catalog):
    # given: a pending order (process) and a processing one (enrich), both quiet; the process queue has a backlog
    waiting = published(order_create())
    moving = published(order_create())
    services.order_process(order_id=moving.id)
    depth = {"process": 50_000}
    # when
    result = reconcile(at=STUCK + 1, depth=lambda queue: depth.get(queue, 0))
    # then: the backlog's order is left alone; the other stage's is re-published
    assert result.skipped_backlog == ["process"]
    assert kinds(waiting) == [] and kinds(moving) == ["order.resume.enrich"]


def test_a_processing_order_with_its_enrichment_stored_resumes_at_finalize(catalog):
    order = published(order_create())
    services.order_process(order_id=order.id)
    services.order_enrichment_store(order_id=order.id, data={"customer_score": 1, "discount_pct": 0})
    assert reconcile(at=STUCK + 1).republished == {"finalize": 1}
    assert kinds(order) == ["order.resume.finalize"]


def test_a_refund_pending_order_resumes_at_the_refund_stage(catalog):
    order = published(order_refund_pending())
    assert reconcile(at=STUCK + 1).republished == {"refund": 1}
    assert kinds(order) == ["order.resume.refund"]


def test_after_the_bound_the_order_fails_with_a_dead_letter_that_redrives_it(catalog, clean_queues):
    # given: a lost message, reconciled twice without progress (the relay publishing each re-publish)
    order = published(order_create())
    for n in (1, 2):
        assert reconcile(at=n * (STUCK + 1), attempts=2).republished == {"process": 1}
        published(order)
    # when: a third pass finds it stuck again
    result = reconcile(at=3 * (STUCK + 1), attempts=2)
    # then: failed, with a reason that says so, and an archived dead letter for the operators' tools
    order.refresh_from_db()
    assert result.gave_up == 1
    assert (order.status, order.failure_kind) == (OrderStatus.FAILED, "stuck")
    assert "no progress after 2 reconciliations at the process stage" in order.failure_reason
    letter = DeadLetter.objects.get(order=order)
    assert (letter.stage, letter.task_name, letter.reason, letter.exception) == (
        "process",
        "orders.process",
        "stuck",
        "NoProgress",
    )
    assert letter.failure_group in {g["group"] for g in dead_letters.dead_letter_groups()}
    # and: a redrive puts it back on track
    dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="staff:ops")
    assert Order.objects.get(id=order.id).status == OrderStatus.PENDING


def test_a_refund_stuck_past_the_bound_stays_owed(catalog):
    order = published(order_refund_pending())
    assert reconcile(at=STUCK + 1, attempts=1).republished == {"refund": 1}
    published(order)
    assert reconcile(at=2 * (STUCK + 1), attempts=1).gave_up == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUND_PENDING and order.failure_kind == "stuck"
    assert DeadLetter.objects.get(order=order).stage == "refund"


def test_only_one_reconciler_works_at_a_time(catalog):
    # given: another reconciler holds the lock (a second database connection)
    order = published(order_create())
    other = connections.create_connection("default")
    try:
        other.ensure_connection()
        other.connection.autocommit = False
        with other.connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        # when
        result = reconcile(at=STUCK + 1)
    finally:
        other.connection.rollback()
        other.close()
    # then
    assert result.locked is False and kinds(order) == []


def test_a_failed_order_whose_dead_letter_was_lost_gets_one_archived_from_its_history(catalog, clean_queues):
    # given: enrich failed it (the task recorded the failure), then its dead letter never reached the archive
    order = order_failed_at_enrich(task_id="T-lost")
    # when
    assert reconcile(at=STUCK - 1).dead_letters_recovered == 0
    result = reconcile(at=STUCK + 1)
    # then: archived with what the failure recorded, keyed by the task id, and redrivable
    assert result.dead_letters_recovered == 1
    letter = DeadLetter.objects.get(order=order)
    assert (letter.message_key, letter.stage, letter.reason, letter.exception, letter.attempts) == (
        "T-lost",
        "enrich",
        "lost",
        "ProviderTransientError",
        3,
    )
    entry = OrderHistory.objects.filter(order=order).latest("id")
    assert (entry.event, entry.detail["reason"], entry.detail["dead_letter_id"]) == (
        HistoryEvent.DEAD_LETTERED,
        "lost",
        letter.pk,
    )
    assert reconcile(at=STUCK + 2).dead_letters_recovered == 0  # once
    dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="staff:ops")
    assert Order.objects.get(id=order.id).status == OrderStatus.PROCESSING


def test_the_real_dead_letter_arriving_after_the_rebuilt_one_is_not_stored_twice(catalog):
    order = order_failed_at_enrich(task_id="T-late")
    assert reconcile(at=STUCK + 1).dead_letters_recovered == 1
    _, created = dead_letters.dead_letter_archive(**dead_letter_message(order_id=order.id, task_id="T-late"))
    assert created is False and DeadLetter.objects.filter(order=order).count() == 1


def test_a_failed_order_whose_dead_letter_was_archived_is_left_alone(catalog):
    order = order_failed_at_enrich(task_id="T-ok")
    dead_letters.dead_letter_archive(**dead_letter_message(order_id=order.id, task_id="T-ok"))
    assert reconcile(at=STUCK + 1).dead_letters_recovered == 0
    assert DeadLetter.objects.filter(order=order).count() == 1


def test_lost_dead_letters_wait_while_the_dlq_holds_messages_and_outside_the_lookback(catalog):
    order = order_failed_at_enrich(task_id="T-wait")
    # the archiver's backlog: the dead letter may be in it
    backlog = reconcile(at=STUCK + 1, depth=lambda queue: 5 if queue == "orders.dlq" else 0)
    assert backlog.dead_letters_recovered == 0 and "orders.dlq" in backlog.skipped_backlog
    # a failure older than the lookback is not looked at
    assert reconcile(at=STUCK + 100, lookback=50).dead_letters_recovered == 0
    assert not DeadLetter.objects.filter(order=order).exists()
