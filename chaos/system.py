"""The system under chaos: a fresh database, vhost and Redis db with the demo catalog, and its processes,
started, killed (-9) and restarted by the Supervisor."""

import subprocess
import sys
import threading
import time

import requests

from chaos.config import ROOT, Config, commands, log, system_env
from devtools.procs import Proc, spawn, stop_all


class Supervisor:
    """Starts, kills (-9) and restarts the system's processes; stops them all at the end."""

    def __init__(self, cfg: Config):
        self.cfg, self.env, self.argv = cfg, system_env(cfg), commands(cfg)
        self.procs: dict[str, Proc] = {}
        self.lock = threading.Lock()

    def start(self, kind: str) -> None:
        argv = self.argv[kind]
        if self.cfg.cluster:  # on its host, with exactly the system's environment
            from chaos.cluster import PLACEMENT
            from devtools import cluster

            argv = cluster.host_command(PLACEMENT[kind], argv, self.env)
        proc = spawn(kind, argv, env=self.env, log=self.cfg.workdir / f"{kind}.log", kind=kind)
        with self.lock:
            self.procs[kind] = proc

    def kill9(self, kind: str) -> None:
        with self.lock:
            proc = self.procs[kind]
        proc.kill9()

    def stop_all(self) -> None:
        stop_all(list(self.procs.values()), grace=30)


def manage(cfg: Config, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=system_env(cfg), capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def prepare(cfg: Config) -> None:
    log(f"fresh database {cfg.db_name}, vhost {cfg.vhost}, redis {cfg.redis_url}")
    server = ["-h", "127.0.0.1", "-U", "postgres"]
    if cfg.db_ha:  # the Patroni pair's current primary (through HAProxy), the pooler's hosts forwarded to it
        from devtools import db_ha

        server += ["-p", str(db_ha.HAPROXY_PORT)]
        if cfg.cluster:
            from devtools import cluster

            for name, port in cluster.DB_HA_FORWARDS.items():
                target = db_ha.PGBOUNCER_PORT if name == "pooled" else db_ha.HAPROXY_PORT
                cluster.forward_start(name, port, f"127.0.0.1:{target}")
    subprocess.run(["dropdb", *server, "--if-exists", "--force", cfg.db_name], check=True)
    subprocess.run(["createdb", *server, cfg.db_name], check=True)
    if cfg.cluster:
        from chaos.cluster import prepare_vhost

        prepare_vhost(cfg.vhost)
    else:
        subprocess.run(["rabbitmqctl", "delete_vhost", cfg.vhost], capture_output=True)
        subprocess.run(["rabbitmqctl", "add_vhost", cfg.vhost], check=True, capture_output=True)
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", cfg.vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
        )
    import redis

    redis.Redis.from_url(cfg.redis_url).flushdb()
    manage(cfg, "migrate", "--noinput", "-v", "0")  # DATABASE_URL: through the pooler, as a setup job would
    manage(cfg, "seed_catalog")
    manage(cfg, "declare_topology")
    manage(cfg, "provider", "--failure-rate", str(cfg.failure_rate))


def wait_web(port: int, timeout: float = 60, address: str = "127.0.0.1") -> None:
    """Until the web server answers /healthz, at most `timeout` s (the load retries whatever it meets)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://{address}:{port}/healthz", timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(0.5)
