"""Child processes of the end-to-end tests, the benchmark and the chaos run. Each command runs in its own
process group, so a Celery worker and its pool children are signalled, and die, together; its output
goes to a log file."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.2, what: str = "condition"):
    """The predicate's first truthy value; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_ready(procs: list["Proc"], marker: str, *, timeout: float) -> None:
    """Wait until each process has printed `marker`; one that exits first fails the wait with its output."""
    for proc in procs:

        def ready(p=proc):
            if not p.alive():
                raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{p.output()[-3000:]}")
            return marker in p.output()

        wait_until(ready, timeout=timeout, what=f"{proc.name} ready")


@dataclass(eq=False)
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    kind: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def kill9(self) -> None:
        """SIGKILL the whole group (what is left of it), like an OOM kill."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        stop_all([self], grace=timeout)


def procfile_line(name: str, procfile: Path | None = None) -> str:
    """The Procfile's command for `name` as written (a shell line: run it with `bash -c`)."""
    for line in (procfile or ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return command.strip()
    raise KeyError(f"no {name!r} in {procfile or ROOT / 'Procfile'}")


def spawn(
    name: str, argv: list[str], *, env: dict, log: Path, kind: str = "", cwd: Path = ROOT, registry: Path | None = None
) -> Proc:
    """Start `argv` in a new process group; its pid and start time go to `registry`, if given."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        popen = subprocess.Popen(  # noqa: S603  argv: our own processes' command lines, no shell
            argv, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
    if registry is not None:
        import psutil

        try:
            with open(registry, "a") as out:
                out.write(f"{popen.pid} {psutil.Process(popen.pid).create_time()}\n")
        except psutil.Error:
            pass
    return Proc(name, popen, log, kind)


def reap(registry: Path) -> int:
    """Kill the process groups listed in `registry` by an earlier run that was itself SIGKILLed (so it
    could not stop them: workers left consuming the same queues). A pid counts only with the same start
    time, so a recycled pid is never touched. Empties the registry; returns how many groups it killed."""
    import psutil

    killed = 0
    if registry.exists():
        for line in registry.read_text().splitlines():
            try:
                pid, created = int(line.split()[0]), float(line.split()[1])
                if abs(psutil.Process(pid).create_time() - created) > 0.01:
                    continue
                os.killpg(pid, signal.SIGKILL)
                killed += 1
            except (ValueError, IndexError, psutil.Error, ProcessLookupError, PermissionError):
                continue
        if killed:
            time.sleep(1)
    registry.write_text("")
    return killed


def stop_all(procs: list[Proc], grace: float = 20) -> None:
    """SIGTERM every group at once, wait at most `grace` seconds in all (the slowest stop, not the sum),
    then SIGKILL what is left, pool children of a leader that exited included."""
    running = [p for p in procs if p.alive()]
    for proc in running:
        proc.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
    for proc in procs:
        proc.kill9()
