"""The faults a chaos run injects while the load runs: every process kind killed -9 `kills` times at
random moments and restarted after 0.3-2 s, RabbitMQ restarted (stop_app/start_app) at 35 % of the run,
PostgreSQL restarted at 60 %, one stage queue purged (an operator's mistake: the reconciler must recover
its orders) at 75 %. Each is logged in `events`; the outages' wall-clock windows go to `outages`
(the checker allows 503s around the database's)."""

import os
import random
import subprocess
import time

from chaos.config import KINDS, Config, log
from chaos.system import Supervisor


def pg_cluster() -> str:
    return sorted(os.listdir("/etc/postgresql"))[0]


def plan(cfg: Config, rng: random.Random, duration: float) -> list[tuple[float, str, str | None]]:
    """(seconds into the run, action, process kind) of every fault, in time order."""
    faults = []
    for kind in KINDS:
        for _ in range(cfg.kills):
            faults.append((rng.uniform(0.05, 0.85) * duration, "kill", kind))
    if cfg.restart_rabbitmq:
        faults.append((0.35 * duration, "rabbitmq", None))
    if cfg.restart_postgres:
        faults.append((0.6 * duration, "postgres", None))
    faults.append((0.75 * duration, "purge", rng.choice(["process", "enrichment", "finalize"])))
    faults.sort(key=lambda p: p[0])
    return faults


def run_chaos(
    cfg: Config, sup: Supervisor, rng: random.Random, duration: float, events_log: list, outages: dict
) -> None:
    faults = plan(cfg, rng, duration)
    start = time.monotonic()
    for at, action, kind in faults:
        wait = start + at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if action == "kill":
            kill_and_restart(sup, kind, rng, start, events_log)
        elif action == "rabbitmq":
            restart_rabbitmq(start, events_log, outages)
        elif action == "postgres":
            restart_postgres(start, events_log, outages)
        elif action == "purge":
            purge_queue(cfg, sup, kind, start, events_log)


def kill_and_restart(sup: Supervisor, kind: str, rng: random.Random, start: float, events_log: list) -> None:
    sup.kill9(kind)
    down = rng.uniform(0.3, 2.0)
    events_log.append({"t": round(time.monotonic() - start, 2), "event": f"kill -9 {kind}", "down_s": round(down, 2)})
    log(f"kill -9 {kind}, restart in {down:.1f}s")
    time.sleep(down)
    sup.start(kind)


def restart_rabbitmq(start: float, events_log: list, outages: dict) -> None:
    log("restarting RabbitMQ")
    outages["rabbitmq"] = [time.time(), None]
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    time.sleep(2)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=180)
    outages["rabbitmq"][1] = time.time()
    events_log.append({"t": round(time.monotonic() - start, 2), "event": "restart rabbitmq"})


def restart_postgres(start: float, events_log: list, outages: dict) -> None:
    log("restarting PostgreSQL")
    outages["postgres"] = [time.time(), None]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", pg_cluster(), "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    outages["postgres"][1] = time.time()
    events_log.append({"t": round(time.monotonic() - start, 2), "event": "restart postgres"})


def purge_queue(cfg: Config, sup: Supervisor, queue: str, start: float, events_log: list) -> None:
    """The queue's worker stopped for 3 s so that messages wait in it, then the queue purged, then the
    worker back: those orders' messages are gone, and only the reconciler can move them on."""
    from kombu import Connection

    worker = f"worker_{queue}"
    sup.kill9(worker)
    time.sleep(3)
    try:
        with Connection(f"amqp://guest:guest@127.0.0.1:5672/{cfg.vhost}", connect_timeout=10) as conn:
            purged = conn.default_channel.queue_purge(queue) or 0
    except Exception as exc:  # the broker still coming back from its restart: that fault is skipped, logged
        events_log.append(
            {"t": round(time.monotonic() - start, 2), "event": f"purge {queue} failed", "error": str(exc)}
        )
        sup.start(worker)
        return
    sup.start(worker)
    log(f"purged {queue}: {purged} messages")
    events_log.append({"t": round(time.monotonic() - start, 2), "event": f"purge {queue}", "messages": purged})


def ensure_services_up() -> None:
    """Whatever happened, leave PostgreSQL and RabbitMQ running for whoever comes next."""
    if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode != 0:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", pg_cluster(), "main", "start"], capture_output=True
        )
    if subprocess.run(["rabbitmqctl", "-q", "await_startup"], capture_output=True, timeout=120).returncode != 0:
        subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=180)
