"""What replication costs: the bench's drain (the bare chain's and the pipeline's, `bench.run --only pipeline`)
on a one-node broker and on the three-node cluster, alternated in the same run (one, three, one, three), with
the CPU per 1,000 orders of every process kind, the broker's nodes included.

    python -m bench.replication [--orders 3000] [--pairs 2]

Both brokers are local clusters of devtools/cluster.py, the same RabbitMQ with the same configuration in
network namespaces: `make cluster`'s three nodes and a one-node cluster beside them (CLUSTER_NAME=os1), both
left running. Quorum queues on three nodes write every message on three nodes; on one node, on one. Writes
bench/results/replication-<stamp>.json and prints a table; bench/README.md keeps the history.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "orders_bench_repl"
BROKERS = {
    "one node": {"CLUSTER_NAME": "os1", "CLUSTER_NET": "79", "CLUSTER_NODES": "1"},
    "three nodes": {"CLUSTER_NAME": "opc", "CLUSTER_NET": "77", "CLUSTER_NODES": "3"},
}


def cluster(broker: str, *args: str) -> str:
    env = {**os.environ, **BROKERS[broker]}
    result = subprocess.run(
        [sys.executable, "-m", "devtools.cluster", *args], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def drain_once(broker: str, orders: int) -> dict:
    cluster(broker, "vhost", NAME)
    urls = cluster(broker, "urls", "--vhost", NAME)
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--only", "pipeline", "--name", NAME,
         "--size", f"drain_orders={orders}", "--env", f"CELERY_BROKER_URL={urls}"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"bench failed on {broker}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    phases = json.loads(result.stdout[result.stdout.index("{") :])["phases"]
    pipeline, chain = phases["pipeline_drain"], phases["ceiling_chain_drain"]
    cpu = {kind: v["cpu_s"] for kind, v in pipeline["cost"].items()}
    return {
        "pipeline_orders_s": pipeline["rate"],
        "chain_s": chain["rate"],
        "ratio_to_chain": round(pipeline["rate"] / chain["rate"], 3),
        "completed": pipeline["completed"],
        "cpu_ms_per_order": {k: round(1000 * v / max(pipeline["completed"], 1), 2) for k, v in cpu.items()},
        "cpu_ms_per_order_total": round(1000 * sum(cpu.values()) / max(pipeline["completed"], 1), 2),
    }


def node_pids(broker: str) -> list[int]:
    out = cluster(broker, "status")
    return [int(line.split("pid ")[1]) for line in out.splitlines() if " pid " in line and "pid -" not in line]


def broker_only(broker: str, messages: int) -> dict:
    """The broker alone: `messages` 1 KiB persistent messages published to a fresh quorum queue with pipelined
    confirms (windows of 500), then consumed (prefetch 500, acked in hundreds); the rates, and the CPU of this
    broker's own nodes."""
    import psutil
    from kombu import Connection, Exchange, Queue

    cluster(broker, "vhost", NAME)
    url = cluster(broker, "urls", "--vhost", NAME)
    nodes = [psutil.Process(pid) for pid in node_pids(broker)]

    def cpu() -> float:
        return sum(p.cpu_times().user + p.cpu_times().system for p in nodes)

    body = b"x" * 1024
    with Connection(url) as conn:
        channel = conn.channel()
        queue = Queue("replication", Exchange(""), "replication", queue_arguments={"x-queue-type": "quorum"})
        queue(channel).declare()
        channel.confirm_select()
        confirmed = [0]

        def on_ack(tag: int, multiple: bool) -> None:
            confirmed[0] = max(confirmed[0], tag) if multiple else confirmed[0] + 1

        channel.events["basic_ack"].add(on_ack)
        cpu0, t0 = cpu(), time.monotonic()
        published = 0
        for start in range(0, messages, 500):
            for _ in range(min(500, messages - start)):
                message = channel.prepare_message(body, properties={"delivery_mode": 2})
                channel.basic_publish(message, exchange="", routing_key="replication")
                published += 1
            while confirmed[0] < published:
                conn.drain_events(timeout=30)
        publish_s, publish_cpu = time.monotonic() - t0, cpu() - cpu0
        cpu1, t1 = cpu(), time.monotonic()
        got = [0]

        def on_message(message) -> None:
            got[0] += 1
            if got[0] % 100 == 0 or got[0] == messages:
                channel.basic_ack(message.delivery_tag, multiple=True)

        channel.basic_qos(0, 500, False)
        channel.basic_consume("replication", callback=on_message)
        while got[0] < messages:
            conn.drain_events(timeout=30)
        consume_s, consume_cpu = time.monotonic() - t1, cpu() - cpu1
    return {
        "published_per_s": round(messages / publish_s),
        "consumed_per_s": round(messages / consume_s),
        "broker_cpu_ms_per_1000_published": round(1000 * publish_cpu * 1000 / messages, 1),
        "broker_cpu_ms_per_1000_consumed": round(1000 * consume_cpu * 1000 / messages, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--messages", type=int, default=20000, help="the broker-only measurement's messages")
    parser.add_argument("--broker-only", action="store_true", help="the broker alone, not the drains")
    args = parser.parse_args(argv)
    for broker in BROKERS:
        cluster(broker, "up", "--hosts", "0")
    if args.broker_only:
        for n in range(args.pairs):
            for broker in BROKERS:
                print(json.dumps({"pair": n + 1, "broker": broker, **broker_only(broker, args.messages)}), flush=True)
        return 0
    runs = []
    for n in range(args.pairs):
        for broker in BROKERS:
            started = time.strftime("%H:%M:%S")
            result = drain_once(broker, args.orders)
            runs.append({"pair": n + 1, "broker": broker, "started": started, **result})
            print(json.dumps(runs[-1]), flush=True)
    out = ROOT / "bench" / "results" / f"replication-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps({"orders": args.orders, "runs": runs}, indent=2))
    print(f"\n{'pair':4} {'broker':12} {'pipeline/s':>10} {'chain/s':>8} {'ratio':>6} {'CPU ms/o':>8} {'broker ms':>9}")
    for r in runs:
        broker_ms = r["cpu_ms_per_order"].get("rabbitmq (shared)")
        print(f"{r['pair']:4} {r['broker']:12} {r['pipeline_orders_s']:10} {r['chain_s']:8} {r['ratio_to_chain']:6} "
              f"{r['cpu_ms_per_order_total']:12} {broker_ms:9}")  # fmt: skip
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
