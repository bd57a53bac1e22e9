"""What a reader who is not staff may see of an order's failure and history: one policy for the REST API
(orders/selectors.py) and the live feed (orders/consumers.py). Staff see everything."""

from orders.models import HistoryEvent

# What a reader who is not staff may see of each history entry's detail: the pipeline's facts, never the
# customer's (enrichment scores: the order's own `enrichment` field is where its client reads them), staff
# usernames (`by`), exception text (`error`, `message`, `exception`) or internal ids. An allowlist, so a key
# added to an event later stays hidden until it is listed here.
_PIPELINE_DETAIL_KEYS = frozenset(
    {"items", "source", "via", "kind", "status", "reserved", "invoice", "total", "credit_note", "from"}
)
_PUBLIC_DETAIL_KEYS = {
    HistoryEvent.RETRY: frozenset({"attempt", "next_delay_s"}),
    HistoryEvent.FAILED: frozenset({"kind", "attempts"}),
    HistoryEvent.DEAD_LETTERED: frozenset({"reason", "deliveries"}),
    HistoryEvent.REDRIVEN: frozenset(),
    HistoryEvent.RECONCILED: frozenset({"attempt"}),
}
# What the anonymous demo reader (LIVE_FEED_ANONYMOUS: the live page, order reads without a key) may not see
# either: the order's money and documents (invoice and credit-note numbers, totals) are its client's.
_CLIENT_ONLY_DETAIL_KEYS = frozenset({"invoice", "total", "credit_note"})
PUBLIC_FAILURE_REASON = "The order could not be processed; quote its order_id to support."


def public_failure_reason(*, failure_reason: str, failure_kind: str) -> str:
    """A business failure (unknown sku, not enough stock) is the client's to read; anything else may
    carry exception text and is reported generically (staff see the real reason)."""
    if not failure_reason or failure_kind == "business":
        return failure_reason
    return PUBLIC_FAILURE_REASON


def public_actor(actor: str) -> str:
    """A client's own name is its to read; a staff member's username is not."""
    return actor if actor.startswith("client:") else "staff"


def public_history_entry(entry: dict, *, demo: bool = False) -> dict:
    keys = _PUBLIC_DETAIL_KEYS.get(entry["event"], _PIPELINE_DETAIL_KEYS)
    if demo:
        keys = keys - _CLIENT_ONLY_DETAIL_KEYS
    detail = {k: v for k, v in entry["detail"].items() if k in keys}
    if entry["event"] == HistoryEvent.FAILED and entry["detail"].get("kind") == "business":
        detail["reason"] = entry["detail"].get("reason", "")
    return {**entry, "detail": detail}


def public_live_event(event: dict) -> dict:
    """A live event (orders/services/history.py live_event) as a non-staff socket may see it: only the demo's
    anonymous sockets are not staff (orders/consumers.py), so without the client's invoice and totals."""
    raw = event.get("detail")
    detail: dict = raw if isinstance(raw, dict) else {}
    entry = public_history_entry({**event, "detail": detail}, demo=True)
    kind = detail.get("kind", "") if event.get("event") == HistoryEvent.FAILED else ""
    if "failure_reason" in entry:
        entry["failure_reason"] = public_failure_reason(failure_reason=entry["failure_reason"] or "", failure_kind=kind)
    return entry
