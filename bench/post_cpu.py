"""CPU per `POST /orders` through the whole Django stack in one process (Django's test client: every
middleware, DRF, the throttle, the accepting statement; no HTTP server), on the bench's database of a
previous `bench.run` (--name, default orders_bench). Less noisy than a load run for a web-side A/B:

    .venv/bin/python -m bench.post_cpu 1000     # prints {"cpu_ms_per_post": ..., "wall_ms": ...}
"""

import argparse
import json
import os
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("posts", type=int, nargs="?", default=1000)
    parser.add_argument("--name", default="orders_bench")
    parser.add_argument("--redis-db", type=int, default=12)
    args = parser.parse_args()
    args.env = []
    from bench.env import TOKEN, bench_env

    os.environ.update(bench_env(args))
    import django

    django.setup()
    from django.test import Client

    client = Client()
    body = json.dumps(
        {"customer_id": "c1", "source": "api", "items": [{"sku": "ABC", "qty": 1}, {"sku": "XYZ", "qty": 2}]}
    )

    def post() -> None:
        response = client.post(
            "/orders",
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
            HTTP_X_IDEMPOTENCY_KEY=uuid.uuid4().hex,
        )
        if response.status_code != 202:
            raise SystemExit(f"POST /orders answered {response.status_code}: {response.content[:300]!r}")

    for _ in range(100):  # warm-up: imports, connections, caches
        post()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(args.posts):
        post()
    print(
        json.dumps(
            {
                "cwd": os.getcwd(),
                "cpu_ms_per_post": round((time.process_time() - cpu) / args.posts * 1000, 3),
                "wall_ms": round((time.perf_counter() - wall) / args.posts * 1000, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
