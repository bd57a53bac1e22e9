"""One bench run's shared state, handed to every scenario as `ctx`: its arguments and sizes, the
environment of its processes, the results being filled, and the helpers the scenarios use (the
database, the vhost's queues, the servers, the Celery workers, the publish A/B, the CPU/RSS sampler)."""

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import measure, procs
from bench.ab import PublishAB
from bench.db import Database
from bench.env import bench_env
from bench.queues import Queues
from bench.servers import Servers
from bench.workers import Workers


class Bench:
    def __init__(self, args, sizes, stage_queues: tuple[str, ...]):
        self.args = args
        self.sizes = sizes
        self.env = bench_env(args)
        os.environ.update(self.env)  # the driver imports the product's settings module (broker topology)
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.out = Path(args.out)
        self.logs = Path(args.logs or f"/tmp/{args.name}-logs-{self.stamp}")
        self.sampler = procs.Sampler()
        self.results: dict = {"phases": {}, "load_runs": {}, "figures": {}, "cost": {}}
        self.commands = procs.procfile_commands(self.env)
        self.done_key = self.env["BENCH_CEILING_DONE_KEY"]
        self.t0 = time.monotonic()
        self.db = Database(args.name)
        self.queues = Queues(self.env["CELERY_BROKER_URL"])
        self.servers = Servers(self.env, self.logs, self.sampler, sizes, self.log)
        self.workers = Workers(self.env, self.logs, self.sampler, self.queues, sizes, stage_queues)
        self.ab = PublishAB(self.results, self.servers)

    def log(self, message: str) -> None:
        # stderr: stdout carries the results (the Markdown tables, or the JSON of --only)
        print(f"[bench {time.monotonic() - self.t0:7.1f}s] {message}", file=sys.stderr, flush=True)

    def redis(self):
        import redis

        return redis.Redis.from_url(self.env["REDIS_URL"])

    def reset(self, *, relays_running: bool = True) -> None:
        """Empty the order tables, refill the stock, purge every queue: each phase starts the same."""
        if relays_running:
            measure.wait_published(self)  # a relay still publishing holds row locks that TRUNCATE would deadlock with
        self.db.truncate()
        self.db.sql("UPDATE orders_product SET stock = 1000000, reserved = 0")
        self.queues.purge()
        self.redis().delete(self.done_key)

    def close(self) -> None:
        self.sampler.close()
        self.db.close()
