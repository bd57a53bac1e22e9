"""Security releases are taken: the pinned, locked and installed Django is at least the newest security
release of its LTS line we know of (docs/security.md "Security"; raise the floor with the next one)."""

import re
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[2]
# Django 5.2.20 (security release); 5.2 is the LTS line Python 3.11 allows.
DJANGO_FLOOR = (5, 2, 20)


def _version(text: str, pattern: str) -> tuple[int, ...]:
    match = re.search(pattern, text, re.MULTILINE | re.IGNORECASE)
    assert match, pattern
    return tuple(int(part) for part in match.group(1).split("."))


def test_django_is_pinned_locked_and_installed_at_the_security_release() -> None:
    pinned = _version((ROOT / "requirements.txt").read_text(), r"^django==([\d.]+)$")
    for lock in ("requirements.lock", "requirements-dev.lock"):
        assert _version((ROOT / lock).read_text(), r"^django==([\d.]+) ") == pinned, lock
    assert pinned >= DJANGO_FLOOR
    assert django.VERSION[:3] == pinned
