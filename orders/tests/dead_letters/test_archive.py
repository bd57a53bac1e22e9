"""Archiving dead letters (orders/dead_letters/archive.py): what an operator needs stored once, an order
ended failed by a delivery-limit letter, malformed letters stored and acked without stopping the
archiver, and the archiver process (archive_dead_letters) whose heartbeat stops while it cannot store."""

import base64
import json

import pytest

from orders import dead_letters, services
from orders.models import DeadLetter, HistoryEvent, OrderStatus, Product
from orders.tests.factories import dead_letter_archived, dead_letter_message, order_create, order_failed_at_enrich

pytestmark = pytest.mark.django_db


def test_archive_stores_what_an_operator_needs(catalog):
    order = order_failed_at_enrich()
    # when
    letter, created = dead_letters.dead_letter_archive(**dead_letter_message(order_id=order.id, task_id="T-1"))
    # then
    assert created
    assert (letter.order_id, letter.task_name, letter.stage, letter.queue, letter.reason) == (
        order.id,
        "enrichment.enrich",
        "enrich",
        "enrichment",
        "rejected",
    )
    assert (letter.exception, letter.error_message, letter.attempts) == (
        "ProviderTransientError",
        "provider unavailable (503)",
        3,
    )
    assert json.loads(letter.body)[2]["chain"][0]["task"] == "orders.finalize"
    assert letter.headers["x-death"][0]["reason"] == "rejected"
    assert ("enrich", HistoryEvent.DEAD_LETTERED) in order.history.values_list("stage", "event")


def test_archiving_the_same_message_twice_stores_it_once(catalog):
    order = order_failed_at_enrich()
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
        body=b"\x80\x04pickled",
        headers={"x-death": [{"reason": "rejected", "queue": "process"}]},
        properties={},
        content_type="application/x-python-serialize",
    )
    assert created and letter.order is None
    assert letter.exception == "UndecodableMessage"
    with pytest.raises(dead_letters.RedriveRefused):
        dead_letters.dead_letter_redrive(dead_letter_id=letter.pk, actor="t")


# ---------------------------------------------------------------------------
# The archiver never stops on a malformed dead letter
# ---------------------------------------------------------------------------
MALFORMED_LETTERS = [
    # (body, content type, headers)
    (
        b"[1,2,3]",
        "application/json",
        {"task": "orders.process", "id": "M-list", "x-death": [{"reason": "rejected", "queue": "process"}]},
    ),
    (b"\xff\xfe\x00not json", "application/json", {"task": "orders.process", "id": "M-bytes"}),
    (b'{"no": "headers"}', "application/json", None),
    (b"plain words", "text/plain", {"id": "M-text"}),
    (
        b"[[], {}, {}]\x00",
        "application/json",
        {"id": "M-nul\x00", "retries": "many", "x-death": "not a list", "task": "t" * 500},
    ),
]


def dlq_publish(body: bytes, content_type: str, headers) -> None:
    from django.conf import settings
    from kombu import Connection

    from orders import topology

    with Connection(settings.CELERY_BROKER_URL) as conn:
        producer = conn.Producer(conn.channel())
        producer.publish(
            body,
            exchange=topology.DEAD_LETTER_EXCHANGE.name,
            routing_key="process",
            content_type=content_type,
            content_encoding="binary",
            headers=headers,
        )


def dlq_wait_depth(count: int) -> None:
    import time

    deadline = time.monotonic() + 10
    while dead_letters.dlq_depth() < count and time.monotonic() < deadline:
        time.sleep(0.05)  # paces the poll: a quorum queue takes a moment to commit a publish


def test_archiver_stores_and_acks_malformed_dead_letters_and_goes_on_with_the_next_good_one(catalog, clean_queues):
    from orders import metrics

    # given: malformed dead letters in the real DLQ, then a good one
    for body, content_type, headers in MALFORMED_LETTERS:
        dlq_publish(body, content_type, headers)
    order = order_failed_at_enrich()
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
    assert sorted(malformed.values_list("exception", flat=True)) == sorted(
        ["MalformedMessage"] * 4 + ["UndecodableMessage"]
    )
    assert metrics.DEAD_LETTERS_MALFORMED._value.get() == counted + len(MALFORMED_LETTERS)
    assert malformed.get(message_key="M-list").body == "[1,2,3]"
    assert base64.b64decode(malformed.get(message_key="M-bytes").body) == b"\xff\xfe\x00not json"
    assert all(letter.order_id is None for letter in malformed)
    assert DeadLetter.objects.get(message_key="T-1").order_id == order.id
    order.refresh_from_db()
    assert order.history.filter(event=HistoryEvent.DEAD_LETTERED).exists()


def failed_batch_logged_after(log, moment: float) -> bool:
    """Whether the archiver's JSON log has a failed batch timestamped after `moment` (epoch seconds)."""
    from datetime import datetime

    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # not a log line of ours (a warning printed at start-up)
        if (
            entry.get("event") == "loop_batch_failed"
            and datetime.fromisoformat(entry["timestamp"]).timestamp() > moment
        ):
            return True
    return False


@pytest.mark.django_db(transaction=True)
def test_archiver_heartbeat_stops_after_repeated_failures_to_store_and_the_dead_letter_stays(clean_queues, tmp_path):
    import subprocess
    import sys
    import time

    from conftest import subprocess_env
    from devtools.procs import wait_until

    # given: a dead letter, and an archiver whose database is gone
    dlq_publish(b"[1,2,3]", "application/json", {"id": "M-stays"})
    dlq_wait_depth(1)
    heartbeat, log = tmp_path / "heartbeat", tmp_path / "archiver.log"
    # JSON logs: each line carries the time it was written, which the wait below reads
    env = subprocess_env(
        DATABASE_URL="postgres://postgres@127.0.0.1:1/nope",
        ARCHIVER_FAILURE_LIMIT="2",
        OUTBOX_POLL_SECONDS="0.2",
        LOG_FORMAT="json",
    )
    with log.open("w") as stderr:
        archiver = subprocess.Popen(
            [sys.executable, "manage.py", "archive_dead_letters", "--heartbeat-file", str(heartbeat)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        # when: it fails batch after batch until it says its heartbeat is no longer touched
        wait_until(lambda: "loop_unhealthy" in log.read_text(), timeout=30, what="the archiver to stop its heartbeat")
        stale_since = heartbeat.stat().st_mtime
        # and it fails another batch more than 2 s after its last beat (a chance to touch the heartbeat)
        wait_until(
            lambda: failed_batch_logged_after(log, stale_since + 2),
            timeout=30,
            what="a failed batch 2 s after the last beat",
        )
        # then: its heartbeat stopped (the liveness probe restarts it), the process is still up, nothing lost
        assert heartbeat.stat().st_mtime == stale_since and time.time() - stale_since > 2
        assert archiver.poll() is None
    finally:
        archiver.terminate()
        archiver.wait(timeout=30)
    stderr = log.read_text()
    assert "loop_unhealthy" in stderr
    assert dead_letters.dlq_depth() == 1
    # and once the database is back, it is stored
    assert dead_letters.dlq_archive_batch(limit=10) == 1
    assert DeadLetter.objects.get(message_key="M-stays").exception == "MalformedMessage"
