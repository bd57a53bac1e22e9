"""Throttle rates, `<requests>/<period>`: read once by the settings (a bad value refuses to start) and by
each throttle. No Django imports: the settings module imports this."""

import re

_RATE = re.compile(r"([1-9][0-9]*)/(s|sec|second|m|min|minute|h|hour|d|day)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """`"600/s"`, `"60/min"`, `"1000/hour"` → (requests, seconds)."""
    match = _RATE.fullmatch(rate)
    if match is None:
        raise ValueError(f"A throttle rate is '<requests>/<s|min|hour|day>' (e.g. '600/s', '60/min'), not {rate!r}")
    return int(match[1]), _SECONDS[match[2][0]]
