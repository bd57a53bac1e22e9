"""One disclosure policy for the REST API and the live feed (orders/disclosure.py)."""

from orders.consumers import public_event
from orders.disclosure import PUBLIC_FAILURE_REASON, public_live_event


def _event(**overrides) -> dict:
    return {
        "order_id": "0b7c8f3e-4a47-4a8e-9d1b-1f7b8c0e2a11",
        "status": "processing",
        "stage": "enrich",
        "event": "retry",
        "detail": {"attempt": 1, "next_delay_s": 0.7, "error": "ProviderTransientError: host db-7.internal refused"},
        "failure_reason": "",
        "source": "web",
        "at": "2026-12-01T00:00:00+00:00",
        **overrides,
    }


def test_a_retry_reaches_a_non_staff_socket_without_its_exception_text():
    shown = public_event(_event(), staff=False)
    assert shown["detail"] == {"attempt": 1, "next_delay_s": 0.7}


def test_a_technical_failure_reaches_a_non_staff_socket_as_the_generic_reason():
    # given: the failed event of an order whose enrichment exhausted its retries
    raw = "enrich: retries exhausted after 2 retries: ProviderTransientError: host db-7.internal refused"
    event = _event(
        status="failed",
        event="failed",
        failure_reason=raw,
        detail={"reason": raw, "kind": "retries_exhausted", "attempts": 3, "task_id": "t-1"},
    )
    # when
    shown = public_event(event, staff=False)
    # then
    assert shown["failure_reason"] == PUBLIC_FAILURE_REASON
    assert shown["detail"] == {"kind": "retries_exhausted", "attempts": 3}


def test_a_business_failure_reaches_a_non_staff_socket_with_its_reason():
    reason = "not enough stock for ABC (wanted 5, available 2)"
    event = _event(
        status="failed",
        stage="process",
        event="failed",
        failure_reason=reason,
        detail={"reason": reason, "kind": "business"},
    )
    shown = public_live_event(event)
    assert shown["failure_reason"] == reason and shown["detail"]["reason"] == reason


def test_staff_sockets_get_the_whole_event():
    event = _event()
    assert public_event(event, staff=True)["detail"] == event["detail"]


def test_a_non_staff_socket_sees_no_invoice_or_credit_note_number_or_total():
    finalized = _event(
        status="completed",
        stage="finalize",
        event="completed",
        detail={"invoice": "INV-20261201-0B7C8F3E4A47", "total": "12.50"},
    )
    refunded = _event(
        status="refunded",
        stage="refund",
        event="refunded",
        detail={"credit_note": "CN-20261201-0B7C8F3E4A47", "total": "12.50", "via": "refund"},
    )
    assert public_event(finalized, staff=False)["detail"] == {}
    assert public_event(refunded, staff=False)["detail"] == {"via": "refund"}
    assert public_event(refunded, staff=True)["detail"] == refunded["detail"]
