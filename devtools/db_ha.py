# ruff: noqa: S603  (runs etcd, Patroni, HAProxy, PgBouncer and PostgreSQL's tools from fixed paths)
"""A local PostgreSQL HA on this machine: a primary and a synchronous standby managed by Patroni, beside the
system PostgreSQL (127.0.0.1:5432 and its cluster `main` stay untouched).

    etcd (1 member)  <-  Patroni pg1 (REST)  ->  PostgreSQL 15 pg1 (primary or standby)
                     <-  Patroni pg2 (REST)  ->  PostgreSQL 15 pg2
    HAProxy   127.0.0.1:BASE     -> whichever member answers 200 on Patroni's `GET /primary`   (DATABASE_DIRECT_URL)
    PgBouncer 127.0.0.1:BASE+10  -> HAProxy, transaction pooling                             (DATABASE_URL)

    python -m devtools.db_ha up                    starts what is missing, waits for a primary, a synchronous
                                                   standby and the pooler; creates the database; prints the URLs
    python -m devtools.db_ha down                  stops and removes only what `up` made (processes, state dir)
    python -m devtools.db_ha status | urls
    python -m devtools.db_ha kill-primary          kill -9 of the primary's postmaster; returns at once
    python -m devtools.db_ha wait-primary [--timeout 30]   until a leader accepts writes (prints the seconds)
    python -m devtools.db_ha switchover            Patroni's switchover to the other member, waits until done
    python -m devtools.db_ha restart-member N      Patroni restarts member N's PostgreSQL (N: 1, 2 or NAME-pg1)
    python -m devtools.db_ha pause | resume        Patroni's maintenance mode (a killed primary stays gone)

Patroni (PyPI's, pinned in requirements-dev.txt) does every initdb, pg_basebackup, promotion and pg_rewind:
nothing here decides a failover. Its DCS is a single etcd member: enough on one machine, where etcd, both
Patroni daemons and both servers share one fate anyway; production runs three or five etcd members on separate
hosts (docs/postgres-ha.md). Debian's packages (etcd-server, haproxy, pgbouncer, postgresql-15) come from
scripts/db_ha_deps.sh; this module starts its own copies on its own ports and never their system services.

Everything derives from DB_HA_NAME (default `odb`: state dir var/db-ha-NAME/, Patroni's scope, process
matching) and DB_HA_PORT (default 5440), so the tests run a second instance beside `make db-ha`'s:
    BASE haproxy (primary)   BASE+1, BASE+2 PostgreSQL pg1, pg2   BASE+3, BASE+4 Patroni REST pg1, pg2
    BASE+5 haproxy stats     BASE+6, BASE+7 etcd client, peer     BASE+10 PgBouncer
DB_HA_DATABASE (default `orders`) is the database `up` creates. PostgreSQL runs as the `postgres` user (it
refuses root), so do Patroni (its child) and PgBouncer; etcd and HAProxy run as root on loopback only.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = os.environ.get("DB_HA_NAME", "odb")
BASE = int(os.environ.get("DB_HA_PORT", "5440"))
DATABASE = os.environ.get("DB_HA_DATABASE", "orders")
STATE = Path(os.environ.get("DB_HA_STATE_DIR", ROOT / "var" / f"db-ha-{NAME}"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")
MEMBERS = (1, 2)
HOST = "127.0.0.1"  # loopback only, everywhere

HAPROXY_PORT = BASE
HAPROXY_STATS_PORT = BASE + 5
ETCD_CLIENT_PORT, ETCD_PEER_PORT = BASE + 6, BASE + 7
PGBOUNCER_PORT = BASE + 10

# Patroni's timing (its bootstrap DCS settings, explained in docs/postgres-ha.md). The leader key lives `ttl`
# seconds unless renewed; each member's loop runs every `loop_wait` seconds; `retry_timeout` bounds the DCS and
# PostgreSQL operations a loop retries before the leader demotes itself (Patroni wants
# loop_wait + 2 * retry_timeout <= ttl). Patroni's defaults (30 / 10 / 10) are sized for a DCS across a network.
# Here: a dead postmaster is noticed within loop_wait (2 s) and failed over at once (primary_start_timeout 0);
# only a primary whose Patroni died too waits for its leader key to expire: ttl, and Patroni 4 refuses a ttl
# below 20 s (it logs "ttl=10 can't be smaller than 20, adjusting").
TTL, LOOP_WAIT, RETRY_TIMEOUT = 20, 1, 5


def pg_port(i: int) -> int:
    return BASE + i


def rest_port(i: int) -> int:
    return BASE + 2 + i


def member_name(i: int) -> str:
    return f"{NAME}-pg{i}"


def member_dir(i: int) -> Path:
    return STATE / f"pg{i}"


def data_dir(i: int) -> Path:
    return member_dir(i) / "data"


def member_index(ref: str) -> int:
    """1 from '1', 'pg1' or 'odb-pg1'."""
    digits = "".join(ch for ch in ref.rsplit("pg", 1)[-1] if ch.isdigit())
    if not digits or int(digits) not in MEMBERS:
        raise SystemExit(f"no member {ref!r}: 1 or 2")
    return int(digits)


# --- URLs -------------------------------------------------------------------------------------------------


def pooled_url(db: str = DATABASE) -> str:
    """PgBouncer (transaction pooling) -> HAProxy -> the current primary: what web and worker processes use."""
    return f"postgres://postgres@{HOST}:{PGBOUNCER_PORT}/{db}"


def direct_url(db: str = DATABASE) -> str:
    """HAProxy -> the current primary, a session of its own: LISTEN, migrations, `CREATE DATABASE`."""
    return f"postgres://postgres@{HOST}:{HAPROXY_PORT}/{db}"


def member_url(i: int, db: str = DATABASE) -> str:
    return f"postgres://postgres@{HOST}:{pg_port(i)}/{db}"


def url_lines() -> list[str]:
    # PgBouncer 1.18 (Debian 12) cannot carry prepared statements in transaction mode (1.21+ can): the
    # settings' DB_PREPARE_THRESHOLD must be off for processes that go through it.
    return [f"DATABASE_URL={pooled_url()}", f"DATABASE_DIRECT_URL={direct_url()}", "DB_PREPARE_THRESHOLD=off"]


# --- processes ----------------------------------------------------------------------------------------------


def sh(*argv: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def _ours(pid: int) -> bool:
    """The process exists and its command line names our state dir (a recycled pid is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return f"{STATE}/" in cmdline


def _pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().split()[0])
        if _ours(pid):
            return pid
    return None


def _pidfile(component: str) -> Path:
    return STATE / f"{component}.pid"


def _spawn(component: str, argv: list[str], env: dict | None = None) -> int:
    log = open(STATE / f"{component}.log", "ab")  # noqa: SIM115  (the child keeps it)
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        env=env if env is not None else {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
    )  # fmt: skip
    _pidfile(component).write_text(str(proc.pid))
    return proc.pid


def _as_postgres(argv: list[str]) -> list[str]:
    """argv as the `postgres` user; setpriv execs (no forking su/runuser in between), so the pid is argv's."""
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]


def _chown_postgres(path: Path) -> None:
    shutil.chown(path, "postgres", "postgres")


def _port_taken(port: int) -> bool:
    return bool(sh("ss", "-ltnH", f"sport = :{port}", check=False).stdout.strip())


def _http_json(port: int, path: str, timeout: float = 1.0):
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as r:  # loopback only
        return json.loads(r.read() or b"null")


# --- etcd ---------------------------------------------------------------------------------------------------


def etcd_start() -> None:
    if _pid(_pidfile("etcd")):
        return
    _spawn(
        "etcd",
        ["etcd", "--name", f"{NAME}-etcd", "--data-dir", str(STATE / "etcd"),
         "--listen-client-urls", f"http://{HOST}:{ETCD_CLIENT_PORT}",
         "--advertise-client-urls", f"http://{HOST}:{ETCD_CLIENT_PORT}",
         "--listen-peer-urls", f"http://{HOST}:{ETCD_PEER_PORT}",
         "--initial-advertise-peer-urls", f"http://{HOST}:{ETCD_PEER_PORT}",
         "--initial-cluster", f"{NAME}-etcd=http://{HOST}:{ETCD_PEER_PORT}",
         "--initial-cluster-token", f"{NAME}-db-ha", "--initial-cluster-state", "new"],
    )  # fmt: skip
    _wait(lambda: _http_json(ETCD_CLIENT_PORT, "/health").get("health") == "true", 30, "etcd healthy")


# --- Patroni ------------------------------------------------------------------------------------------------


def _patroni_python() -> list[str]:
    """A Python the `postgres` user can run with Patroni importable. The venv's interpreter usually lives under
    /root (pyenv), which `postgres` cannot enter; Debian's python3 of the same version then runs the venv's
    packages through PYTHONPATH (their compiled parts, psycopg's and PyYAML's, are built for that version)."""
    # The probe does what Patroni does to start PostgreSQL: a multiprocessing "spawn" child re-executes
    # sys.executable as `postgres` (seen here: setpriv could exec the venv's python, its spawn child could not,
    # and Patroni waited forever for a postmaster that was never started).
    probe = (
        "import multiprocessing, patroni\n"
        "p = multiprocessing.get_context('spawn').Process(target=print)\n"
        "p.start(); p.join(); raise SystemExit(p.exitcode)"
    )
    venv_python = ROOT / ".venv" / "bin" / "python"
    site = next((ROOT / ".venv" / "lib").glob("python3.*/site-packages"))
    version = site.parent.name.removeprefix("python")
    candidates = [[str(venv_python)]]
    candidates += [["env", f"PYTHONPATH={site}", p] for p in (f"/usr/bin/python{version}", "/usr/bin/python3")]
    for python in candidates:
        if sh(*_as_postgres([*python, "-c", probe]), check=False, timeout=30, cwd="/").returncode == 0:
            return python
    raise SystemExit(f"no Python the postgres user can run Patroni with (the venv's is {version})")


def patroni_config(i: int) -> dict:
    d = member_dir(i)
    return {
        "scope": NAME,  # the cluster's name in etcd
        "namespace": "/db-ha/",
        "name": member_name(i),
        "log": {"level": "INFO", "format": "%(asctime)s %(levelname)s: %(message)s"},
        "restapi": {"listen": f"{HOST}:{rest_port(i)}", "connect_address": f"{HOST}:{rest_port(i)}"},
        "etcd3": {"hosts": [f"{HOST}:{ETCD_CLIENT_PORT}"]},  # etcd's v3 API (its v2 API is off in etcd 3.4)
        # No /dev/watchdog here; production enables it so a hung Patroni cannot leave a primary running.
        "watchdog": {"mode": "off"},
        "bootstrap": {
            # Written to etcd when the cluster is made; later changes go through `patronictl edit-config`.
            "dcs": {
                "ttl": TTL,
                "loop_wait": LOOP_WAIT,
                "retry_timeout": RETRY_TIMEOUT,
                # A crashed primary is failed over at once (Patroni's default waits 300 s for it to restart in
                # place). With synchronous replication promoting the sync standby loses nothing, so there is
                # nothing to gain from waiting.
                "primary_start_timeout": 0,
                # With etcd unreachable (one member here: it died once in testing) Patroni would demote the
                # primary after retry_timeout and the database would go read-only. In failsafe mode the primary
                # keeps running as long as it reaches every member's Patroni REST API (none can promote itself
                # without etcd), so the loss of the DCS alone is no outage.
                "failsafe_mode": True,
                # Never promote a standby more than 1 MiB of WAL behind (in synchronous mode the sync standby
                # is never behind on anything acknowledged; this guards the asynchronous case).
                "maximum_lag_on_failover": 1048576,
                # Patroni names one standby in synchronous_standby_names and promotes only that standby (or
                # a member it knows was synchronous), so no commit the primary acknowledged is lost on
                # failover. Not strict: when the standby is gone, Patroni empties synchronous_standby_names
                # and the primary keeps accepting writes (single copy until a standby catches up again);
                # strict mode would instead stop every write until a standby returns: on two nodes that
                # turns any standby failure into an outage. docs/postgres-ha.md weighs the two.
                "synchronous_mode": True,
                "synchronous_mode_strict": False,
                "postgresql": {
                    "use_pg_rewind": True,  # an old primary rejoins as a standby by rewinding, not re-cloning
                    "use_slots": True,  # a replication slot per member: the primary keeps WAL a standby needs
                    "parameters": {
                        "synchronous_commit": "on",  # a commit returns once the sync standby flushed its WAL
                        "wal_log_hints": "on",  # pg_rewind needs it (or data checksums)
                        "wal_level": "replica",
                        "hot_standby": "on",
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "wal_keep_size": "256MB",
                        "max_connections": 200,
                        "timezone": "UTC",  # Django never has to SET it (a session SET leaks through PgBouncer)
                        "shared_buffers": "128MB",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, {"auth": "trust"}],
        },
        "postgresql": {
            "listen": f"{HOST}:{pg_port(i)}",
            "connect_address": f"{HOST}:{pg_port(i)}",
            "data_dir": str(data_dir(i)),
            "bin_dir": str(PG_BIN),
            "pgpass": str(d / "pgpass"),
            # Local only: trust on loopback (production: scram-sha-256 and TLS, docs/postgres-ha.md).
            "pg_hba": [
                "local all all trust",
                f"host all all {HOST}/32 trust",
                f"host replication all {HOST}/32 trust",
            ],
            "authentication": {"superuser": {"username": "postgres"}, "replication": {"username": "postgres"}},
            "parameters": {"unix_socket_directories": str(d)},
        },
    }


def patroni_config_path(i: int) -> Path:
    return member_dir(i) / "patroni.yml"


def patroni_start(i: int, python: list[str]) -> None:
    if _pid(_pidfile(f"patroni{i}")):
        return
    d = member_dir(i)
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    # JSON is YAML: no dumper needed.
    patroni_config_path(i).write_text(json.dumps(patroni_config(i), indent=2))
    for path in (d, patroni_config_path(i)):
        _chown_postgres(path)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(d)}
    _spawn(f"patroni{i}", _as_postgres([*python, "-m", "patroni", str(patroni_config_path(i))]), env)


def patronictl(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    return sh(
        str(ROOT / ".venv" / "bin" / "patronictl"), "-c", str(patroni_config_path(1)), *args,
        timeout=timeout, check=check,
    )  # fmt: skip


def cluster() -> dict:
    """Patroni's own view (`GET /cluster` on whichever member answers): members, roles, lag, the leader."""
    for i in MEMBERS:
        with contextlib.suppress(Exception):
            return _http_json(rest_port(i), "/cluster")
    return {"members": []}


def leader() -> dict | None:
    for m in cluster().get("members", []):
        if m.get("role") == "leader" and m.get("state") == "running":
            return m
    return None


def postmaster_pid(i: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int((data_dir(i) / "postmaster.pid").read_text().splitlines()[0])
        if _ours(pid):
            return pid
    return None


# --- HAProxy and PgBouncer ----------------------------------------------------------------------------------


def haproxy_start() -> None:
    if _pid(_pidfile("haproxy")):
        return
    servers = "\n".join(f"    server {member_name(i)} {HOST}:{pg_port(i)} check port {rest_port(i)}" for i in MEMBERS)
    cfg = STATE / "haproxy.cfg"
    cfg.write_text(
        f"""# devtools/db_ha.py: one address that always reaches the current primary (Patroni's documented way).
global
    maxconn 2000

defaults
    mode tcp
    log global
    retries 3
    timeout connect 2s
    # A connection that arrives while no member is primary (mid-failover) waits this long, then is closed and
    # PgBouncer retries (server_login_retry): queued connections are not handed to a server that comes up
    # meanwhile, so a long queue timeout only delays them (2 s of the failover with 2 s here).
    timeout queue 300ms
    # Long: PgBouncer keeps its server connections open (server_idle_timeout); sessions are cut on failover
    # by on-marked-down below, not by an idle timeout.
    timeout client 30m
    timeout server 30m
    timeout check 2s

listen stats
    mode http
    bind {HOST}:{HAPROXY_STATS_PORT}
    stats enable
    stats uri /

listen primary
    bind {HOST}:{HAPROXY_PORT}
    option tcpka
    # Patroni's REST API answers 200 on /primary only on the member that holds the leader key and runs as
    # primary; every other member answers 503. A server up is checked every second (every 0.5 s while it
    # changes state), down after 2 failures; a server down every 0.5 s, up after 1 success.
    option httpchk GET /primary
    http-check expect status 200
    # Sessions to a member that stopped being primary are closed at once (no client keeps writing to a
    # demoted server, or waits on a dead one).
    default-server inter 1s fastinter 500ms downinter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
    # The killed primary's Patroni answers 200 until its next loop (~1-2 s): a connection refused by the
    # server itself marks it down at once, and the retry goes to the other member (redispatch) instead of
    # waiting on the dead one (a client's connect_timeout, 2 s at least in libpq, each time).
    default-server observe layer4 error-limit 1 on-error mark-down
    option redispatch 1
{servers}
"""
    )
    sh("haproxy", "-c", "-q", "-f", str(cfg))
    _spawn("haproxy", ["haproxy", "-db", "-f", str(cfg)])


def pgbouncer_start() -> None:
    if _pid(_pidfile("pgbouncer")):
        return
    d = STATE / "pgbouncer"
    d.mkdir(parents=True, exist_ok=True)
    # auth_type trust still requires the user in the auth file (password unused).
    (d / "userlist.txt").write_text('"postgres" ""\n')
    ini = d / "pgbouncer.ini"
    ini.write_text(
        f""";; devtools/db_ha.py: transaction pooling in front of HAProxy (the current primary).
[databases]
; every database name goes to the same-named database on the current primary
* = host={HOST} port={HAPROXY_PORT}

[pgbouncer]
listen_addr = {HOST}
listen_port = {PGBOUNCER_PORT}
unix_socket_dir = {d}
pidfile = {d}/pgbouncer.pid
logfile = {d}/pgbouncer.log
; local only: trust, with the user listed in auth_file (production: scram-sha-256 and auth_query)
auth_type = trust
auth_file = {d}/userlist.txt
admin_users = postgres
stats_users = postgres
; a server connection is lent for one transaction: many client connections share a few server ones
pool_mode = transaction
; server connections per (database, user) pair: PostgreSQL sees at most this many from the pooler
default_pool_size = 20
; extra server connections when a client waited reserve_pool_timeout seconds
reserve_pool_size = 5
reserve_pool_timeout = 2
; client connections PgBouncer accepts (every web thread and worker process of every host)
max_client_conn = 2000
; empty: in transaction mode no session state is left to reset (server_reset_query applies to session
; pooling only, unless server_reset_query_always)
server_reset_query =
; a server connection idle for server_check_delay seconds is checked with this before it is lent again
server_check_query = select 1
server_check_delay = 5
; after a failed connect/login (no primary yet during a failover) retry after 0.5 s, not the default 15 s
server_login_retry = 0.5
server_connect_timeout = 3
; a client waiting longer than this for a server connection gets an error: below gunicorn's 30 s timeout, so
; while no primary exists the web answers 503 (the error is an OperationalError) instead of its worker being killed
query_wait_timeout = 10
; psycopg and JDBC may send these startup parameters, which PgBouncer does not track: accept and drop them
ignore_startup_parameters = extra_float_digits,options
server_tls_sslmode = disable
"""
    )
    for path in (d, d / "userlist.txt", ini):
        _chown_postgres(path)
    _spawn("pgbouncer", _as_postgres(["/usr/sbin/pgbouncer", str(ini)]))


# --- SQL with a bound on everything -------------------------------------------------------------------------


def sql(url: str, query: str, *, timeout: float = 5.0, params: tuple = (), fetch: bool = True):
    """One statement in autocommit, bounded: connect_timeout, and a cancel after `timeout` seconds (a commit
    waiting for a synchronous standby that is not there would wait forever)."""
    import psycopg

    with psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True, prepare_threshold=None) as conn:
        timer = threading.Timer(timeout, conn.cancel_safe)
        timer.start()
        try:
            cur = conn.execute(query, params)  # our own literal SQL
            return cur.fetchall() if fetch and cur.description else None
        finally:
            timer.cancel()


def write_probe(url: str, timeout: float = 2.0) -> bool:
    """A transaction that commits a WAL record (txid_current assigns an xid): succeeds only on a primary that
    accepts writes, and waits for the synchronous standby as any commit does."""
    with contextlib.suppress(Exception):
        sql(url, "SELECT txid_current()", timeout=timeout)
        return True
    return False


def sync_standbys() -> list[dict]:
    with contextlib.suppress(Exception):
        rows = sql(
            direct_url("postgres"),
            "SELECT application_name, state, sync_state, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint FROM pg_stat_replication",
            timeout=2,
        )
        return [{"name": r[0], "state": r[1], "sync_state": r[2], "replay_lag_bytes": r[3]} for r in rows or []]
    return []


def _wait(check, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s (logs in {STATE})")


def wait_primary(timeout: float = 30.0) -> float:
    """Seconds until Patroni has a leader and a write commits through the direct URL."""
    t0 = time.monotonic()
    _wait(lambda: leader() and write_probe(direct_url("postgres")), timeout, "a writable primary", 0.1)
    return time.monotonic() - t0


def sync_standby() -> str | None:
    """The member that is the synchronous standby both for PostgreSQL (pg_stat_replication.sync_state on the
    primary) and for Patroni (its /sync key in etcd, shown as role sync_standby). Patroni promotes only the
    member its key names: between setting synchronous_standby_names and writing that key (a loop or two) a
    crashed primary has no failover candidate, and Patroni restarts it in place instead."""
    recorded = {m["name"] for m in cluster().get("members", []) if m.get("role") == "sync_standby"}
    streaming = {s["name"] for s in sync_standbys() if s["sync_state"] == "sync" and s["state"] == "streaming"}
    return next(iter(recorded & streaming), None)


def wait_healthy(timeout: float = 120.0) -> None:
    """A primary, a synchronous standby streaming to it and recorded by Patroni, and the pooled URL answering."""
    wait_primary(timeout)
    _wait(sync_standby, timeout, "a synchronous standby")
    _wait(lambda: sql(pooled_url("postgres"), "SELECT 1", timeout=2) == [(1,)], timeout, "PgBouncer answering")


# --- actions ------------------------------------------------------------------------------------------------


def _components_running() -> dict:
    return {c: _pid(_pidfile(c)) for c in ("etcd", "patroni1", "patroni2", "haproxy", "pgbouncer")}


def up(timeout: float = 180.0) -> None:
    for tool in ("etcd", "haproxy", "/usr/sbin/pgbouncer", str(PG_BIN / "postgres"), "setpriv"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: bash scripts/db_ha_deps.sh installs it")
    STATE.mkdir(parents=True, exist_ok=True)
    STATE.chmod(0o755)  # the postgres user reaches its own directories inside
    running = _components_running()
    ports = {
        "etcd": [ETCD_CLIENT_PORT, ETCD_PEER_PORT],
        "patroni1": [pg_port(1), rest_port(1)],
        "patroni2": [pg_port(2), rest_port(2)],
        "haproxy": [HAPROXY_PORT, HAPROXY_STATS_PORT],
        "pgbouncer": [PGBOUNCER_PORT],
    }
    taken = [p for c, ps in ports.items() if not running[c] for p in ps if _port_taken(p)]
    if taken:
        raise SystemExit(f"ports taken by something else: {taken} (DB_HA_PORT picks another base)")
    etcd_start()
    python = _patroni_python()
    for i in MEMBERS:
        patroni_start(i, python)
    haproxy_start()
    pgbouncer_start()
    wait_healthy(timeout)
    if not sql(direct_url("postgres"), "SELECT 1 FROM pg_database WHERE datname = %s", params=(DATABASE,)):
        sql(direct_url("postgres"), f'CREATE DATABASE "{DATABASE}"', timeout=30, fetch=False)
    for line in url_lines():
        print(line)


def _kill(pid: int | None, sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _ours(pid):
        time.sleep(0.1)
    if _ours(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _our_processes() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _ours(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def down() -> None:
    running = _components_running()
    _kill(running["pgbouncer"])
    _kill(running["haproxy"])
    # Patroni stops its PostgreSQL (fast shutdown) before it exits; both at once so neither takes over.
    for i in MEMBERS:
        if pid := running[f"patroni{i}"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    for i in MEMBERS:
        _kill(running[f"patroni{i}"], signal.SIGTERM, wait=20)
        _kill(postmaster_pid(i), signal.SIGQUIT, wait=5)
    _kill(running["etcd"])
    for pid in _our_processes():  # anything left that names our state dir (pg_rewind, a postgres child)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if STATE.exists():
        shutil.rmtree(STATE, ignore_errors=True)


def status() -> dict:
    running = _components_running()
    view = cluster()
    replication = sync_standbys()  # pg_stat_replication on the primary, through the direct URL
    sync_state = {r["name"]: r["sync_state"] for r in replication}
    members = []
    for m in view.get("members", []):
        members.append(
            {
                "name": m.get("name"),
                "role": m.get("role"),  # leader, sync_standby, replica
                "state": m.get("state"),  # running, streaming, stopped, ...
                "port": m.get("port"),
                "timeline": m.get("timeline"),
                "lag": m.get("lag"),  # bytes behind the leader (Patroni's figure)
                "sync_state": sync_state.get(m.get("name")),  # sync / async on a standby streaming
            }
        )
    lead = next((m["name"] for m in members if m["role"] == "leader"), None)
    return {
        "name": NAME,
        "state_dir": str(STATE),
        "leader": lead,
        "members": members,
        "replication": replication if lead else [],
        "processes": {c: {"pid": pid, "up": bool(pid)} for c, pid in running.items()},
        "haproxy": {"up": bool(running["haproxy"]) and _port_taken(HAPROXY_PORT), "port": HAPROXY_PORT},
        "pgbouncer": {"up": bool(running["pgbouncer"]) and _port_taken(PGBOUNCER_PORT), "port": PGBOUNCER_PORT},
        "etcd": {"up": bool(running["etcd"]), "client_port": ETCD_CLIENT_PORT},
        "urls": dict(line.split("=", 1) for line in url_lines()),
    }


def kill_primary() -> dict:
    """kill -9 of the current primary's postmaster (its pid from postmaster.pid); returns at once."""
    lead = leader()
    if not lead:
        raise SystemExit("no leader to kill")
    i = member_index(lead["name"])
    pid = postmaster_pid(i)
    if not pid:
        raise SystemExit(f"{lead['name']}: no postmaster.pid")
    os.kill(pid, signal.SIGKILL)
    return {"killed": lead["name"], "pid": pid, "at": time.time()}


def switchover(timeout: float = 60.0) -> dict:
    t0 = time.monotonic()
    # In synchronous mode Patroni switches over only to the recorded synchronous standby.
    wait_healthy(timeout)
    lead, target = leader(), sync_standby()
    if not lead or not target:
        raise SystemExit("no leader or no synchronous standby: nothing to switch over to")
    out = patronictl("switchover", NAME, "--leader", lead["name"], "--candidate", target, "--force", timeout=timeout)
    if "failed" in out.stdout.lower():
        raise SystemExit(out.stdout)
    _wait(lambda: (leader() or {}).get("name") == target, timeout, f"{target} leading")
    wait_healthy(timeout)
    return {"from": lead["name"], "to": target, "seconds": round(time.monotonic() - t0, 2)}


def pause(paused: bool = True) -> None:
    """Patroni's maintenance mode (`patronictl pause`): it neither restarts, promotes nor demotes anything, so a
    killed primary stays gone (no primary at all) until `resume`."""
    patronictl("pause" if paused else "resume", NAME, "--wait", timeout=60)


def restart_member(i: int, timeout: float = 60.0) -> None:
    patronictl("restart", NAME, member_name(i), "--force", timeout=timeout)
    wait_healthy(timeout)


def run_instance(instance: dict, *args: str, timeout: float = 240) -> str:
    """`python -m devtools.db_ha ARGS` for another instance (`instance`: its DB_HA_* variables; the module reads
    them at import, so another instance runs in a process of its own): its output; a failure raises."""
    result = subprocess.run(
        [sys.executable, "-m", "devtools.db_ha", *args], cwd=ROOT, env={**os.environ, **instance},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"db_ha {' '.join(args)}: {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "action",
        choices=[
            "up",
            "down",
            "status",
            "urls",
            "kill-primary",
            "wait-primary",
            "switchover",
            "restart-member",
            "pause",
            "resume",
        ],
    )
    parser.add_argument("target", nargs="?", help="restart-member: 1, 2 or NAME-pgN")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("the local HA needs root (it runs PostgreSQL and PgBouncer as the postgres user)")
    action = args.action
    if action == "up":
        up()
    elif action == "down":
        down()
    elif action == "status":
        print(json.dumps(status(), indent=2))
    elif action == "urls":
        print("\n".join(url_lines()))
    elif action == "kill-primary":
        print(json.dumps(kill_primary()))
    elif action == "wait-primary":
        print(f"{wait_primary(args.timeout):.2f}")
    elif action == "switchover":
        print(json.dumps(switchover(max(args.timeout, 60))))
    elif action in ("pause", "resume"):
        pause(action == "pause")
    else:
        restart_member(member_index(args.target or ""), max(args.timeout, 60))
    return 0


if __name__ == "__main__":
    sys.exit(main())
