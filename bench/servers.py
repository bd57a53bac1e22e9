"""The long-running processes a bench run starts besides the Celery workers: the Procfile's web server
(on a free loopback port), the fast API ceiling, the relay and the archiver. Each is sampled (CPU, RSS)
under its kind once its start-up is over."""

import os
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from bench import procs
from bench.env import PY, free_port
from devtools.procs import wait_until


def venv_argv(argv: list[str]) -> list[str]:
    """argv with its program (gunicorn, uvicorn, celery, python) taken from this virtualenv."""
    argv = list(argv)
    if argv[0] == "python":
        argv[0] = PY
    elif (Path(sys.executable).parent / argv[0]).exists():
        argv[0] = str(Path(sys.executable).parent / argv[0])
    return argv


def settle(proc: procs.Proc, timeout: float, quiet_cpu: float = 0.03, interval: float = 0.3) -> None:
    """Until the process tree used less than `quiet_cpu` CPU seconds in `interval` (at most min(30, timeout) s)."""
    deadline = time.monotonic() + min(30.0, timeout)
    last = None
    while time.monotonic() < deadline:
        try:
            root = psutil.Process(proc.pid)
            tree = [root, *root.children(recursive=True)]
            cpu = sum(sum(p.cpu_times()[:2]) for p in tree)
        except psutil.Error:
            return
        if last is not None and cpu - last < quiet_cpu:
            return
        last = cpu
        time.sleep(interval)


# The bare insert's servers; the fast ceiling is whichever serves it faster in the run (bench/scenarios/api.py).
FAST_CEILING_SERVERS = ("gunicorn", "granian")


def fast_ceiling_argv(port: int, server: str = "gunicorn") -> list[str]:
    """The fast ceiling's command: `workers` = 2 x cores + 1 processes, each serving one request at a time."""
    workers = str(2 * (os.cpu_count() or 1) + 1)
    app = "bench.wsgi_ceiling_fast:application"
    if server == "granian":
        # granian's WSGI interface: HTTP parsed in Rust, one blocking (Python) thread per worker process
        return [
            *("granian", "--interface", "wsgi", app, "--host", "127.0.0.1", "--port", str(port)),
            *("--workers", workers, "--blocking-threads", "1", "--no-ws", "--log-level", "warning"),
        ]
    # --preload: Django is imported once, before the fork (a faster start; each request runs the same)
    return [
        *("gunicorn", app, "--worker-class", "sync", "--workers", workers, "--preload"),
        *("--bind", f"127.0.0.1:{port}", "--log-level", "warning"),
    ]


class Servers:
    """Starts and stops the run's servers; `running` are those finish() stops (web servers, relays, the archiver)."""

    def __init__(self, env: dict, logs: Path, sampler: procs.Sampler, sizes, log):
        self.env, self.logs, self.sampler, self.sizes, self.log = env, logs, sampler, sizes, log
        self.running: list[procs.Proc] = []

    def keep(self, *started: procs.Proc) -> None:
        self.running += started

    def start_server(self, name: str, kind: str, command, env: dict) -> tuple[procs.Proc, int]:
        """A web server on a free loopback port (`command(port)` gives its argv), ready when /healthz answers
        200 and its process tree stopped burning CPU (every worker of a pre-forking server has loaded the
        app). Another port if someone took that one between our probe and the server's bind."""
        for attempt in range(3):
            port = free_port()
            argv = venv_argv(command(port))
            proc = procs.start(
                f"{name}-{port}", kind, argv, {**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port)}, self.logs
            )
            try:
                wait_until(
                    lambda: healthy(proc, port),  # noqa: B023  called within this iteration, by wait_until
                    timeout=self.sizes.start_timeout,
                    what=f"{proc.name} /healthz",
                    interval=0.2,
                )
            except RuntimeError:
                output = proc.output().lower()
                taken = any(m in output for m in ("address already in use", "connection in use", "can't connect to"))
                if not taken or attempt == 2:
                    raise
                procs.stop([proc])
                self.log(f"port {port} was taken before {name} bound it; another one")
                continue
            settle(proc, self.sizes.start_timeout)
            self.sampler.track(kind, proc.pid)
            return proc, port
        raise AssertionError("unreachable")

    def start_web(self, extra_env: dict | None = None, name: str = "web", kind: str = "web") -> tuple[procs.Proc, int]:
        """The Procfile's web command (its ${VAR:-default} read from the run's environment), on loopback."""
        env = {**self.env, **(extra_env or {})}

        def command(port):
            return procs.serve_on(
                procs.procfile_commands({**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port)})["web"],
                "127.0.0.1",
                port,
            )

        return self.start_server(name, kind, command, env)

    def start_fast_ceiling(self, server: str = "gunicorn") -> tuple[procs.Proc, int]:
        """The bare insert served the fast way on `server` (FAST_CEILING_SERVERS): 2 x cores + 1 workers, no
        middleware, a persistent connection per worker (bench/settings_ceiling_fast.py)."""
        env = {**self.env, "DJANGO_SETTINGS_MODULE": "bench.settings_ceiling_fast"}
        name = "ceiling-fast" if server == "gunicorn" else f"ceiling-fast-{server}"
        return self.start_server(
            name, name.replace("-", "_") + "_web", lambda port: fast_ceiling_argv(port, server), env
        )

    def start_loop(
        self, kind: str, extra_env: dict | None = None, name: str | None = None, sample_kind: str | None = None
    ) -> procs.Proc:
        """The Procfile's relay or archiver (a manage.py loop), without its liveness heartbeat file."""
        env = {**self.env, **(extra_env or {})}
        argv = [*venv_argv(procs.procfile_commands(env)[kind]), "--heartbeat-file", ""]
        proc = procs.start(name or kind, sample_kind or kind, argv, env, self.logs)
        settle(proc, self.sizes.start_timeout)  # its start-up (Django, connections) is not the CPU of what it then does
        self.sampler.track(sample_kind or kind, proc.pid)
        return proc

    def start_relay(self, extra_env: dict | None = None, name: str = "relay", kind: str = "relay") -> procs.Proc:
        return self.start_loop("relay", extra_env, name=name, sample_kind=kind)

    def stop(self, servers: list[procs.Proc]) -> None:
        """Web servers and relays this run started (the A/B pair, the fast ceiling): gone for good."""
        servers = [p for p in servers if p is not None]
        procs.stop(servers)
        for p in servers:
            self.sampler.forget(p.kind, [p.pid])
            if p in self.running:
                self.running.remove(p)


def healthy(proc: procs.Proc, port: int) -> bool:
    """/healthz answers 200; a server that exited fails the wait with its output."""
    if not proc.alive():
        raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}: {proc.output()[-3000:]}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except Exception:
        return False
