"""The hot path's SQL (orders/statements.py): the models' vocabulary as parameters, named rows, one raw writer of
the history."""

import re
from pathlib import Path

import pytest
from django.db import connection

from orders import statements
from orders.models import HistoryEvent, OrderHistory, OrderStatus
from orders.pipeline import OutboxKind
from orders.webhooks.models import WebhookEventStatus

ORDERS = Path(statements.__file__).resolve().parent
SQL = {name: value for name, value in vars(statements).items() if name.isupper() and isinstance(value, str)}
ENUM_VALUES = {m.value for enum in (OrderStatus, HistoryEvent, OutboxKind, WebhookEventStatus) for m in enum}


@pytest.mark.parametrize("name", sorted(n for n in SQL if n not in ("OUTBOX_CHANNEL",)))
def test_no_statement_spells_a_state_event_or_kind_as_a_literal(name):
    literals = set(re.findall(r"'([^']*)'", SQL[name]))
    assert not literals & ENUM_VALUES, f"{name} writes {literals & ENUM_VALUES} as literals: take them from VOCABULARY"


@pytest.mark.parametrize("name", sorted(n for n in SQL if n not in ("OUTBOX_CHANNEL",)))
def test_every_vocabulary_parameter_a_statement_names_exists(name):
    named = set(re.findall(r"%\((\w+)\)s", SQL[name]))
    vocabulary_like = {p for p in named if p.startswith(("status_", "event_", "kind_", "webhook_pending"))}
    assert vocabulary_like <= set(statements.VOCABULARY), vocabulary_like - set(statements.VOCABULARY)


def test_the_vocabulary_is_the_enums_values():
    assert statements.VOCABULARY["status_processing"] == OrderStatus.PROCESSING
    assert statements.VOCABULARY["event_published"] == HistoryEvent.PUBLISHED
    assert statements.VOCABULARY["kind_order_created"] == OutboxKind.ORDER_CREATED
    assert statements.params(x=1) == {**statements.VOCABULARY, "x": 1}


@pytest.mark.django_db
def test_rows_come_back_named():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 AS one, 'a' AS letter UNION ALL SELECT 2, 'b' ORDER BY 1")
        rows = statements.fetch_all(cursor)
        cursor.execute("SELECT 1 AS one WHERE false")
        none = statements.fetch_one(cursor)
    assert [(r.one, r.letter) for r in rows] == [(1, "a"), (2, "b")]
    assert none is None


def test_raw_history_inserts_are_only_in_the_statements_module():
    table = OrderHistory._meta.db_table
    writers = []
    for path in ORDERS.rglob("*.py"):
        if "tests" in path.parts or "migrations" in path.parts or path == Path(statements.__file__).resolve():
            continue
        text = path.read_text()
        if re.search(rf"INSERT INTO ({table}|{{history}}|{{OrderHistory)", text):
            writers.append(str(path.relative_to(ORDERS)))
    assert not writers, f"raw INSERTs into the history outside orders/statements.py: {writers}"
