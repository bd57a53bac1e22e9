"""How much each phase of the bench does: the full run's sizes, --smoke's tiny ones, and `--size KEY=VALUE`
overrides (recorded in the results' settings)."""

from dataclasses import dataclass


@dataclass
class Sizes:
    api_seconds: float = 15.0  # each closed-loop API measurement
    api_warmup: int = 300  # requests per endpoint before measuring
    drain_orders: int = 5000  # pipeline backlog (latency 0) and bare-chain backlog
    backlog_messages: int = 50000  # decoupling: messages waiting in the queues
    decouple_seconds: float = 15.0
    e2e_rate: float = 50.0
    e2e_seconds: float = 30.0
    io_orders: int = 2000  # enrichment at 1000 ms
    scale_orders: int = 1000  # per scale-out point
    scale_processes: tuple = (1, 2, 4)
    enrichment_latency_ms: int = 1000
    sustained_seconds: float = 60.0  # each step of the sustained phase offers its rate this long (open loop)
    sustained_warmup_seconds: float = 5.0  # unmeasured, at the first step's rate, before the first step
    sustained_rates: tuple = (25.0, 35.0, 45.0, 55.0, 75.0, 100.0)  # orders/s, one step each
    sustained_reference_rate: float = 50.0  # the step whose p50 and CPU per order are figures (nearest step)
    sustained_p99_target_ms: float = 250.0  # "highest rate whose POST->completed p99 <= this"
    sustained_skip_p99_ms: float = 5000.0  # a step with p99 above this skips the higher rates (0: never skip)
    sustained_catalog: str = "hot"  # hot | zipf
    # as deployed against without Flower and the live page's browser (bench/scenarios/deployed_ab.py): these
    # rates and the highest the sustained phase kept, each step this long, both ways
    deployed_ab_rates: tuple = (25.0, 35.0, 45.0)
    deployed_ab_seconds: float = 30.0
    zipf_s: float = 1.1  # Zipf exponent of the 1,000-SKU catalog drain
    phase_timeout: float = 300.0  # no wait in the bench lasts longer than this
    stall_seconds: float = 30.0  # a drain with no progress this long, and nothing left in its queues, is over
    start_timeout: float = 120.0  # a web server or worker not ready after this long fails the run


SMOKE = lambda: Sizes(  # noqa: E731
    api_seconds=1.0,
    api_warmup=0,
    drain_orders=40,
    backlog_messages=1000,
    decouple_seconds=1.0,
    e2e_rate=50.0,
    e2e_seconds=0.6,
    io_orders=24,
    scale_orders=12,
    sustained_seconds=3.0,
    sustained_warmup_seconds=0.0,
    sustained_rates=(10.0, 20.0),
    deployed_ab_rates=(10.0,),
    deployed_ab_seconds=3.0,
    phase_timeout=60.0,
    stall_seconds=15.0,
)


def override(sizes: Sizes, pair: str) -> str | None:
    """Apply one `KEY=VALUE` to `sizes`; the error to report if KEY is no size or VALUE not of its type."""
    key, _, value = pair.partition("=")
    if not hasattr(sizes, key):
        return f"unknown size {key}"
    current = getattr(sizes, key)
    try:
        if isinstance(current, tuple):  # comma-separated, of the type of the default's items
            setattr(sizes, key, tuple(type(current[0])(v) for v in value.split(",") if v.strip()))
        else:
            setattr(sizes, key, type(current)(value))
    except ValueError:
        return f"bad value for {key}: {value!r}"
    return None
