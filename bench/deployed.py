"""The system as deployed around the pipeline: the Procfile's `flower`, `live` and `proxy`, and one browser on
the live page (Debian's chromium, headless, as e2e/test_live_page.py drives it). The drain and sustained phases
run with them unless `--leave-out` names some (recorded in the results as `left_out`); the load then goes
through the proxy, as a client's does. The browser is a client: its CPU is sampled apart (kind suffix
CLIENT) and is not part of the system's CPU per order."""

import os
import signal
import subprocess
from pathlib import Path

from bench import procs
from bench.browser import BROWSER_READY
from bench.env import CELERY, PY, ROOT, free_port
from bench.scenarios.sustained import CLIENT
from bench.servers import settle, venv_argv
from devtools.procs import procfile_line, wait_until

EXTRAS = ("flower", "live", "proxy")  # `live`: the live server and the browser on its page
FLOWER_AUTH = "bench:bench-flower-Tq7Wm2"  # the bench's own Flower login (loopback only)


class Deployed:
    """Starts and stops the extras; `port` is where the load goes (the proxy's, or web's without it)."""

    def __init__(self, ctx, web_port: int):
        self.ctx, self.web_port = ctx, web_port
        self.left_out = tuple(ctx.args.leave_out)
        self.flower = self.live = self.proxy = self.browser = None
        self.flower_task_events = False
        self.live_port = self.proxy_port = self.flower_port = 0
        self.port = web_port

    def wanted(self, extra: str) -> bool:
        return extra not in self.left_out

    def start(self) -> int:
        self.ctx.results["left_out"] = list(self.left_out)
        if self.wanted("live"):
            self.live_start()
        if self.wanted("proxy"):
            self.proxy_start()
        if self.wanted("flower"):
            self.flower_start()
        if self.wanted("live"):
            self.browser_start()
        shown = ", ".join(x for x in EXTRAS if self.wanted(x)) or "none"
        self.ctx.log(f"as deployed: {shown} (left out: {', '.join(self.left_out) or 'nothing'}); load on :{self.port}")
        return self.port

    def stop(self) -> None:
        self.browser_stop()
        self.flower_stop()
        for proc in (self.proxy, self.live):
            if proc is not None:
                procs.stop([proc])
                self.ctx.sampler.forget(proc.kind, [proc.pid])
        self.proxy = self.live = None
        self.port = self.web_port

    # ------------------------------------------------------------------ live and proxy
    def live_start(self) -> None:
        self.live_port = free_port()
        argv = procs.serve_on(procs.procfile_commands(self.ctx.env)["live"], "127.0.0.1", self.live_port)
        self.live = procs.start("live", "live", venv_argv(argv), self.ctx.env, self.ctx.logs)
        wait_until(lambda: _listening(self.live_port), timeout=self.ctx.sizes.start_timeout, what="live listening")
        settle(self.live, self.ctx.sizes.start_timeout)
        self.ctx.sampler.track("live", self.live.pid)

    def proxy_start(self) -> None:
        self.proxy_port = free_port()
        env = {
            **self.ctx.env,
            "PROXY_PORT": str(self.proxy_port),
            "PROXY_WEB_UPSTREAM": f"127.0.0.1:{self.web_port}",
            "PROXY_LIVE_UPSTREAM": f"127.0.0.1:{self.live_port or free_port()}",
            "PROXY_DIR": str(self.ctx.logs / f"nginx-{self.proxy_port}"),
        }
        self.proxy = procs.start("proxy", "proxy", ["bash", str(ROOT / "scripts" / "proxy.sh")], env, self.ctx.logs)
        wait_until(lambda: _listening(self.proxy_port), timeout=30, what="proxy listening")
        self.ctx.sampler.track("proxy", self.proxy.pid)
        self.port = self.proxy_port

    # ------------------------------------------------------------------ flower
    def flower_start(self, *, task_events: bool = False) -> None:
        """The Procfile's line as it is (flowerconfig.py: task events off); `task_events`: with
        FLOWER_ENABLE_EVENTS=true, as an operator turns them on (Flower then enables them on every worker
        every 5 s, and they stay on until disabled)."""
        self.flower_port = free_port()
        self.flower_task_events = task_events
        env = {
            **self.ctx.env,
            "FLOWER_ENABLE_EVENTS": "true" if task_events else "false",
            "PATH": f"{Path(PY).parent}:{os.environ.get('PATH', '')}",
            "FLOWER_BASIC_AUTH": FLOWER_AUTH,
            "FLOWER_PORT": str(self.flower_port),
            "FLOWER_ADDRESS": "127.0.0.1",
            "RABBITMQ_MANAGEMENT_URL": "http://guest:guest@127.0.0.1:15672/api/",
        }
        argv = ["bash", "-c", procfile_line("flower", procs.PROCFILE)]
        self.flower = procs.start("flower", "flower", argv, env, self.ctx.logs)
        wait_until(lambda: _listening(self.flower_port), timeout=self.ctx.sizes.start_timeout, what="flower listening")
        settle(self.flower, self.ctx.sizes.start_timeout)
        self.ctx.sampler.track("flower", self.flower.pid)

    def flower_stop(self) -> None:
        """Flower gone, and the task events it turned on turned off again (the workers' default)."""
        if self.flower is None:
            return
        procs.stop([self.flower])
        self.ctx.sampler.forget("flower", [self.flower.pid])
        self.flower = None
        if not self.flower_task_events:
            return  # with its default settings Flower never turned them on: nothing to turn off
        subprocess.run(
            [CELERY, "-A", "orders_project", "control", "disable_events", "--timeout", "2"],
            cwd=ROOT,
            env=self.ctx.env,
            capture_output=True,
            timeout=60,
            check=False,
        )

    # ------------------------------------------------------------------ the browser
    def browser_start(self) -> None:
        """One headless chromium on the live page (through the proxy when it runs, as an operator opens it)."""
        base = f"http://127.0.0.1:{self.port}"
        # At the lowest priority: an operator's browser runs on their machine, not beside the system; here it
        # shares the two cores, so it takes only what the system leaves (its CPU is reported apart).
        argv = ["nice", "-n", "19", PY, "-m", "bench.browser", base]
        self.browser = procs.start("browser", f"browser{CLIENT}", argv, self.ctx.env, self.ctx.logs)
        self.ctx.results["browser_cpu_cap"] = browser_cpu_cap(self.browser.pid, self.ctx.args.browser_cpu)
        wait_until(lambda: _ready(self.browser), timeout=self.ctx.sizes.start_timeout, what="browser on the live page")
        self.ctx.sampler.track(f"browser{CLIENT}", self.browser.pid)

    def browser_stop(self) -> None:
        if self.browser is None:
            return
        os.kill(self.browser.pid, signal.SIGTERM)  # the driver, not its group: it closes chromium itself
        try:
            self.browser.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            procs.stop([self.browser])
        self.ctx.sampler.forget(self.browser.kind, [self.browser.pid])
        said = [line for line in self.browser.output().splitlines() if line.startswith("{")]
        self.ctx.log(f"browser: {said[-1] if said else 'no report'}")
        self.browser = None


CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
CGROUP = "orders-bench-browser"


def browser_cpu_cap(pid: int, cores: float) -> str:
    """Cap the browser (and the chromium it starts, which inherits the group) at `cores` of CPU with a cgroup's CFS
    quota, so that on this shared machine it takes at most that from the system it watches (on a real deployment
    it runs on the operator's machine). What was done, for the results: the cap, or why there is none."""
    if cores <= 0:
        return "none (--browser-cpu 0)"
    period = 100_000
    quota = str(max(1_000, int(cores * period)))
    for root, limit, marker in (
        (Path("/sys/fs/cgroup"), "cpu.max", "cgroup.controllers"),  # cgroup v2
        (CGROUP_V1_CPU, "cpu.cfs_quota_us", "cpu.cfs_quota_us"),  # v1's cpu controller
    ):
        if not (root / marker).exists():
            continue
        group = root / CGROUP
        try:
            group.mkdir(exist_ok=True)
            if limit == "cpu.max":
                (group / "cpu.max").write_text(f"{quota} {period}")
            else:
                (group / "cpu.cfs_period_us").write_text(str(period))
                (group / "cpu.cfs_quota_us").write_text(quota)
            (group / "cgroup.procs").write_text(str(pid))
            return f"{cores:g} cores ({group})"
        except OSError as exc:
            return f"none ({group}: {exc})"
    return "none (no cgroup cpu controller)"


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ready(proc) -> bool:
    if not proc.alive():
        raise RuntimeError(f"{proc.name} exited: {proc.output()[-2000:]}")
    return BROWSER_READY in proc.output()
