import base64
import json

import pytest

from conftest import queue_messages
from orders import dead_letters, services
from orders.models import DeadLetter, DeadLetterStatus, HistoryEvent, OrderStatus, Product
from orders.tests.dead_letter_factories import dead_letter_archived, dead_letter_message
from orders.tests.factories import order_create

pytestmark = pytest.mark.django_db


def _failed_at_enrich(items=(("ABC", 2),)):
    order = order_create(items=items)
    services.order_process(order_id=order.id)
    return services.order_fail(
        order_id=order.id, stage="enrich", reason="enrich: retries exhausted", kind="retries_exhausted",
        detail={"task_id": "T-1", "exception": "ProviderTransientError", "message": "provider unavailable (503)", "attempts": 3},
    )


def test_archive_stores_what_an_operator_needs(catalog):
    order = _failed_at_enrich()
    # when
    letter, created = dead_letters.dead_letter_archive(**dead_letter_message(order_id=order.id, task_id="T-1"))
    # then
    assert created
    assert (letter.order_id, letter.task_name, letter.stage, letter.queue, letter.reason) == (order.id, "enrichment.enrich", "enrich", "enrichment", "rejected")
    assert (letter.exception, letter.error_message, letter.attempts) == ("ProviderTransientError", "provider unavailable (503)", 3)
    assert json.loads(letter.body)[2]["chain"][0]["task"] == "orders.finalize"
    assert letter.headers["x-death"][0]["reason"] == "rejected"
    assert ("enrich", HistoryEvent.DEAD_LETTERED) in order.history.values_list("stage", "event")


def test_archiving_the_same_message_twice_stores_it_once(catalog):
    order = _failed_at_enrich()
    message = dead_letter_message(order_id=order.id, task_id="T-1")
    dead_letters.dead_letter_archive(**message)
    _, created = dead_letters.dead_letter_archive(**message)
    assert not created
    assert DeadLetter.objects.count() == 1


def test_delivery_limit_dead_letter_ends_a_processing_order_failed(catalog, settings):
    order = order_create(items=[("CRASH", 1)])
    services.order_process(order_id=order.id)
    dead_letter_archived(order_id=order.id, reason="delivery_limit", retries=0)
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    assert order.failure_reason == f"dead-lettered after {settings.QUEUE_DELIVERY_LIMIT + 1} deliveries (enrich)"
    assert Product.objects.get(sku="CRASH").reserved == 0


def test_non_celery_message_is_archived_undecoded(catalog):
    letter, created = dead_letters.dead_letter_archive(
        body=b"\x80\x04pickled", headers={"x-death": [{"reason": "rejected", "queue": "process"}]}, properties={}, content_type="application/x-python-serialize"
    )
    assert created and letter.order is None
    assert letter.exception == "UndecodableMessage"
    with pytest.raises(dead_letters.RedriveRefused):
        dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="t")


def test_redrive_reopens_the_order_and_publishes_with_retries_reset(catalog, clean_queues):
    order = _failed_at_enrich()
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
    args, kwargs, embed = json.loads(message.body)
    assert args == [str(order.id)]
    assert message.headers["id"] == letter.redrive_task_id != "T-1"
    assert message.headers["retries"] == 0
    assert [s["task"] for s in embed["chain"]] == ["orders.finalize"]


def test_redrive_twice_is_refused(catalog, clean_queues):
    order = _failed_at_enrich()
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


def test_groups_count_by_task_and_exception(catalog):
    for _ in range(3):
        order = _failed_at_enrich()
        dead_letter_archived(order_id=order.id)
    order = order_create(items=[("ABC", 1)])
    dead_letter_archived(order_id=order.id, task="orders.process", queue="process", reason="delivery_limit")
    groups = {g["group"]: g["count"] for g in dead_letters.dead_letter_groups()}
    assert groups == {"enrichment.enrich:rejected": 3, "orders.process:WorkerLost": 1}
    assert dead_letters.dead_letter_list(group="orders.process:WorkerLost").count() == 1


def test_discard_marks_it_handled(catalog):
    order = _failed_at_enrich()
    letter = dead_letter_archived(order_id=order.id)
    dead_letters.dead_letter_discard(dead_letter_id=letter.pk, actor="a")
    letter.refresh_from_db()
    assert letter.status == DeadLetterStatus.DISCARDED
    with pytest.raises(dead_letters.RedriveRefused):
        dead_letters.dead_letter_discard(dead_letter_id=letter.pk, actor="a")


# ---------------------------------------------------------------------------
# The archiver never stops on a malformed dead letter
# ---------------------------------------------------------------------------
MALFORMED_LETTERS = [
    # (body, content type, headers)
    (b"[1,2,3]", "application/json", {"task": "orders.process", "id": "M-list", "x-death": [{"reason": "rejected", "queue": "process"}]}),
    (b"\xff\xfe\x00not json", "application/json", {"task": "orders.process", "id": "M-bytes"}),
    (b'{"no": "headers"}', "application/json", None),
    (b"plain words", "text/plain", {"id": "M-text"}),
    (b'[[], {}, {}]\x00', "application/json", {"id": "M-nul\x00", "retries": "many", "x-death": "not a list", "task": "t" * 500}),
]


def dlq_publish(body: bytes, content_type: str, headers) -> None:
    from django.conf import settings
    from kombu import Connection

    from orders_project import broker

    with Connection(settings.CELERY_BROKER_URL) as conn:
        producer = conn.Producer(conn.channel())
        producer.publish(
            body, exchange=broker.DEAD_LETTER_EXCHANGE.name, routing_key="process",
            content_type=content_type, content_encoding="binary", headers=headers,
        )


def dlq_wait_depth(count: int) -> None:
    import time

    deadline = time.monotonic() + 10
    while dead_letters.dlq_depth() < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_archiver_stores_and_acks_malformed_dead_letters_and_goes_on_with_the_next_good_one(catalog, clean_queues):
    from orders import metrics

    # given: malformed dead letters in the real DLQ, then a good one
    for body, content_type, headers in MALFORMED_LETTERS:
        dlq_publish(body, content_type, headers)
    order = _failed_at_enrich()
    good = dead_letter_message(order_id=order.id, task_id="T-1")
    dlq_publish(good["body"], good["content_type"], good["headers"])
    dlq_wait_depth(len(MALFORMED_LETTERS) + 1)
    counted = metrics.DEAD_LETTERS_MALFORMED._value.get()
    # when
    taken = dead_letters.dlq_archive_batch(limit=100)
    # then: every one stored and acked, the malformed ones marked and counted, the good one archived as usual
    assert taken == len(MALFORMED_LETTERS) + 1
    assert dead_letters.dlq_depth() == 0
    malformed = DeadLetter.objects.exclude(exception="ProviderTransientError")
    assert sorted(malformed.values_list("exception", flat=True)) == sorted(["MalformedMessage"] * 4 + ["UndecodableMessage"])
    assert metrics.DEAD_LETTERS_MALFORMED._value.get() == counted + len(MALFORMED_LETTERS)
    assert malformed.get(message_key="M-list").body == "[1,2,3]"
    assert base64.b64decode(malformed.get(message_key="M-bytes").body) == b"\xff\xfe\x00not json"
    assert all(letter.order_id is None for letter in malformed)
    assert DeadLetter.objects.get(message_key="T-1").order_id == order.id
    order.refresh_from_db()
    assert order.history.filter(event=HistoryEvent.DEAD_LETTERED).exists()


def test_a_malformed_dead_letter_with_a_pipeline_task_name_is_never_redriven(catalog):
    letter, _ = dead_letters.dead_letter_archive(
        body=b"[1,2,3]", headers={"task": "orders.process", "id": "M-1"}, properties={}, content_type="application/json"
    )
    assert letter.exception == "MalformedMessage"
    with pytest.raises(dead_letters.RedriveRefused):
        dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="t")


@pytest.mark.django_db(transaction=True)
def test_archiver_heartbeat_stops_after_repeated_failures_to_store_and_the_dead_letter_stays(clean_queues, tmp_path):
    import subprocess
    import sys
    import time

    from conftest import subprocess_env

    # given: a dead letter, and an archiver whose database is gone
    dlq_publish(b"[1,2,3]", "application/json", {"id": "M-stays"})
    dlq_wait_depth(1)
    heartbeat = tmp_path / "heartbeat"
    env = subprocess_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/nope", ARCHIVER_FAILURE_LIMIT="2", OUTBOX_POLL_SECONDS="0.2")
    archiver = subprocess.Popen([sys.executable, "manage.py", "archive_dead_letters", "--heartbeat-file", str(heartbeat)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # when: it fails batch after batch
        time.sleep(6)
        stale_since = heartbeat.stat().st_mtime
        time.sleep(2)
        # then: its heartbeat stopped (the liveness probe restarts it), the process is still up, nothing lost
        assert heartbeat.stat().st_mtime == stale_since and time.time() - stale_since > 2
        assert archiver.poll() is None
    finally:
        archiver.terminate()
        _, stderr = archiver.communicate(timeout=30)
    assert "loop_unhealthy" in stderr
    assert dead_letters.dlq_depth() == 1
    # and once the database is back, it is stored
    assert dead_letters.dlq_archive_batch(limit=10) == 1
    assert DeadLetter.objects.get(message_key="M-stays").exception == "MalformedMessage"
