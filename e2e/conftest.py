"""End-to-end fixtures: real Celery workers (subprocesses, the Procfile's commands) on the test
vhost, against pytest-django's test database, and real HTTP through the live server."""
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import requests

from conftest import subprocess_env

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CELERY = str(Path(sys.executable).parent / "celery")


def wait_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        """SIGKILL the whole process group (the worker and its pool children), like an OOM kill."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
            except ProcessLookupError:
                pass


@dataclass
class Processes:
    """Starts project processes with the test environment and stops them all at teardown."""

    env_overrides: dict = field(default_factory=dict)
    started: list = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, ready: str | None = None, env: dict | None = None, timeout: float = 60) -> Proc:
        ARTIFACTS.mkdir(exist_ok=True)
        log = ARTIFACTS / f"{name}-{uuid.uuid4().hex[:6]}.log"
        handle = open(log, "wb")
        popen = subprocess.Popen(
            argv,
            env=subprocess_env(**{**self.env_overrides, **(env or {})}),
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
            start_new_session=True,
        )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        if ready:
            def is_ready():
                if popen.poll() is not None:
                    raise AssertionError(f"{name} exited with {popen.returncode}:\n{proc.output()[-3000:]}")
                return ready in proc.output()

            wait_until(is_ready, timeout=timeout, what=f"{name} to be ready")
        return proc

    def worker(self, queue: str, *, pool: str = "prefork", concurrency: int = 2, env: dict | None = None, wait: bool = True) -> Proc:
        argv = [
            CELERY, "-A", "orders_project", "worker", "-Q", queue, "-n", f"{queue}-{uuid.uuid4().hex[:6]}@%h",
            "-P", pool, "-c", str(concurrency), "-l", "INFO", "--without-gossip", "--without-mingle",
        ]
        return self.start(f"worker-{queue}", argv, ready=" ready." if wait else None, env=env)

    def pipeline(self, *, env: dict | None = None) -> dict[str, Proc]:
        """The three workers as the run command starts them (enrichment on threads)."""
        procs = {
            "process": self.worker("process", wait=False, env=env),
            "enrichment": self.worker("enrichment", pool="threads", concurrency=8, wait=False, env=env),
            "finalize": self.worker("finalize", wait=False, env=env),
        }
        for proc in procs.values():
            wait_until(lambda p=proc: " ready." in p.output() or p.popen.poll() is not None, timeout=60, what=f"{proc.name} ready")
            assert proc.popen.poll() is None, proc.output()[-3000:]
        return procs

    def manage(self, name: str, *args: str, ready: str | None = None, env: dict | None = None) -> Proc:
        return self.start(name, [sys.executable, "manage.py", *args], ready=ready, env=env)

    def stop_all(self) -> None:
        """SIGTERM everything at once, then wait: teardown takes the slowest stop, not the sum."""
        running = [p for p in self.started if p.popen.poll() is None]
        for proc in running:
            try:
                os.killpg(proc.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 20
        for proc in running:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill9()


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

    def get_order(order_id):
        response = session.get(f"{live_server.url}/orders/{order_id}", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    session.post_order = post_order
    session.get_order = get_order
    return session


def wait_terminal(http, order_id: str, timeout: float = 60) -> dict:
    def done():
        order = http.get_order(order_id)
        return order if order["status"] in ("completed", "failed") else None

    return wait_until(done, timeout=timeout, interval=0.3, what=f"order {order_id} to end")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UVICORN = str(Path(sys.executable).parent / "uvicorn")


def start_web(processes: Processes, port: int, *, env: dict | None = None) -> Proc:
    """The Procfile's web command on a given port."""
    argv = [UVICORN, "orders_project.asgi:application", "--host", "127.0.0.1", "--port", str(port), "--timeout-graceful-shutdown", "20"]
    return processes.start("web", argv, ready="Application startup complete", env=env)
