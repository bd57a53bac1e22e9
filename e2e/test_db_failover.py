"""The application when its database connection breaks: a stage whose transaction loses its connection is
retried and done once (the system PostgreSQL, a backend terminated while the stage waits on a row lock)."""

import time

import psycopg
import pytest
from django.db import connection

from devtools.procs import wait_until
from e2e.conftest import wait_terminal
from orders.models import HistoryEvent, Invoice, Order, OrderHistory, Product
from orders.tests.factories import catalog_create

pytestmark = pytest.mark.e2e


def conninfo() -> str:
    db = connection.settings_dict
    return f"host={db['HOST']} port={db['PORT']} user={db['USER']} dbname={db['NAME']} connect_timeout=5"


def test_a_stage_whose_connection_breaks_mid_transaction_is_retried_and_done_once(processes, http):
    # given: an accepted order whose row the test holds locked, so the process stage will wait inside its
    # transaction (NO KEY UPDATE: the relay's history rows, which only share the key, still go in)
    catalog_create()
    stock_before = Product.objects.get(sku="ABC").stock
    order_id = http.post_order([("ABC", 2)])
    with psycopg.connect(conninfo()) as holder:
        holder.execute("SET lock_timeout = '60s'")
        holder.execute(f"SELECT 1 FROM {Order._meta.db_table} WHERE id = %s FOR NO KEY UPDATE", [order_id])  # noqa: S608
        processes.pipeline()

        # when: the stage's connection breaks while it waits (its server process terminated, as a failover does)
        def waiting_stage():
            row = holder.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND pid <> pg_backend_pid()"
            ).fetchone()
            return row[0] if row else None

        pid = wait_until(waiting_stage, timeout=60, interval=0.1, what="the process stage waiting on the row lock")
        assert holder.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
        time.sleep(0.2)  # the stage has its error before the lock goes (else it could take the row first)
        holder.rollback()

    # then: the stage is retried (a transient error), and the order completes once: one invoice, stock moved once
    order = wait_terminal(http, order_id, timeout=90)
    assert order["status"] == "completed", order
    history = list(OrderHistory.objects.filter(order_id=order_id).values_list("event", "stage"))
    assert (HistoryEvent.RETRY, "process") in history, history
    assert history.count((HistoryEvent.COMPLETED, "process")) == 1, history
    assert Invoice.objects.filter(order_id=order_id).count() == 1
    assert Product.objects.get(sku="ABC").stock == stock_before - 2
