"""The application when its database connection breaks or its primary goes:
- a stage whose transaction loses its connection is retried and done once (the system PostgreSQL, a backend
  terminated while the stage waits on a row lock);
- on the local HA pair (devtools/db_ha.py, the tests' own instance `oet` on ports 5480-5490) behind PgBouncer:
  while no primary exists the web answers 503 with Retry-After, quickly, never 500, and takes the same key
  again once one does; across a kill -9 of the primary under a steady POST load every order that got a 202 is
  in the database afterwards, and no request got a 500."""

import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection

from devtools.db_ha import run_instance
from devtools.procs import wait_until
from e2e.conftest import Processes, free_port, start_web, wait_terminal
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
            # The holder is inside its transaction, where pg_stat_activity is read once and kept: read it afresh.
            holder.execute("SELECT pg_stat_clear_snapshot()")
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


ROOT = Path(__file__).resolve().parent.parent
HA = {"DB_HA_NAME": "oet", "DB_HA_PORT": "5480", "DB_HA_DATABASE": "orders_e2e_ha"}
NO_PRIMARY_ANSWER_WITHIN = 15.0  # seconds: PgBouncer's query_wait_timeout and server_login_retry bound it


def db_ha(*args: str, timeout: float = 240) -> str:
    return run_instance(HA, *args, timeout=timeout)


@pytest.fixture(scope="module")
def ha_web(django_db_setup, django_db_blocker):
    """The HA pair up, the schema and catalog on it (migrated through the pooler, as a setup job does), and
    the Procfile's web on it through PgBouncer."""
    subprocess.run(["bash", "scripts/db_ha_deps.sh"], cwd=ROOT, check=True, capture_output=True, timeout=600)
    db_ha("down")
    urls = dict(line.split("=", 1) for line in db_ha("up").split() if "=" in line)
    env = {
        "DATABASE_URL": urls["DATABASE_URL"],
        "DATABASE_DIRECT_URL": urls["DATABASE_DIRECT_URL"],
        "DB_TRANSACTION_POOLER": "true",
    }
    processes = Processes(env_overrides=env)
    try:
        with django_db_blocker.unblock():
            for name, *args in (("migrate", "migrate", "--noinput"), ("seed", "seed_catalog")):
                proc = processes.manage(name, *args)
                assert proc.popen.wait(timeout=180) == 0, proc.output()[-3000:]
            port = free_port()
            start_web(processes, port, env={"WEB_CONCURRENCY": "3"})
        yield {"base": f"http://127.0.0.1:{port}", "direct": urls["DATABASE_DIRECT_URL"]}
    finally:
        processes.stop_all()
        db_ha("down")


def post(base: str, key: str, *, timeout: float = 30) -> requests.Response:
    from django.conf import settings

    return requests.post(
        f"{base}/orders",
        json={"customer_id": "ha", "source": "api", "items": [{"sku": "ABC", "qty": 1}]},
        headers={"Authorization": f"Bearer {settings.SECRET_TOKEN}", "X-Idempotency-Key": key},
        timeout=timeout,
    )


def orders_in_database(direct_url: str, ids: set[str]) -> set[str]:
    with psycopg.connect(direct_url, connect_timeout=5) as conn:
        rows = conn.execute(f"SELECT id::text FROM {Order._meta.db_table} WHERE id = ANY(%s)", [list(ids)])  # noqa: S608
        return {row[0] for row in rows}


def test_while_no_primary_exists_the_web_answers_503_and_takes_the_same_key_after(ha_web):
    base = ha_web["base"]
    accepted = post(base, "before-pause")
    assert accepted.status_code == 202, accepted.text
    # given: Patroni paused (it neither restarts nor promotes anything) and the primary killed: no primary
    db_ha("pause")
    try:
        db_ha("kill-primary", timeout=30)
        key = f"no-primary-{uuid.uuid4().hex[:8]}"
        # when: an order is posted
        started = time.monotonic()
        refused = post(base, key)
        took = time.monotonic() - started
        # then: a 503 with Retry-After, in bounded time (never a 500, never the server's own timeout)
        assert refused.status_code == 503, refused.text
        assert refused.headers.get("Retry-After") == "1"
        assert refused.json()["code"] == "service_unavailable"
        assert took < NO_PRIMARY_ANSWER_WITHIN, took
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 503
    finally:
        db_ha("resume")
    # when: Patroni has a primary again
    db_ha("wait-primary", "--timeout", "60", timeout=90)
    # then: the same key is accepted, and the order accepted before the outage is there
    again = wait_until(
        lambda: (r := post(base, key)).status_code == 202 and r, timeout=30, interval=0.5, what="the retry's 202"
    )
    ids = {accepted.json()["order_id"], again.json()["order_id"]}
    assert orders_in_database(ha_web["direct"], ids) == ids


def test_every_order_accepted_across_a_failover_is_in_the_database_and_no_request_got_a_500(ha_web):
    base, stop = ha_web["base"], threading.Event()
    accepted: set[str] = set()
    statuses: list[int] = []

    def load() -> None:
        # A client as the API asks: the same key again after a 503 or a broken connection, until a 202.
        while not stop.is_set():
            key = f"load-{uuid.uuid4().hex}"
            for _ in range(120):
                try:
                    response = post(base, key, timeout=35)
                except requests.RequestException:
                    time.sleep(0.25)
                    continue
                statuses.append(response.status_code)
                if response.status_code == 202:
                    accepted.add(response.json()["order_id"])
                    break
                time.sleep(0.25)
            time.sleep(0.05)

    clients = [threading.Thread(target=load) for _ in range(3)]
    for client in clients:
        client.start()
    try:
        time.sleep(3)
        # when: the primary is killed under the load (Patroni promotes the synchronous standby)
        db_ha("kill-primary", timeout=30)
        db_ha("wait-primary", "--timeout", "60", timeout=90)
        time.sleep(5)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=120)
    # then: every 202's order survived, the load went on after the switch, and nothing answered 500
    assert len(accepted) > 20, len(accepted)
    assert orders_in_database(ha_web["direct"], accepted) == accepted
    assert 500 not in statuses and set(statuses) <= {202, 503}, sorted(set(statuses))
