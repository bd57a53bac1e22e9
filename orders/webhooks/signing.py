"""A webhook's body and its Standard Webhooks headers (https://www.standardwebhooks.com/): the
`standardwebhooks` library signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256, once per
active secret (two during a rotation's grace period, space-separated, as the specification allows)."""

import json
from datetime import UTC, datetime
from math import floor

from standardwebhooks import Webhook


def webhook_body(*, event_type: str, occurred_at: datetime, data: dict) -> str:
    return json.dumps(
        {"type": event_type, "timestamp": occurred_at.isoformat(), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def webhook_headers(*, webhook_id: str, body: str, secrets: list[str], now: datetime) -> dict[str, str]:
    """The attempt's headers: the id is the event's (stable across attempts and redrives: the receiver's
    deduplication key), the timestamp this attempt's (receivers refuse old ones), so each attempt is
    signed anew."""
    now = now.astimezone(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(floor(now.timestamp())),
        "webhook-signature": " ".join(Webhook(secret).sign(webhook_id, now, body) for secret in secrets),
        "Content-Type": "application/json",
    }
