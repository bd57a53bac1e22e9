"""Processes the bench starts (each in its own process group, killed at the end whatever happens),
the per-name run lock and registry of those processes, and a psutil sampler of CPU seconds and RSS
per process kind (a kind = one or more process trees)."""

import atexit
import fcntl
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from devtools.procs import Proc, reap, spawn, stop_all

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"  # bench.run --procfile PATH measures another one (e.g. another worker topology)
_STARTED: list[Proc] = []
_REGISTRY: Path | None = None  # "<pid> <create_time>" of every process group this run started
_LOCK = None  # the open lock file: held until this process exits, however it exits


def lock_run(name: str, *, wait: float, log=print) -> None:
    """One run per database/vhost name at a time, machine-wide (an flock on /tmp/<name>.bench.lock,
    released by the kernel when this process dies, even by SIGKILL). Two runs of the same name would
    truncate each other's tables and purge each other's queues: the second one waits (bounded)."""
    global _LOCK
    handle = open(f"/tmp/{name}.bench.lock", "a+")  # noqa: SIM115  held open (the flock) for the process's lifetime
    deadline = time.monotonic() + wait
    announced = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"another bench run of {name!r} held /tmp/{name}.bench.lock for {wait:.0f} s"
                ) from None
            if not announced:
                log(f"another bench run of {name!r} is running; waiting for it (at most {wait:.0f} s)")
                announced = True
            time.sleep(1)
    _LOCK = handle


def reap_leftovers(name: str, log=print) -> int:
    """Kill what an earlier run of this name started and left behind (its driver was SIGKILLed, so
    neither atexit nor the SIGTERM handler ran): see devtools.procs.reap. Call with the run lock held."""
    global _REGISTRY
    _REGISTRY = Path(f"/tmp/{name}.bench.pids")
    killed = reap(_REGISTRY)
    if killed:
        log(f"killed {killed} process group(s) left behind by an earlier run of {name!r}")
    return killed


def procfile_commands(env: dict, procfile: Path | None = None) -> dict[str, list[str]]:
    """The Procfile's commands with ${VAR:-default} expanded from `env`, bound to loopback: every
    0.0.0.0 in an argument (`--host 0.0.0.0`, `--bind 0.0.0.0:8000`, `--bind=0.0.0.0:8000`) becomes
    127.0.0.1."""
    commands = {}
    for line in (procfile or PROCFILE).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
            continue
        name, command = line.split(":", 1)

        def expand(match):
            var, default = match.group(1), match.group(3) or ""
            return env.get(var) or default

        command = re.sub(r"\$\{(\w+)(:-([^}]*))?\}", expand, command)
        # S104 is a false positive here: this rewrites the Procfile's 0.0.0.0 to loopback, it does not bind to it
        commands[name.strip()] = [arg.replace("0.0.0.0", "127.0.0.1") for arg in shlex.split(command)]  # noqa: S104
    return commands


def option(argv: list[str], *names: str) -> str | None:
    """The value of the first of `names` in argv (`-Q x`, `--queues x`, `--queues=x`), None if absent."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.partition("=")[2]
            if not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):  # -Qprocess, -c4
                return arg[len(name) :]
    return None


def set_option(argv: list[str], names: tuple[str, ...], value: str) -> list[str]:
    """argv with the option `names` (every spelling of it) set to `value`: replaced where it is, else
    appended as `names[0] value`."""
    out, skip, found = [], False, False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        matched = False
        for name in names:
            if arg == name and i + 1 < len(argv):
                out += [arg, value]
                skip = matched = True
            elif name.startswith("--") and arg.startswith(name + "="):
                out.append(f"{name}={value}")
                matched = True
            elif (
                not name.startswith("--") and arg.startswith(name) and len(arg) > len(name) and not arg.startswith("--")
            ):
                out += [name, value]
                matched = True
            if matched:
                break
        found = found or matched
        if not matched:
            out.append(arg)
    return out if found else [*out, names[0], value]


QUEUES_OPT = ("-Q", "--queues")
POOL_OPT = ("-P", "--pool")
CONCURRENCY_OPT = ("-c", "--concurrency")
THREAD_POOLS = ("threads", "gevent", "eventlet")


@dataclass
class WorkerSpec:
    """One Celery worker of the Procfile (every entry whose name starts with `worker`)."""

    name: str
    argv: list[str]
    queues: list[str]
    pool: str
    concurrency: int

    def with_queues(self, queues: list[str]) -> "WorkerSpec":
        return WorkerSpec(
            self.name, set_option(self.argv, QUEUES_OPT, ",".join(queues)), list(queues), self.pool, self.concurrency
        )

    def with_concurrency(self, concurrency: int) -> "WorkerSpec":
        return WorkerSpec(
            self.name,
            set_option(self.argv, CONCURRENCY_OPT, str(concurrency)),
            list(self.queues),
            self.pool,
            concurrency,
        )


def worker_spec(name: str, argv: list[str]) -> WorkerSpec:
    import os

    queues = [q for q in (option(argv, *QUEUES_OPT) or "celery").split(",") if q]
    pool = option(argv, *POOL_OPT) or "prefork"
    concurrency = option(argv, *CONCURRENCY_OPT)
    return WorkerSpec(name, list(argv), queues, pool, int(concurrency) if concurrency else (os.cpu_count() or 1))


def procfile_workers(env: dict, procfile: Path | None = None) -> list[WorkerSpec]:
    """Every Celery worker of the Procfile, in order: its argv (expanded from `env`), -Q list, pool, concurrency."""
    return [
        worker_spec(name, argv) for name, argv in procfile_commands(env, procfile).items() if name.startswith("worker")
    ]


def serve_on(argv: list[str], host: str, port: int) -> list[str]:
    """A web server's command listening on host:port: gunicorn's `--bind`/`-b`, uvicorn's `--host`/`--port`
    (whichever the command uses; `--bind` is added if it names neither)."""
    argv = list(argv)
    if option(argv, "--bind", "-b") is not None:
        return set_option(argv, ("--bind", "-b"), f"{host}:{port}")
    if option(argv, "--port") is not None or option(argv, "--host") is not None:
        return set_option(set_option(argv, ("--host",), host), ("--port",), str(port))
    return [*argv, "--bind", f"{host}:{port}"]


def start(name: str, kind: str, argv: list[str], env: dict, log_dir: Path) -> Proc:
    proc = spawn(name, argv, env=env, log=log_dir / f"{name}.log", kind=kind, registry=_REGISTRY)
    _STARTED.append(proc)
    return proc


def stop(procs, grace: float = 15) -> None:
    """SIGTERM every group at once, SIGKILL what is still there after `grace` seconds."""
    procs = [p for p in procs if p is not None]
    stop_all(procs, grace=grace)
    for p in procs:
        if p in _STARTED:
            _STARTED.remove(p)


def stop_started(grace: float = 10) -> None:
    """Everything this run started and did not stop yet."""
    stop(list(_STARTED), grace=grace)


atexit.register(stop_started)


def infra_pids() -> dict[str, list[int]]:
    """The machine's PostgreSQL, RabbitMQ and Redis servers (shared with anyone else on the machine)."""
    found: dict[str, list[int]] = {"postgres (shared)": [], "rabbitmq (shared)": [], "redis (shared)": []}
    for p in psutil.process_iter(["name", "ppid"]):
        name = p.info["name"] or ""
        if name == "postgres" and p.info["ppid"] == 1:
            found["postgres (shared)"].append(p.pid)
        elif name == "beam.smp":
            found["rabbitmq (shared)"].append(p.pid)
        elif name == "redis-server":
            found["redis (shared)"].append(p.pid)
    return found


@dataclass
class Sampler:
    """Samples every `interval` s: per kind, CPU seconds used since `begin()` and the peak RSS."""

    interval: float = 0.25
    roots: dict[str, list[int]] = field(default_factory=dict)
    _base: dict[int, float] = field(default_factory=dict)
    _last: dict[int, tuple[str, float]] = field(default_factory=dict)
    _peak: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def track(self, kind: str, pid: int) -> None:
        with self._lock:
            self.roots.setdefault(kind, []).append(pid)

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        with self._lock:
            roots = {k: list(v) for k, v in self.roots.items()}
        rss: dict[str, float] = {}
        for kind, pids in roots.items():
            for pid in pids:
                for p in self._tree(pid):
                    try:
                        t = p.cpu_times()
                        cpu = t.user + t.system
                        mem = p.memory_info().rss
                    except psutil.Error:
                        continue
                    with self._lock:
                        self._base.setdefault(p.pid, 0.0 if p.pid not in self._last else self._last[p.pid][1])
                        self._last[p.pid] = (kind, cpu)
                    rss[kind] = rss.get(kind, 0.0) + mem
        with self._lock:
            for kind, value in rss.items():
                self._peak[kind] = max(self._peak.get(kind, 0.0), value)

    def begin(self) -> None:
        """Start a window: CPU counts from now; processes born later count from zero."""
        self.sample()
        with self._lock:
            self._base = {pid: cpu for pid, (_, cpu) in self._last.items()}
            self._peak = {}
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def end(self) -> dict[str, dict]:
        self.sample()
        with self._lock:
            cpu: dict[str, float] = {}
            for pid, (kind, value) in self._last.items():
                cpu[kind] = cpu.get(kind, 0.0) + max(0.0, value - self._base.get(pid, 0.0))
            result = {
                kind: {
                    "cpu_s": round(cpu.get(kind, 0.0), 3),
                    "peak_rss_mb": round(self._peak.get(kind, 0.0) / 2**20, 1),
                }
                for kind in self.roots
            }
        return result

    def forget(self, kind: str, pids: list[int] | None = None) -> None:
        """Stop sampling `kind` (only the trees of `pids`, if given; the kind goes when it has none left)."""
        with self._lock:
            if pids is None:
                self.roots.pop(kind, None)
                return
            left = [pid for pid in self.roots.get(kind, []) if pid not in pids]
            if left:
                self.roots[kind] = left
            else:
                self.roots.pop(kind, None)

    def close(self) -> None:
        self._stop.set()
