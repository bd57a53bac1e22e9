"""Phase 2, decoupling: POST p99 (closed loop, c=16) with the pipeline idle, then with `backlog_messages`
task-shaped messages waiting in the process queue that no worker consumes: accepting an order must not
slow down behind a backlog. Phase "decoupling", figure decoupling_p99."""

import json
import uuid

from bench.figures import figure, met_ratio
from bench.measure import load
from devtools.procs import wait_until


def run(ctx, port: int) -> None:
    s = ctx.sizes
    ctx.reset()
    idle = load(ctx, "decouple-idle", "/orders", port=port, concurrency=16, seconds=s.decouple_seconds)
    ctx.reset()
    ctx.log(f"flooding the process queue with {s.backlog_messages} messages")
    flood(ctx, s.backlog_messages)
    depth = ctx.queues.depth("process")
    busy = load(ctx, "decouple-backlog", "/orders", port=port, concurrency=16, seconds=s.decouple_seconds)
    ctx.results["phases"]["decoupling"] = {
        "backlog_messages": depth,
        "idle_p99_ms": idle["p99_ms"],
        "backlog_p99_ms": busy["p99_ms"],
        "idle_errors": idle["errors_total"],
        "backlog_errors": busy["errors_total"],
    }


def flood(ctx, count: int) -> None:
    """`count` task-shaped messages (about the size of a real chain message) into the process queue."""
    from kombu import Exchange, Producer

    body = json.dumps(
        [
            [str(uuid.uuid4())],
            {},
            {
                "callbacks": None,
                "errbacks": None,
                "chord": None,
                "chain": [
                    {"task": "orders.finalize", "args": [], "kwargs": {}, "options": {"x": "y" * 200}},
                    {"task": "enrichment.enrich", "args": [], "kwargs": {}, "options": {"x": "y" * 200}},
                ],
            },
        ]
    )
    with ctx.queues.connection() as conn:
        producer = Producer(conn.default_channel, exchange=Exchange("orders", type="topic"), auto_declare=False)
        for n in range(count):
            producer.publish(
                body,
                routing_key="order.created",
                content_type="application/json",
                content_encoding="utf-8",
                headers={"task": "bench.flood", "id": f"flood-{n}"},
                delivery_mode=2,
            )
    wait_until(
        lambda: ctx.queues.depth("process") >= count,
        timeout=ctx.sizes.phase_timeout,
        what="backlog in the queue",
        interval=0.25,
    )


def figures(r: dict) -> dict:
    dec = r["phases"].get("decoupling")
    if not dec:
        return {}
    return {
        "decoupling_p99": figure(
            dec["backlog_p99_ms"],
            dec["idle_p99_ms"],
            "ms",
            "<= 1.2x",
            met_ratio(dec["backlog_p99_ms"], dec["idle_p99_ms"], at_most=1.2),
            note=f"{dec['backlog_messages']} messages waiting",
            ceiling_name="POST p99 idle",
        )
    }
