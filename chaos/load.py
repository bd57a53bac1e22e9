"""The chaos run's load: orders POSTed at a steady rate by a pool of clients that behave like real ones
(retry with the same idempotency key while the server is down or answers 503; 8 % duplicates of an
earlier key; some orders for the provider's fault-injection SKUs; a share of orders cancelled at a random
moment: at once, while the pipeline runs, or after it completed), and the log of what they were told,
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
CANCEL_SHARE = 0.1
# When a cancel is sent after its order was accepted: at once (seconds), while the pipeline runs (seconds), or
# once the order is done (a completed one is then refunded). A fixed delay for the last one found orders still
# in flight when the kills and restarts had stalled the pipeline, so no refund happened in the run.
AFTER_DONE = "after_done"
CANCEL_MOMENTS = ((0.0, 0.05), (0.1, 1.5), AFTER_DONE)
# The statuses an order ends in (the checker holds every order to one of them).
TERMINAL = ("completed", "failed", "cancelled", "refunded")


@dataclass
class ClientLog:
    accepted: dict = field(default_factory=dict)  # key -> set of order ids the client was given
    accepted_at: dict = field(default_factory=dict)  # order id -> when the client sent the POST that got it
    bodies: dict = field(default_factory=dict)
    statuses: list = field(default_factory=list)  # (time, status)
    retried_keys: set = field(default_factory=set)
    gave_up: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    cancels: dict = field(default_factory=dict)  # order id -> (HTTP status, status in the answer)
    lock: threading.Lock = field(default_factory=threading.Lock)


def order_body(rng: random.Random, n: int, *, clean: bool = False) -> dict:
    roll = 1.0 if clean else rng.random()
    if roll < 0.08:
        items = [{"sku": "FLAKY", "qty": 1}]
    elif roll < 0.13:
        items = [{"sku": "DOWN", "qty": 1}]
    elif roll < 0.18:
        items = [{"sku": "BOMBA", "qty": 1}]
    else:
        items = [{"sku": sku, "qty": rng.randint(1, 5)} for sku in rng.sample(NORMAL_SKUS, rng.randint(1, 3))]
    return {"customer_id": f"chaos-{n % 97}", "source": rng.choice(["web", "mobile", "api"]), "items": items}


def send(cfg: Config, client: ClientLog, key: str, body: dict) -> str | None:
    url = f"http://{cfg.web_address}:{cfg.port}/orders"
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Idempotency-Key": key}
    deadline = time.monotonic() + 120
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        if attempt > 1:
            with client.lock:
                client.retried_keys.add(key)
        sent_at = time.time()
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
                client.accepted_at.setdefault(response.json()["order_id"], sent_at)
            return response.json()["order_id"]
        if response.status_code == 503:
            time.sleep(0.5)
            continue
        with client.lock:
            client.unexpected.append({"key": key, "status": response.status_code, "body": response.text[:300]})
        return
    with client.lock:
        client.gave_up.append(key)


def wait_done(cfg: Config, order_id: str, timeout: float = 120) -> None:
    """Poll the order until it is done (or `timeout`), like a client waiting for its order."""
    url = f"http://{cfg.web_address}:{cfg.port}/orders/{order_id}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, headers=headers, timeout=15)
            if response.status_code == 200 and response.json().get("status") in TERMINAL:
                return
        except (requests.RequestException, ValueError):
            pass  # server down or restarting
        time.sleep(0.5)


def cancel(cfg: Config, client: ClientLog, order_id: str, when: float | str) -> None:
    """Cancel an order after `when` seconds (or once it is done: AFTER_DONE), retrying like a client while the
    server is down."""
    if when == AFTER_DONE:
        wait_done(cfg, order_id)
    else:
        time.sleep(float(when))
    url = f"http://{cfg.web_address}:{cfg.port}/orders/{order_id}/cancel"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            response = requests.post(url, json={"reason": "chaos"}, headers=headers, timeout=15)
        except requests.RequestException:
            time.sleep(0.3)
            continue
        with client.lock:
            client.statuses.append((time.time(), response.status_code))
        if response.status_code == 503:
            time.sleep(0.5)
            continue
        status = (
            response.json().get("status")
            if response.headers.get("content-type", "").startswith("application/json")
            else None
        )
        with client.lock:
            client.cancels[order_id] = (response.status_code, status)
            if response.status_code not in (200, 202, 409):
                client.unexpected.append(
                    {"cancel": order_id, "status": response.status_code, "body": response.text[:300]}
                )
        return
    with client.lock:
        client.gave_up.append(f"cancel {order_id}")


def send_and_maybe_cancel(
    cfg: Config, client: ClientLog, key: str, body: dict, cancel_after: float | str | None
) -> None:
    order_id = send(cfg, client, key, body)
    if order_id is not None and cancel_after is not None:
        cancel(cfg, client, order_id, cancel_after)


def drive_load(cfg: Config, client: ClientLog, rng: random.Random) -> None:
    keys: list[str] = []
    # Clients wait for their cancels (some until their order is done), so the pool is larger than the POSTs need.
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        futures = []
        started = time.monotonic()
        for n in range(cfg.orders):
            if keys and not cfg.clean and rng.random() < 0.08:
                key = rng.choice(keys)  # a duplicate: same key, same body
            else:
                key = f"chaos-{uuid.uuid4()}"
                keys.append(key)
                client.bodies[key] = order_body(rng, n, clean=cfg.clean)
            cancel_after: float | str | None = None
            if not cfg.clean and rng.random() < CANCEL_SHARE:
                moment = rng.choice(CANCEL_MOMENTS)
                cancel_after = moment if isinstance(moment, str) else rng.uniform(*moment)
            futures.append(pool.submit(send_and_maybe_cancel, cfg, client, key, client.bodies[key], cancel_after))
            # steady rate: sleep until this order's slot
            delay = started + (n + 1) / cfg.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for future in futures:
            future.result()
