"""Rate strings (core/rates.py): "N/unit", anything else refused."""

import pytest

from core.rates import parse_rate


@pytest.mark.parametrize(
    "rate, expected", [("600/s", (600, 1)), ("60/min", (60, 60)), ("1000/hour", (1000, 3600)), ("5/day", (5, 86400))]
)
def test_rates_parse(rate: str, expected: tuple[int, int]) -> None:
    assert parse_rate(rate) == expected


@pytest.mark.parametrize("rate", ["", "60", "0/s", "-1/s", "x/s", "10/fortnight", "10/", "10/sx", " 10/s"])
def test_bad_rates_are_refused(rate: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(rate)
