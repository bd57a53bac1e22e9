"""A simulated external enrichment provider: prices the items and scores the customer.

Refunds (`refund`) fail as `manage.py provider --refund MODE` says (flaky, down, hang, reject).

Demo triggers (docs/pipeline.md "Simulating failures"), only with DEMO_FAULTS_ENABLED (otherwise ordinary items):
BOMBA is a poison item (permanent error), FLAKY fails transiently on the first 2 attempts, DOWN always
fails transiently, HANG stalls past the call's deadline, CRASH kills the worker process (with
DEMO_CRASH_ENABLED too). ENRICHMENT_FAILURE_RATE adds random transient failures.

Every call has a total deadline, ENRICHMENT_PROVIDER_TIMEOUT from its start: no wait in it goes past it,
and reaching it is a transient timeout (as a real client's total timeout would be).
"""

import hashlib
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

from core.exceptions import TransientError
from enrichment import controls


class ProviderError(Exception):
    pass


class ProviderTransientError(ProviderError, TransientError):
    """A timeout or 5xx-like answer: worth retrying."""


class ProviderPermanentError(ProviderError):
    """The provider rejects the request itself: retrying cannot help."""


@dataclass(frozen=True)
class ProviderItem:
    sku: str
    qty: int
    unit_price: str


FLAKY_FAILURES = 2
FAULT_SKUS = frozenset({"FLAKY", "DOWN", "BOMBA", "HANG", "CRASH"})


def _call_deadline() -> float:
    return time.monotonic() + settings.ENRICHMENT_PROVIDER_TIMEOUT


def _wait(seconds: float, *, deadline: float) -> None:
    """The simulated call's time, never past its deadline: a wait that would end after it times the call out."""
    remaining = deadline - time.monotonic()
    if seconds >= remaining:
        time.sleep(max(0.0, remaining))
        raise ProviderTransientError(f"provider timed out after {settings.ENRICHMENT_PROVIDER_TIMEOUT}s")
    time.sleep(seconds)


def enrich(*, customer_id: str, items: Sequence[ProviderItem], attempt: int) -> dict:
    deadline = _call_deadline()
    skus = {i.sku for i in items} if settings.DEMO_FAULTS_ENABLED else {i.sku for i in items} - FAULT_SKUS
    if controls.outage_fixed():
        skus -= {"DOWN", "FLAKY", "HANG"}
    if "CRASH" in skus and settings.DEMO_CRASH_ENABLED:
        os._exit(137)  # what an OOM kill looks like to the worker
    if "BOMBA" in skus:
        raise ProviderPermanentError("provider rejected poison item BOMBA")
    if "HANG" in skus:
        _wait(float("inf"), deadline=deadline)
    _wait(settings.ENRICHMENT_LATENCY_MS / 1000, deadline=deadline)
    if "DOWN" in skus:
        raise ProviderTransientError("provider unavailable (503)")
    if "FLAKY" in skus and attempt < FLAKY_FAILURES:
        raise ProviderTransientError(f"provider flaked (attempt {attempt + 1})")
    rate = controls.failure_rate()
    if rate and random.random() < rate:  # noqa: S311  simulated failure injection, not crypto
        raise ProviderTransientError("provider random failure (502)")
    score = int(hashlib.sha256(customer_id.encode()).hexdigest(), 16) % 100
    return {
        "provider": "simulated",
        "customer_score": score,
        "segment": "gold" if score >= 80 else "silver" if score >= 50 else "standard",
        "discount_pct": 10 if score >= 80 else 5 if score >= 50 else 0,
        "items": [{"sku": i.sku, "qty": i.qty, "list_price": i.unit_price} for i in items],
    }


def refund(*, customer_id: str, reference: str, amount: str, attempt: int) -> dict:
    """Refund `amount` of the invoice `reference` to the customer; fails as controls.refund_mode() says."""
    deadline = _call_deadline()
    mode = controls.refund_mode()
    if mode == "reject":
        raise ProviderPermanentError(f"provider rejected the refund of {reference}")
    if mode == "hang":
        _wait(float("inf"), deadline=deadline)
    _wait(settings.ENRICHMENT_LATENCY_MS / 1000, deadline=deadline)
    if mode == "down":
        raise ProviderTransientError("provider unavailable (503)")
    if mode == "flaky" and attempt < FLAKY_FAILURES:
        raise ProviderTransientError(f"provider flaked on the refund (attempt {attempt + 1})")
    digest = hashlib.sha256(f"{customer_id}:{reference}".encode()).hexdigest()[:16]
    return {"provider": "simulated", "refund_id": f"rf_{digest}", "amount": amount}
