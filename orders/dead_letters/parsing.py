"""Reading a dead letter: a Celery task message (or anything else) as RabbitMQ dead-lettered it."""

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class ParsedDeadLetter:
    message_key: str
    task_name: str
    task_id: str
    order_id: str | None
    args: list
    kwargs: dict
    embed: dict
    reason: str
    queue: str
    deliveries: int
    retries: int
    first_death_at: datetime | None
    last_death_at: datetime | None
    body_text: str
    decoded: bool
    malformed: str = ""


MALFORMED = "MalformedMessage"  # a dead letter that is not a Celery task message: stored raw, never redriven
UNDECODABLE = "UndecodableMessage"  # a content type workers refuse (pickle, ...)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _uuid_or_none(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError):
        return None


def clip(value: Any, limit: int) -> str:
    """A header value as a column can hold it: a string, no NUL (PostgreSQL refuses it), cut to size."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).replace("\x00", "\ufffd")[:limit]


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (ValueError, TypeError):
        return default


def _celery_payload(body: bytes) -> tuple[list, dict, dict] | None:
    """(args, kwargs, embed) of a Celery protocol-2 JSON body, or None if it is anything else."""
    try:
        payload = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return None
    if not (isinstance(payload, list) and len(payload) == 3):
        return None
    args, kwargs, embed = payload
    if not (isinstance(args, list) and isinstance(kwargs, dict) and isinstance(embed, (dict, type(None)))):
        return None
    return args, kwargs, embed or {}


def _body_text(body: bytes) -> str:
    """The body as text when it is UTF-8 without NULs, else base64 (`body_encoding` says which)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(body).decode()
    return text if "\x00" not in text else base64.b64encode(body).decode()


def parse_dead_letter(*, body: bytes, headers: dict, content_type: str) -> ParsedDeadLetter:
    """Whatever the message holds: headers of any type, any body. What is not a Celery task message comes
    back with `malformed` saying why (the archiver stores it raw and acks it; it never stops on one)."""
    headers = headers if isinstance(headers, dict) else {}
    deaths = (
        [d for d in headers.get("x-death") or [] if isinstance(d, dict)]
        if isinstance(headers.get("x-death"), list)
        else []
    )
    latest = deaths[0] if deaths else {}
    payload = _celery_payload(body) if content_type == "application/json" else None
    if content_type != "application/json":
        malformed = f"content type {content_type!r} is not accepted"
    elif payload is None:
        malformed = "body is not a Celery task message (JSON [args, kwargs, embed])"
    else:
        malformed = ""
    args, kwargs, embed = payload or ([], {}, {})
    task_id = clip(headers.get("id"), 64)
    order_id = _uuid_or_none(args[0] if args else kwargs.get("order_id"))
    reason = clip(latest.get("reason") or headers.get("x-first-death-reason") or "unknown", 40)
    return ParsedDeadLetter(
        message_key=task_id or hashlib.sha256(body).hexdigest(),
        task_name=clip(headers.get("task"), 200),
        task_id=task_id,
        order_id=order_id,
        args=list(args),
        kwargs=dict(kwargs),
        embed=dict(embed),
        reason=reason,
        queue=clip(latest.get("queue") or headers.get("x-first-death-queue"), 100),
        # RabbitMQ resets x-delivery-count when it dead-letters; the queue's limit says how many there were.
        deliveries=settings.QUEUE_DELIVERY_LIMIT + 1 if reason == "delivery_limit" else 1,
        retries=max(_int(headers.get("retries")), 0),
        first_death_at=_as_datetime(deaths[-1].get("time")) if deaths else None,
        last_death_at=_as_datetime(latest.get("time")),
        body_text=body.decode("utf-8") if not malformed else _body_text(body),
        decoded=not malformed,
        malformed=malformed,
    )


def jsonable(value: Any) -> Any:
    """JSON a jsonb column takes: anything else as its str(), and no NUL (PostgreSQL refuses \\u0000)."""
    text = json.dumps(value, default=str)
    return json.loads(text.replace("\\u0000", "\\ufffd")) if "\\u0000" in text else json.loads(text)
