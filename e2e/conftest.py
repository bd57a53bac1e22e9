"""End-to-end fixtures: real Celery workers (subprocesses, the Procfile's commands) on the test
vhost, against pytest-django's test database, and real HTTP through the live server."""

import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from conftest import subprocess_env
from devtools.procs import Proc, reap, spawn, stop_all, wait_ready, wait_until

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CELERY = str(Path(sys.executable).parent / "celery")
REGISTRY: Path | None = None  # pids of the process groups this session started (see _reap_leftover_processes)


@dataclass
class Processes:
    """Starts project processes with the test environment and stops them all at teardown."""

    env_overrides: dict = field(default_factory=dict)
    started: list = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], *, ready: str | None = None, env: dict | None = None, timeout: float = 60
    ) -> Proc:
        log = ARTIFACTS / f"{name}-{uuid.uuid4().hex[:6]}.log"
        proc = spawn(
            name, argv, env=subprocess_env(**{**self.env_overrides, **(env or {})}), log=log, registry=REGISTRY
        )
        self.started.append(proc)
        if ready:
            wait_ready([proc], ready, timeout=timeout)
        return proc

    def worker(
        self, queue: str, *, pool: str = "prefork", concurrency: int = 2, env: dict | None = None, wait: bool = True
    ) -> Proc:
        argv = [
            CELERY,
            "-A",
            "orders_project",
            "worker",
            "-Q",
            queue,
            "-n",
            f"{queue}-{uuid.uuid4().hex[:6]}@%h",
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-l",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ]
        return self.start(f"worker-{queue}", argv, ready=" ready." if wait else None, env=env)

    def pipeline(self, *, env: dict | None = None, relay: bool = True, refund: bool = False) -> dict[str, Proc]:
        """The three workers as the run command starts them (enrichment on threads), the refund worker
        when asked and, unless the test starts its own, the relay that publishes accepted orders
        (OUTBOX_PUBLISH_INLINE off)."""
        procs = {
            "process": self.worker("process", wait=False, env=env),
            "enrichment": self.worker("enrichment", pool="threads", concurrency=8, wait=False, env=env),
            "finalize": self.worker("finalize", wait=False, env=env),
        }
        if refund:
            procs["refund"] = self.worker("refund", pool="threads", concurrency=4, wait=False, env=env)
        if relay:
            procs["relay"] = self.relay(env=env, wait=False)
        wait_ready([p for name, p in procs.items() if name != "relay"], " ready.", timeout=60)
        if relay:
            wait_ready([procs["relay"]], "loop_started", timeout=60)
        return procs

    def relay(self, *, env: dict | None = None, wait: bool = True) -> Proc:
        """The relay, which publishes accepted orders (the default publisher)."""
        return self.manage(
            "relay", "relay_outbox", "--heartbeat-file", "", ready="loop_started" if wait else None, env=env
        )

    def manage(self, name: str, *args: str, ready: str | None = None, env: dict | None = None) -> Proc:
        return self.start(name, [sys.executable, "manage.py", *args], ready=ready, env=env)

    def stop_all(self) -> None:
        stop_all(self.started, grace=20)


@pytest.fixture(scope="session", autouse=True)
def _reap_leftover_processes(rabbitmq_vhost):
    """Workers of an earlier run that was killed (no teardown) would consume this vhost's queues with
    whatever code they loaded: kill them first."""
    global REGISTRY
    REGISTRY = Path(f"/tmp/{rabbitmq_vhost}.e2e.pids")
    reap(REGISTRY)


@pytest.fixture
def processes(transactional_db, clean_queues):
    from enrichment import controls

    controls.controls_reset()
    procs = Processes()
    yield procs
    procs.stop_all()
    controls.controls_reset()


@pytest.fixture
def http(live_server):
    """A real HTTP client against the live server, with the bearer token."""
    from django.conf import settings

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {settings.SECRET_TOKEN}"
    session.base_url = live_server.url

    def post_order(items, customer_id="e2e", source="web", key=None):
        headers = {"X-Idempotency-Key": key} if key else {}
        body = {"customer_id": customer_id, "source": source, "items": [{"sku": s, "qty": q} for s, q in items]}
        response = session.post(f"{live_server.url}/orders", json=body, headers=headers, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()["order_id"]

    # An operator's session: these tests check what on-call sees (exception text, who redrove). Made now,
    # not on first use: inside a Playwright block the thread runs an event loop and the ORM refuses.
    from django.test import Client

    from orders.tests.factories import staff_user_create

    browser = Client()
    browser.force_login(staff_user_create("e2e-oncall"))
    staff = {"sessionid": browser.cookies["sessionid"].value}

    def get_order(order_id, *, as_client: bool = False):
        """The order as staff see it; `as_client=True`: as the client that created it (its bearer key)."""
        if as_client:
            response = session.get(f"{live_server.url}/orders/{order_id}", timeout=30)
        else:
            response = requests.get(f"{live_server.url}/orders/{order_id}", cookies=staff, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    session.post_order = post_order
    session.get_order = get_order
    return session


def wait_terminal(http, order_id: str, timeout: float = 60) -> dict:
    def done():
        order = http.get_order(order_id)
        return order if order["status"] in ("completed", "failed", "cancelled", "refunded") else None

    return wait_until(done, timeout=timeout, interval=0.3, what=f"order {order_id} to end")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UVICORN = str(Path(sys.executable).parent / "uvicorn")
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def wait_healthy(proc: Proc, port: int, *, timeout: float = 60) -> None:
    """Until GET /healthz on the port answers 200; a process that exits first fails the wait with its output."""

    def healthy():
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.output()[-3000:]}")
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_until(healthy, timeout=timeout, interval=0.2, what=f"{proc.name} to answer /healthz on :{port}")


def start_web(processes: Processes, port: int, *, env: dict | None = None) -> Proc:
    """The Procfile's web command (gunicorn sync workers, orders_project/gunicorn_conf.py) on a given
    port; ready once /healthz answers. Two workers unless `env` says otherwise (the default, 2 x cores
    + 1, only costs start-up CPU here)."""
    argv = [
        GUNICORN,
        "orders_project.wsgi:application",
        "--config",
        "python:orders_project.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    proc = processes.start("web", argv, env={"WEB_CONCURRENCY": "2", **(env or {})})
    wait_healthy(proc, port)
    return proc


def start_live(processes: Processes, port: int, *, env: dict | None = None) -> Proc:
    """The Procfile's live command (uvicorn: the ASGI app, WebSocket /ws/orders, HTTP too) on a given
    port; ready once /healthz answers. One process (uvicorn would take WEB_CONCURRENCY as --workers)."""
    argv = [
        UVICORN,
        "orders_project.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--timeout-graceful-shutdown",
        "20",
    ]
    proc = processes.start("live", argv, env={"WEB_CONCURRENCY": "1", **(env or {})})
    wait_healthy(proc, port)
    return proc


def start_proxy(processes: Processes, port: int, *, web_port: int, live_port: int, env: dict | None = None) -> Proc:
    """The Procfile's proxy (nginx, scripts/proxy.sh) on a given port in front of web and live on theirs; its
    files in a directory of its own. Ready once /healthz answers through it (web must be up)."""
    from bench import procs as bench_procs

    argv = bench_procs.procfile_commands({})["proxy"]
    proxy_env = {
        "PROXY_PORT": str(port),
        "PROXY_WEB_UPSTREAM": f"127.0.0.1:{web_port}",
        "PROXY_LIVE_UPSTREAM": f"127.0.0.1:{live_port}",
        "PROXY_DIR": str(ARTIFACTS / f"nginx-{port}"),
        **(env or {}),
    }
    proc = processes.start("proxy", argv, env=proxy_env)
    wait_healthy(proc, port)
    return proc
