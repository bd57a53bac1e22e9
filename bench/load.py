"""The load generator: an asyncio HTTP client (aiohttp), run by bench/run.py as its own process so
its CPU is measured apart (resource.getrusage of this process, in the JSON it prints).

    python -m bench.load --url URL --token T (--concurrency C | --rate R) [--duration S] [--count N]

Closed loop (--concurrency): C connections each send the next request as soon as the last answered.
Open loop (--rate): one request every 1/R s whatever the answers (bounded in-flight), the way users
arrive. Both stop at --duration seconds or --count requests, whichever comes first. Each request is
a valid order (1-3 distinct items, a fresh X-Idempotency-Key) from one of two catalogs (--catalog):
`hot` (default) picks them uniformly from the demo catalog's 5 ordinary SKUs, so every order hits the same
few product rows (a flash sale); `zipf` picks them from the 1,000 SKUs Z0000..Z0999 (seeded by
bench/run.py), rank k with probability proportional to 1/k^s (--zipf-s, default 1.1; Z0000 most popular).
Prints one JSON object; every answer that is not 2xx and every connection error or timeout is counted.
"""

import argparse
import asyncio
import json
import math
import random
import resource
import sys
import time
import uuid

import aiohttp

SKUS = ("ABC", "XYZ", "Notebook", "Pen", "Mug")
ZIPF_SKUS = 1000
MAX_IN_FLIGHT = 512


def zipf_sku(n: int) -> str:
    return f"Z{n:04d}"


class Catalog:
    """Which SKUs an order's 1-3 distinct items come from: `hot` (uniform over SKUS) or `zipf`."""

    def __init__(self, kind: str = "hot", *, skus: int = ZIPF_SKUS, s: float = 1.1):
        self.kind = kind
        if kind == "hot":
            self.skus = list(SKUS)
            self.cum = None
        elif kind == "zipf":
            self.skus = [zipf_sku(k) for k in range(skus)]
            total, self.cum = 0.0, []
            for rank in range(1, skus + 1):
                total += 1.0 / rank**s
                self.cum.append(total)
        else:
            raise ValueError(f"unknown catalog {kind!r}")

    def pick(self, rng: random.Random, count: int) -> list[str]:
        if self.cum is None:
            return rng.sample(self.skus, count)
        chosen: list[str] = []
        while len(chosen) < count:
            sku = rng.choices(self.skus, cum_weights=self.cum)[0]
            if sku not in chosen:
                chosen.append(sku)
        return chosen


def order_body(rng: random.Random, n: int, catalog: Catalog | None = None) -> bytes:
    skus = (catalog or HOT).pick(rng, rng.randint(1, 3))
    items = [{"sku": sku, "qty": rng.randint(1, 3)} for sku in skus]
    return json.dumps({"customer_id": f"bench-{n}", "source": "api", "items": items}).encode()


HOT = Catalog("hot")


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.catalog = Catalog(args.catalog, skus=args.zipf_skus, s=args.zipf_s)
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.ids: list[str] = []
        self.sent = 0
        self.deadline = time.monotonic() + args.duration

    def more(self) -> bool:
        return self.sent < self.args.count and time.monotonic() < self.deadline

    async def one(self, session: aiohttp.ClientSession, n: int) -> None:
        body = order_body(self.rng, n, self.catalog)
        headers = {"X-Idempotency-Key": uuid.uuid4().hex}
        started = time.perf_counter()
        try:
            async with session.post(self.args.url, data=body, headers=headers) as response:
                payload = await response.read()
                elapsed = time.perf_counter() - started
                self.statuses[str(response.status)] = self.statuses.get(str(response.status), 0) + 1
                if response.status == 202:
                    self.latencies.append(elapsed)
                    if self.args.ids_file:
                        self.ids.append(json.loads(payload).get("order_id", ""))
        except Exception as exc:  # counted, never fatal: the run reports what happened
            name = type(exc).__name__
            self.errors[name] = self.errors.get(name, 0) + 1

    async def closed_loop(self, session) -> None:
        async def client():
            while self.more():
                self.sent += 1
                await self.one(session, self.sent - 1)

        await asyncio.gather(*(client() for _ in range(self.args.concurrency)))

    async def open_loop(self, session) -> None:
        interval = 1.0 / self.args.rate
        start = time.monotonic()
        pending: set[asyncio.Task] = set()
        while self.more():
            target = start + self.sent * interval
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(pending) >= MAX_IN_FLIGHT:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            self.sent += 1
            task = asyncio.ensure_future(self.one(session, self.sent - 1))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending, timeout=max(5.0, self.args.duration))

    async def main(self) -> dict:
        limit = self.args.concurrency if self.args.concurrency else MAX_IN_FLIGHT
        connector = aiohttp.TCPConnector(limit=limit, force_close=False)
        timeout = aiohttp.ClientTimeout(total=self.args.timeout)
        headers = {"Authorization": f"Bearer {self.args.token}", "Content-Type": "application/json"}
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
            started = time.monotonic()
            if self.args.rate:
                await self.open_loop(session)
            else:
                await self.closed_loop(session)
            wall = time.monotonic() - started
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        lat = sorted(self.latencies)
        ms = lambda v: None if v is None else round(v * 1000, 3)  # noqa: E731
        if self.args.ids_file:
            with open(self.args.ids_file, "w") as handle:
                handle.write("\n".join(i for i in self.ids if i))
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        non_2xx = sum(count for status, count in self.statuses.items() if not status.startswith("2"))
        connection_errors = sum(self.errors.values())
        return {
            "mode": "open" if self.args.rate else "closed",
            "concurrency": self.args.concurrency,
            "rate_target": self.args.rate,
            "sent": self.sent,
            "accepted": len(lat),
            "statuses": self.statuses,
            "errors": self.errors,
            "catalog": self.args.catalog,
            "non_2xx": non_2xx,
            "connection_errors": connection_errors,
            "errors_total": non_2xx + connection_errors,
            "wall_s": round(wall, 3),
            "accept_rate": round(len(lat) / wall, 2) if wall else 0.0,
            "p50_ms": ms(percentile(lat, 50)),
            "p90_ms": ms(percentile(lat, 90)),
            "p99_ms": ms(percentile(lat, 99)),
            "max_ms": ms(lat[-1] if lat else None),
            "generator_cpu_s": round(cpu, 3),
            "generator_cores": round(cpu / wall, 3) if wall else 0.0,
        }


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--concurrency", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--duration", type=float, default=10.0, help="hard stop for sending, seconds")
    parser.add_argument("--count", type=int, default=10**9, help="hard stop for sending, requests")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ids-file", default="")
    parser.add_argument("--catalog", choices=["hot", "zipf"], default="hot")
    parser.add_argument("--zipf-s", type=float, default=1.1)
    parser.add_argument("--zipf-skus", type=int, default=ZIPF_SKUS)
    args = parser.parse_args(argv)
    if bool(args.concurrency) == bool(args.rate):
        parser.error("give exactly one of --concurrency and --rate")
    if args.rate:  # the schedule: request k at k/rate s, for k/rate < duration
        args.count = min(args.count, max(1, math.ceil(args.rate * args.duration - 1e-9)))
    return args


if __name__ == "__main__":
    result = asyncio.run(Run(parse()).main())
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
