"""The chaos run's load: orders POSTed at a steady rate by a pool of clients that behave like real ones
(retry with the same idempotency key while the server is down or answers 503; 8 % duplicates of an
earlier key; some orders for the provider's fault-injection SKUs), and the log of what they were told,
which the checker holds the database to."""
import concurrent.futures
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests

from chaos.config import TOKEN, Config

NORMAL_SKUS = ["ABC", "XYZ", "Notebook", "Pen", "Mug"]


@dataclass
class ClientLog:
    accepted: dict = field(default_factory=dict)  # key -> set of order ids the client was given
    bodies: dict = field(default_factory=dict)
    statuses: list = field(default_factory=list)  # (time, status)
    retried_keys: set = field(default_factory=set)
    gave_up: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def order_body(rng: random.Random, n: int) -> dict:
    roll = rng.random()
    if roll < 0.08:
        items = [{"sku": "FLAKY", "qty": 1}]
    elif roll < 0.13:
        items = [{"sku": "DOWN", "qty": 1}]
    elif roll < 0.18:
        items = [{"sku": "BOMBA", "qty": 1}]
    else:
        items = [{"sku": sku, "qty": rng.randint(1, 5)} for sku in rng.sample(NORMAL_SKUS, rng.randint(1, 3))]
    return {"customer_id": f"chaos-{n % 97}", "source": rng.choice(["web", "mobile", "api"]), "items": items}


def send(cfg: Config, client: ClientLog, key: str, body: dict) -> None:
    url = f"http://127.0.0.1:{cfg.port}/orders"
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Idempotency-Key": key}
    deadline = time.monotonic() + 120
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        if attempt > 1:
            with client.lock:
                client.retried_keys.add(key)
        try:
            response = requests.post(url, json=body, headers=headers, timeout=15)
        except requests.RequestException:
            time.sleep(0.3)  # server down or restarting: retry with the same key
            continue
        with client.lock:
            client.statuses.append((time.time(), response.status_code))
        if response.status_code == 202:
            with client.lock:
                client.accepted.setdefault(key, set()).add(response.json()["order_id"])
            return
        if response.status_code == 503:
            time.sleep(0.5)
            continue
        with client.lock:
            client.unexpected.append({"key": key, "status": response.status_code, "body": response.text[:300]})
        return
    with client.lock:
        client.gave_up.append(key)


def drive_load(cfg: Config, client: ClientLog, rng: random.Random) -> None:
    keys: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        futures = []
        started = time.monotonic()
        for n in range(cfg.orders):
            if keys and rng.random() < 0.08:
                key = rng.choice(keys)  # a duplicate: same key, same body
            else:
                key = f"chaos-{uuid.uuid4()}"
                keys.append(key)
                client.bodies[key] = order_body(rng, n)
            futures.append(pool.submit(send, cfg, client, key, client.bodies[key]))
            # steady rate: sleep until this order's slot
            delay = started + (n + 1) / cfg.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for future in futures:
            future.result()
