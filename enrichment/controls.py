"""Runtime knobs of the simulated provider, shared by every worker through Redis, so a demo or a
test can break or "fix" the provider without restarting workers (`manage.py provider`)."""

from django.conf import settings
from django.core.cache import cache

KEY = "enrichment:provider-controls"


def controls_get() -> dict:
    try:
        return cache.get(KEY) or {}
    except Exception:  # Redis down: the environment's settings apply
        return {}


def controls_set(**values) -> dict:
    current = {**controls_get(), **{k: v for k, v in values.items() if v is not None}}
    cache.set(KEY, current, timeout=None)
    return current


def controls_reset() -> None:
    cache.delete(KEY)


def failure_rate() -> float:
    return float(controls_get().get("failure_rate", settings.ENRICHMENT_FAILURE_RATE))


def outage_fixed() -> bool:
    """When true, the DOWN, FLAKY and HANG triggers answer normally (the provider was 'fixed')."""
    return bool(controls_get().get("fixed", False))


# How the provider answers refund calls (docs/pipeline.md "Simulating failures"): normally, or failing the way an
# enrichment call can, so the refund stage's retries, dead-lettering and redrive can be shown and tested.
REFUND_MODES = ("ok", "flaky", "down", "hang", "reject")


def refund_mode() -> str:
    mode = controls_get().get("refund", "ok")
    return mode if mode in REFUND_MODES else "ok"
