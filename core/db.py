"""Database helpers with no domain in them."""

import contextlib
import json
from contextlib import AbstractContextManager
from typing import Any

from django.db import connection, transaction


def statement_transaction() -> AbstractContextManager:
    """For a single statement that must commit or roll back whole: in autocommit it is its own durable
    transaction (no BEGIN/COMMIT round trips); inside a caller's transaction (tests, a service calling
    another) a savepoint keeps its error from breaking the caller's."""
    return transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()


def database_ping() -> None:
    """One round trip to PostgreSQL; raises when it does not answer."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def jsonb_value(value: Any) -> Any:
    """A jsonb column read by raw SQL: psycopg decodes it, but a text value (a cast, another driver) is
    decoded here."""
    return json.loads(value) if isinstance(value, str) else value
