"""devtools/db_ha.py for real, on the tests' own instance (DB_HA_NAME=odt, ports 5460-5470; `make db-ha`'s odb
on 5440-5450 is never touched): a row committed through the pooled URL is on both servers; kill -9 of the
primary's postmaster has Patroni promote the synchronous standby, nothing committed is lost, and the same pooled
URL (even the same client connection) writes again; the old primary rejoins as a synchronous standby
(pg_rewind); a switchover brings the leadership back; `down` leaves no process and no state dir.

The tests run in file order on one instance (module fixture). Every statement is bounded (a commit waiting for a
synchronous standby that is gone would wait forever). Every action runs `python -m devtools.db_ha` in a
subprocess with the odt environment (the module reads DB_HA_* at import). Needs root: skipped otherwise."""

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devtools.db_ha import run_instance, sql
from devtools.procs import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent.parent
NAME, BASE, DATABASE = "odt", 5460, "orders_ha_test"
ENV = {"DB_HA_NAME": NAME, "DB_HA_PORT": str(BASE), "DB_HA_DATABASE": DATABASE}
STATE = ROOT / "var" / f"db-ha-{NAME}"
POOLED = f"postgres://postgres@127.0.0.1:{BASE + 10}/{DATABASE}"
DIRECT = f"postgres://postgres@127.0.0.1:{BASE}/{DATABASE}"
FAILOVER_BOUND = 20.0  # seconds from kill -9 to a write through the pooled URL (measured: 2.8-3.1 s)


def member_url(i: int) -> str:
    return f"postgres://postgres@127.0.0.1:{BASE + i}/{DATABASE}"


def db_ha(*args: str, timeout: float = 240) -> str:
    return run_instance(ENV, *args, timeout=timeout)


def status() -> dict:
    return json.loads(db_ha("status", timeout=30))


def member_index(name: str) -> int:
    return int(name.rsplit("pg", 1)[1])


def rows(url: str, tag: str) -> set[str]:
    return {r[0] for r in sql(url, "SELECT tag FROM ha_probe WHERE tag LIKE %s", params=(f"{tag}%",), timeout=5)}


def insert(url: str, tag: str) -> None:
    sql(url, "INSERT INTO ha_probe (tag) VALUES (%s)", params=(tag,), timeout=5, fetch=False)


def on_member(i: int, tag: str, timeout: float = 10) -> bool:
    """The row is visible on member i itself (a standby applies shortly after it flushed the commit)."""
    return bool(wait_until(lambda: tag in _quiet_rows(member_url(i), tag), timeout=timeout, what=f"{tag} on pg{i}"))


def _quiet_rows(url: str, tag: str) -> set[str]:
    with contextlib.suppress(psycopg.Error):
        return rows(url, tag)
    return set()


def sync_standby(st: dict) -> str | None:
    """The synchronous standby for PostgreSQL (pg_stat_replication) and for Patroni (its /sync key): the only
    member Patroni will promote."""
    return next(
        (
            m["name"]
            for m in st["members"]
            if m["role"] == "sync_standby" and m["sync_state"] == "sync" and m["state"] == "streaming"
        ),
        None,
    )


def our_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and f"{STATE}/" in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def ha() -> Iterator[dict]:
    if os.geteuid() != 0:
        pytest.skip("devtools/db_ha.py needs root (PostgreSQL runs as the postgres user)")
    subprocess.run(["bash", "scripts/db_ha_deps.sh"], cwd=ROOT, check=True, capture_output=True, timeout=600)
    db_ha("down")  # what a killed run of this module left, if anything
    t0 = time.monotonic()
    out = db_ha("up")
    info = {"up_seconds": time.monotonic() - t0, "urls": dict(line.split("=", 1) for line in out.split())}
    sql(DIRECT, "CREATE TABLE IF NOT EXISTS ha_probe (tag text PRIMARY KEY, at timestamptz DEFAULT now())")
    try:
        yield info
    finally:
        db_ha("down")


def test_up_prints_the_urls_and_has_a_primary_with_a_synchronous_standby(ha):
    assert ha["urls"]["DATABASE_URL"] == POOLED
    assert ha["urls"]["DATABASE_DIRECT_URL"] == DIRECT
    st = status()
    assert st["leader"] in (f"{NAME}-pg1", f"{NAME}-pg2")
    assert sync_standby(st) not in (None, st["leader"])
    assert st["pgbouncer"]["up"] and st["haproxy"]["up"] and st["etcd"]["up"]
    assert ha["up_seconds"] < 60, ha["up_seconds"]
    # `up` is idempotent: a second one starts nothing new and answers at once.
    t0 = time.monotonic()
    db_ha("up")
    assert time.monotonic() - t0 < 10
    assert status()["processes"] == st["processes"]


def test_a_row_committed_through_the_pooler_is_on_both_servers(ha):
    tag = f"both-{uuid.uuid4().hex[:8]}"
    insert(POOLED, tag)
    assert on_member(1, tag) and on_member(2, tag)


def test_kill_primary_promotes_the_standby_and_the_pooled_url_writes_again(ha):
    before = status()
    old, standby = before["leader"], sync_standby(before)
    assert standby, before
    tag = f"kill-{uuid.uuid4().hex[:8]}"
    insert(POOLED, f"{tag}-before")  # acknowledged: on the synchronous standby too
    # A client connection opened before the failover, idle in PgBouncer, kept across it.
    kept = psycopg.connect(POOLED, autocommit=True, connect_timeout=3, prepare_threshold=None)
    try:
        killed = json.loads(db_ha("kill-primary", timeout=30))
        t0 = time.monotonic()
        assert killed["killed"] == old

        def write() -> bool:
            with contextlib.suppress(psycopg.Error):
                insert(POOLED, f"{tag}-after")
                return True
            return False

        wait_until(write, timeout=FAILOVER_BOUND, interval=0.1, what="a write through the pooled URL")
        failover = time.monotonic() - t0
        print(f"\nkill -9 of {old}'s postmaster -> pooled write committed after {failover:.2f}s")
        after = status()
        assert after["leader"] == standby, after  # Patroni promoted the synchronous standby
        assert {f"{tag}-before", f"{tag}-after"} <= rows(POOLED, tag)
        # The connection opened before the kill writes too (PgBouncer lends it a server connection to the new
        # primary); its first statement may meet the cut server connection once.
        for attempt in range(3):
            try:
                with kept.cursor() as cur:
                    cur.execute("SET statement_timeout = '5s'")
                    cur.execute("INSERT INTO ha_probe (tag) VALUES (%s)", (f"{tag}-kept",))
                break
            except psycopg.OperationalError:
                if attempt == 2 or kept.closed:
                    raise
                time.sleep(0.5)
        assert f"{tag}-kept" in rows(DIRECT, tag)
    finally:
        kept.close()


def test_the_old_primary_rejoins_as_the_synchronous_standby(ha):
    def rejoined() -> dict | None:
        st = status()
        return st if sync_standby(st) and sync_standby(st) != st["leader"] else None

    st = wait_until(rejoined, timeout=60, interval=0.5, what="the old primary streaming as the sync standby")
    standby = member_index(sync_standby(st) or "")
    leader = next(m for m in st["members"] if m["name"] == st["leader"])
    assert all(m["timeline"] == leader["timeline"] for m in st["members"]), st  # rewound onto the new timeline
    tag = f"rejoin-{uuid.uuid4().hex[:8]}"
    insert(POOLED, tag)
    assert on_member(standby, tag)
    # Patroni decides whether pg_rewind is needed (a killed primary whose last WAL the standby already had
    # needs none); either way the old primary follows the new timeline without a new base backup.
    rewind = [line for line in _patroni_log(standby) if "rewind" in line.lower()]
    print(f"\npg{standby} rejoined; Patroni's rewind lines: {rewind[-3:]}")
    assert not any("basebackup" in line for line in _patroni_log(standby)[-200:] if "bootstrap" not in line)


def _patroni_log(i: int) -> list[str]:
    with contextlib.suppress(OSError):
        return (STATE / f"patroni{i}.log").read_text(errors="replace").splitlines()
    return []


def test_switchover_back_and_writes_go_on(ha):
    before = status()
    result = json.loads(db_ha("switchover", timeout=120))
    assert result["from"] == before["leader"] and result["to"] != before["leader"]
    after = status()
    assert after["leader"] == result["to"]
    assert sync_standby(after) == before["leader"]
    tag = f"switch-{uuid.uuid4().hex[:8]}"
    insert(POOLED, tag)
    assert on_member(1, tag) and on_member(2, tag)
    assert len(rows(POOLED, "kill-")) == 3  # nothing written before lost through the failover and switchover


def test_down_leaves_no_process_and_no_state_dir(ha):
    assert our_processes()
    db_ha("down")
    assert not our_processes()
    assert not STATE.exists()
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    for port in (BASE, BASE + 1, BASE + 2, BASE + 3, BASE + 4, BASE + 5, BASE + 6, BASE + 7, BASE + 10):
        assert f"127.0.0.1:{port} " not in listening
    assert shutil.which("etcd")  # (the packages stay installed)
