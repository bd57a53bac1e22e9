"""The chaos run on a three-node RabbitMQ cluster (devtools/cluster.py) with the processes on two hosts.

Host 1 runs the web and one of every worker, the relay and the archiver; host 2 a second relay and a second
process, enrichment and finalize worker. Every process has the three nodes' `;`-separated list (each takes it
in its own order). The faults, under the steady load:
- the leader of the `process` queue is killed (-9) and restarted 15 s later;
- another node is cut off from every host and node for PARTITION_SECONDS (> net_ticktime), then healed;
- host 2 vanishes: its links go down, its processes die behind them (nothing they could send gets out),
  and 20 s later it comes back and they start again.
With --db-ha the database is the local Patroni pair behind PgBouncer (devtools/db_ha.py), and the run adds
its faults: the primary is lost (its postmaster and its Patroni killed -9: the standby is promoted by Patroni),
and later a switchover back once the old primary has rejoined as the synchronous standby.
The report adds what a cluster run is about: POST -> completed latency of the orders accepted around each
fault, when each process moved to another broker node, and the database outage each process saw.
"""

import contextlib
import json
import random
import subprocess
import time
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

from chaos.config import Config, log
from devtools import cluster

PARTITION_SECONDS = 35.0
NODE_DOWN_SECONDS = 15.0
HOST_DOWN_SECONDS = 20.0
# kind -> host number
PLACEMENT = {
    "web": 1,
    "worker_process": 1,
    "worker_enrichment": 1,
    "worker_finalize": 1,
    "worker_refund": 1,
    "relay": 1,
    "archiver": 1,
    "worker_process@2": 2,
    "worker_enrichment@2": 2,
    "worker_finalize@2": 2,
    "relay@2": 2,
}
KINDS = list(PLACEMENT)
DB_SWITCHOVER_AFTER_SECONDS = 45.0  # the old primary rejoins (pg_rewind) and catches up well within this
FAULTS = ("node-kill", "node-isolate", "host-vanish", "db-kill", "db-switchover")  # where latency windows start
ENDS = {"node-start": NODE_DOWN_SECONDS, "node-heal": PARTITION_SECONDS, "host-back": HOST_DOWN_SECONDS}
FAULT_SECONDS = {
    "node-kill": NODE_DOWN_SECONDS,
    "node-isolate": PARTITION_SECONDS,
    "host-vanish": HOST_DOWN_SECONDS,
    "db-kill": 20.0,
    "db-switchover": 10.0,
}
# What a process logs when its database connection broke or no primary answered.
DB_ERROR_MARKERS = ("OperationalError", "InterfaceError", "database_unavailable", "outbox_listen_failed")


def base_kind(kind: str) -> str:
    return kind.split("@")[0]


def prepare_vhost(vhost: str) -> None:
    cluster.vhost_fresh(vhost)


def management_api(path: str, *, timeout: float = 5) -> object:
    """GET /api/<path> of the first node that answers (None if none does)."""
    auth = {"Authorization": "Basic " + b64encode(b"guest:guest").decode()}
    for i in range(1, cluster.NODES + 1):
        url = f"http://{cluster.node(i).address}:{cluster.MANAGEMENT_PORT}/api/{path}"
        with (
            contextlib.suppress(Exception),
            urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=timeout) as answer,
        ):
            return json.load(answer)
    return None


def queue_leader(vhost: str, queue: str) -> int | None:
    """The node (1..3) leading `queue`."""
    answer = management_api(f"queues/{vhost}/{queue}")
    leader = answer.get("leader", "") if isinstance(answer, dict) else ""
    return cluster.node_index(leader) if leader else None


def members_online(vhost: str) -> dict:
    """Every quorum queue's members and how many of them are online."""
    answer = management_api(f"queues/{vhost}")
    return {
        q["name"]: {"members": len(q.get("members", [])), "online": len(q.get("online", []))}
        for q in (answer if isinstance(answer, list) else [])
        if q.get("type") == "quorum"
    }


def messages_in_queues(vhost: str) -> int | None:
    """Messages ready or unacked in the stage queues (the DLQ and delayed-retry queues aside)."""
    answer = management_api(f"queues/{vhost}")
    if not isinstance(answer, list):
        return None
    stages = {"process", "enrichment", "finalize", "refund", "webhooks"}
    return sum(int(q.get("messages", 0) or 0) for q in answer if q.get("name") in stages)


def plan(duration: float, rng: random.Random, vhost: str, faults: tuple[str, ...]) -> list[tuple[float, str, int]]:
    """(seconds into the run, action, node or host) of the cluster faults chosen, spread over the run."""
    leader = queue_leader(vhost, "process") or 1
    others = [i for i in range(1, cluster.NODES + 1) if i != leader]
    other = rng.choice(others) if others else leader
    steps = {
        "kill": [("node-kill", leader, 0.0), ("node-start", leader, NODE_DOWN_SECONDS)],
        "isolate": [("node-isolate", other, 0.0), ("node-heal", other, PARTITION_SECONDS)],
        "vanish": [("host-vanish", 2, 0.0), ("host-back", 2, HOST_DOWN_SECONDS)],
        "db": [("db-kill", 0, 0.0), ("db-switchover", 0, DB_SWITCHOVER_AFTER_SECONDS)],
    }
    # The database's first: its switchover back comes DB_SWITCHOVER_AFTER_SECONDS later, still under the load.
    chosen = [f for f in ("db", "kill", "isolate", "vanish") if f in faults]
    starts = {1: [0.2], 2: [0.12, 0.5], 3: [0.12, 0.4, 0.75], 4: [0.08, 0.3, 0.5, 0.65]}.get(len(chosen), [])
    return [
        (start * duration + delay, action, target)
        for fault, start in zip(chosen, starts, strict=True)
        for action, target, delay in steps[fault]
    ]


def run_faults(cfg: Config, sup, rng: random.Random, duration: float, events_log: list, outages: dict) -> None:
    faults = plan(duration, rng, cfg.vhost, cfg.cluster_faults)
    start = time.monotonic()
    began: dict[int, float] = {}  # target -> when its fault actually began (a slow restart delays the next)
    for at, action, target in faults:
        wait = start + at - time.monotonic()
        if action in ENDS:  # a fault lasts its full time, however late it began
            wait = max(wait, began.get(target, 0.0) + ENDS[action] - time.monotonic())
        if wait > 0:
            time.sleep(wait)
        if action not in ENDS:
            began[target] = time.monotonic()
        event = {"t": round(time.monotonic() - start, 2), "wall": time.time(), "event": action, "target": target}
        if action == "node-kill":
            # What the broker held at that moment: on a one-node broker, what its disk's loss would lose.
            event["messages_in_work_queues"] = messages_in_queues(cfg.vhost)
            event["pid"] = cluster.node_kill(target)
            event["queue"] = "process (its leader)"
        elif action == "node-start":
            cluster.node_start(target)
            event["back_after_s"] = round(time.monotonic() - start - at, 1)
        elif action == "node-isolate":
            cluster.node_isolate(target)
        elif action == "node-heal":
            cluster.node_heal(target)
        elif action == "host-vanish":
            cluster.host_set(target, up=False)
            for kind, h in PLACEMENT.items():
                if h == target:
                    sup.kill9(kind)
        elif action == "host-back":
            cluster.host_set(target, up=True)
            for kind, h in PLACEMENT.items():
                if h == target:
                    sup.start(kind)
        elif action in ("db-kill", "db-switchover"):
            database_fault(action, event, outages)
        log(f"cluster fault: {action} {target}")
        events_log.append(event)


def database_fault(action: str, event: dict, outages: dict) -> None:
    """The primary killed -9 (Patroni promotes the standby) or switched over back, with the window in which
    503s are expected recorded in `outages["database_failovers"]`, from the fault until a primary takes writes."""
    from devtools import db_ha

    if action == "db-switchover":
        db_ha.wait_healthy(timeout=120)  # the old primary back as the synchronous standby
        event["wall"] = time.time()
    window = [event["wall"], None]
    outages.setdefault("database_failovers", []).append(window)
    if action == "db-kill":
        event.update(db_ha.kill_primary())
        event["writable_after_s"] = db_ha.wait_primary(timeout=120)  # Patroni promoted the standby
    else:
        event.update(db_ha.switchover())
    window[1] = time.time()


def ensure_cluster_whole() -> None:
    """Whatever happened, every node running and every link up for whoever comes next."""
    for i in range(1, cluster.NODES + 1):
        cluster.node_heal(i)
        with contextlib.suppress(Exception):
            cluster.node_start(i)
    for h in range(1, cluster.hosts_count() + 1):
        cluster.host_set(h, up=True)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def latency_report(client, events: list) -> dict:
    """POST -> completed of the orders that completed without a provider retry (the run's injected provider
    failures retry with seconds of backoff, which says nothing about the broker): all of them, and those
    accepted within [-2 s, +20 s] of each fault's start (the orders in flight through it)."""
    from orders.models import HistoryEvent, OrderHistory

    ids = list(client.accepted_at)
    retried = set(
        OrderHistory.objects.filter(event=HistoryEvent.RETRY, order_id__in=ids).values_list("order_id", flat=True)
    )
    completed = OrderHistory.objects.filter(event=HistoryEvent.COMPLETED, stage="finalize", order_id__in=ids)
    latency = {
        str(oid): at.timestamp() - client.accepted_at[str(oid)]
        for oid, at in completed.values_list("order_id", "created_at")
        if oid not in retried
    }

    def summary(chosen) -> dict:
        values = [latency[i] for i in chosen if i in latency]
        return {"orders": len(values), "p50_s": percentile(values, 0.5), "p99_s": percentile(values, 0.99),
                "max_s": round(max(values), 3) if values else None}  # fmt: skip

    report: dict = {"all": summary(latency), "orders retried by the provider's faults (left out)": len(retried)}
    for event in events:
        if event["event"] in FAULTS:
            t0, lasts = event["wall"], FAULT_SECONDS[event["event"]]
            name = f"{event['event']} {event['target']}"
            at_fault = [i for i, at in client.accepted_at.items() if t0 - 2 <= at <= t0 + 2]
            through = [i for i, at in client.accepted_at.items() if t0 - 2 <= at <= t0 + lasts]
            report[f"{name}: accepted within 2 s of it"] = summary(at_fault)
            report[f"{name}: accepted until it ended ({lasts:g} s)"] = summary(through)
    if client.accepted_at:
        start = min(client.accepted_at.values())
        buckets: dict[int, list[str]] = {}
        for i, at in client.accepted_at.items():
            buckets.setdefault(int((at - start) // 5) * 5, []).append(i)
        report["timeline (accepted in each 5 s of the run)"] = {f"{k}s": summary(v) for k, v in sorted(buckets.items())}
    return report


def log_entries(path: Path, *markers: str) -> Iterator[dict]:
    """The JSON log lines of one process's log that contain any of `markers`, parsed, each with its time as
    `at` (epoch seconds); lines that are not JSON (Celery's banner) are passed over."""
    for line in path.read_text(errors="replace").splitlines():
        if not any(marker in line for marker in markers):
            continue
        with contextlib.suppress(ValueError, KeyError):
            entry = json.loads(line[line.index("{") :])
            entry["at"] = _epoch(entry["timestamp"])
            yield entry


def failovers(workdir: Path, events: list) -> dict:
    """Per process: each move to another broker node (its log's broker_failover lines), seconds after the
    latest fault before it."""
    starts = [(e["wall"], f"{e['event']} {e['target']}") for e in events if e["event"] in FAULTS]
    out: dict = {}
    for path in sorted(workdir.glob("*.log")):
        moves = []
        for entry in log_entries(path, '"broker_failover"'):
            before = [s for s in starts if s[0] <= entry["at"]]
            fault = before[-1] if before else None
            moves.append({"role": entry.get("role"), "to": entry.get("node"),
                          "after_fault_s": round(entry["at"] - fault[0], 1) if fault else None,
                          "fault": fault[1] if fault else None})  # fmt: skip
        if moves:
            out[path.stem] = moves
    return out


def database_outages(workdir: Path, events: list) -> dict:
    """Per process and database fault: seconds from the fault to the last database error the process logged
    before the next database fault (and within a minute); 0: it logged none, its transactions never met it."""
    starts = sorted((e["wall"], e["event"]) for e in events if e["event"] in ("db-kill", "db-switchover"))
    out: dict = {}
    for path in sorted(workdir.glob("*.log")):
        errors = [entry["at"] for entry in log_entries(path, *DB_ERROR_MARKERS)]
        seen = {}
        for n, (at, name) in enumerate(starts):
            until = min(at + 60, starts[n + 1][0] if n + 1 < len(starts) else at + 60)
            within = [t for t in errors if at - 1 <= t < until]
            seen[name] = round(max(within) - at, 1) if within else 0
        out[path.stem] = seen
    return out


def redeliveries(workdir: Path, accepted_ids: list[str]) -> dict:
    """Messages published again (the outbox rows of every batch a relay could not get confirmed) and stage
    messages delivered again and absorbed (history 'duplicate_skipped': the stage was already done)."""
    from orders.models import HistoryEvent, OrderHistory

    republished = sum(
        len(entry.get("outbox_ids", []))
        for path in workdir.glob("relay*.log")
        for entry in log_entries(path, '"outbox_publish_failed"')
    )
    skipped = OrderHistory.objects.filter(event=HistoryEvent.DUPLICATE_SKIPPED, order_id__in=accepted_ids).count()
    return {"outbox rows published again after an unconfirmed batch": republished,
            "stage messages delivered again, absorbed (duplicate_skipped)": skipped}  # fmt: skip


def spread_from_logs(workdir: Path, *, until: float | None = None) -> dict:
    """The node each process's main connection (consumer, publisher, archiver) was on at `until` (default: the
    end), from its own log (broker_connected, broker_failover): the processes' spread over the nodes."""
    spread: dict[str, int] = {}
    for path in sorted(workdir.glob("*.log")):
        node = None
        for entry in log_entries(path, '"broker_connected"', '"broker_failover"'):
            if entry.get("role") != "probe" and (until is None or entry["at"] <= until):
                node = entry.get("node", node)
        if node:
            spread[node] = spread.get(node, 0) + 1
    return dict(sorted(spread.items()))


def worker_reconnects(workdir: Path) -> dict:
    """Per worker, each time its consumer lost the broker and how many seconds until it consumed again (Celery's
    'Connection to broker lost' and 'Connected to' lines); a loss with no reconnect after it is `None`."""
    out: dict = {}
    for path in sorted(workdir.glob("worker_*.log")):
        lost_at, gaps = None, []
        for entry in log_entries(path, "Connection to broker lost", "Connected to amqp"):
            lost = "Connection to broker lost" in entry.get("event", "")
            if lost and lost_at is None:
                lost_at = entry["at"]
            elif not lost and lost_at is not None:
                gaps.append(round(entry["at"] - lost_at, 1))
                lost_at = None
        if lost_at is not None:
            gaps.append(None)
        if gaps:
            out[path.stem] = gaps
    return out


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def check_tools() -> None:
    if not cluster.is_up():
        raise SystemExit("the cluster is not up: `make cluster` (python -m devtools.cluster up) first")
    subprocess.run(["ip", "netns", "list"], check=True, capture_output=True)
