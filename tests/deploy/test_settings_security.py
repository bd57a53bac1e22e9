"""Production settings (orders_project/settings.py, "Security" block): `check --deploy` is clean under a
production environment, short or placeholder secrets refuse to start, and plain-HTTP setups opt out of the
HTTPS-only defaults with one switch (DJANGO_HTTPS=false). Each case runs in a subprocess with a clean
environment, as a production process would start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "pR0d-Kx7wQ2mZ9vL4tN8bC1yH6jF3sD5aG0eU7iO2pW9qE4rT1uY6nM3"  # 56 characters, random-looking
TOKEN = "Tq8mW3zK6vB1xN4cJ7hL2pF9sD5gA0eR"  # 32 characters


PRODUCTION = {
    "DJANGO_DEBUG": "False",
    "DJANGO_SECRET_KEY": KEY,
    "SECRET_TOKEN": TOKEN,
    "DJANGO_ALLOWED_HOSTS": "orders.example.com",
}


def run_in_production(args: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "orders_project.settings",
        **PRODUCTION,
    }
    clean.update(env)
    clean = {k: v for k, v in clean.items() if v is not None}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120)


SETTINGS_PROBE = """
import sys
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
try:
    settings.DEBUG
except ImproperlyConfigured as exc:
    print(f"ImproperlyConfigured: {exc}")
    sys.exit(3)
for name in sys.argv[1:]:
    print(name, repr(getattr(settings, name)))
"""


def settings_values(*names: str, **env: str) -> dict[str, str]:
    result = run_in_production(["-c", SETTINGS_PROBE, *names], **env)
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.split(" ", 1)[0] in names)


def test_check_deploy_is_clean_under_the_production_environment():
    result = run_in_production(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_production_defaults_are_https_only():
    values = settings_values(
        "SECURE_SSL_REDIRECT",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
    )
    assert values == {
        "SECURE_SSL_REDIRECT": "True",
        "SECURE_PROXY_SSL_HEADER": "('HTTP_X_FORWARDED_PROTO', 'https')",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "True",
        "SECURE_HSTS_PRELOAD": "True",
        "SESSION_COOKIE_SECURE": "True",
        "CSRF_COOKIE_SECURE": "True",
    }


def test_plain_http_switch_turns_the_https_only_defaults_off():
    values = settings_values(
        "SECURE_SSL_REDIRECT",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_HSTS_SECONDS",
        "SESSION_COOKIE_SECURE",
        DJANGO_HTTPS="false",
    )
    assert values == {
        "SECURE_SSL_REDIRECT": "False",
        "SECURE_PROXY_SSL_HEADER": "None",
        "SECURE_HSTS_SECONDS": "0",
        "SESSION_COOKIE_SECURE": "False",
    }


REQUEST_PROBE = """
import django
django.setup()
from django.test import Client
client = Client()
for path, headers in [
    ("/orders", {}), ("/orders", {"HTTP_X_FORWARDED_PROTO": "https"}), ("/healthz", {}), ("/metrics", {})
]:
    response = client.get(path, HTTP_HOST="orders.example.com", **headers)
    print(path, headers.get("HTTP_X_FORWARDED_PROTO", "http"), response.status_code, response.get("Location", "-"),
          response.get("Strict-Transport-Security", "-"))
"""


def test_plain_http_is_redirected_to_https_except_the_probes():
    result = run_in_production(["-c", REQUEST_PROBE], PROMETHEUS_MULTIPROC_DIR=None)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()[-4:]
    assert lines[0] == "/orders http 301 https://orders.example.com/orders -", lines
    # behind the TLS proxy (X-Forwarded-Proto: https): served, with HSTS
    _path, proto, status, location, hsts = lines[1].split(" ", 4)
    assert (proto, status) != ("https", "301") and location == "-", lines
    assert hsts == "max-age=31536000; includeSubDomains; preload", lines
    assert lines[2].split()[2] != "301" and lines[3].split()[2] != "301", lines


def _refused(result: subprocess.CompletedProcess, name: str) -> bool:
    return result.returncode == 3 and "ImproperlyConfigured" in result.stdout and name in result.stdout


@pytest.mark.parametrize(
    "name,value",
    [
        ("DJANGO_SECRET_KEY", "test-secret-key"),
        ("DJANGO_SECRET_KEY", "dev-only-insecure-key"),
        ("DJANGO_SECRET_KEY", "k" * 49),
        ("DJANGO_SECRET_KEY", "change-me-" + "x7Qa2" * 10),
        ("DJANGO_SECRET_KEY", "django-insecure-" + "x7Qa2" * 10),
        ("DJANGO_SECRET_KEY", "ab" * 40),  # long, but two characters
        ("SECRET_TOKEN", "test-token"),
        ("SECRET_TOKEN", "dev-token"),
        ("SECRET_TOKEN", "t" * 31),
        ("SECRET_TOKEN", "REPLACE-ME-in-an-overlay-0123456789abcdef"),
    ],
)
def test_short_or_placeholder_secrets_refuse_to_start(name, value):
    result = run_in_production(["-c", SETTINGS_PROBE], **{name: value})
    assert _refused(result, name), result.stdout + result.stderr
    assert value not in result.stdout, "the message must not echo the secret"


def _env_file_values(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if "=" in line and not line.lstrip().startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_the_shipped_example_and_base_secrets_refuse_to_start():
    """deploy/env.example and the k8s base Secret are templates: copied unchanged, they must not start."""
    example = _env_file_values(ROOT / "deploy" / "env.example")
    for name in ("DJANGO_SECRET_KEY", "SECRET_TOKEN"):
        result = run_in_production(["-c", SETTINGS_PROBE], **{name: example[name]})
        assert _refused(result, name), (name, result.stdout + result.stderr)
    base = (ROOT / "k8s" / "base" / "kustomization.yaml").read_text()
    for name in ("DJANGO_SECRET_KEY", "SECRET_TOKEN"):
        value = next(line.split("=", 1)[1] for line in base.splitlines() if line.strip().startswith(f"- {name}="))
        result = run_in_production(["-c", SETTINGS_PROBE], **{name: value})
        assert _refused(result, name), (name, result.stdout + result.stderr)


def test_debug_keeps_the_dev_defaults():
    values = settings_values(
        "SECRET_TOKEN", "SECURE_SSL_REDIRECT", DJANGO_DEBUG="true", DJANGO_SECRET_KEY=None, SECRET_TOKEN=None
    )
    assert values == {"SECRET_TOKEN": "'dev-token'", "SECURE_SSL_REDIRECT": "False"}


def _dev_overlay_values() -> dict[str, str]:
    text = (ROOT / "k8s" / "overlays" / "dev" / "kustomization.yaml").read_text()
    literals = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ") and "=" in line]
    return dict(literal.split("=", 1) for literal in literals)


def test_the_dev_overlays_committed_secrets_refuse_to_start_without_dev_overlay():
    """Issue 27 LOW 10: the dev overlay's secrets are public; copied into production they must not start."""
    dev = _dev_overlay_values()
    assert dev["DEV_OVERLAY"] == "true", "the dev overlay sets the flag that lets its own secrets start"
    for name in ("DJANGO_SECRET_KEY", "SECRET_TOKEN"):
        result = run_in_production(["-c", SETTINGS_PROBE], **{name: dev[name]})
        assert _refused(result, name), (name, result.stdout + result.stderr)
        assert dev[name] not in result.stdout, "the message must not echo the secret"


def test_the_dev_overlay_starts_with_its_own_secrets_and_flag():
    dev = _dev_overlay_values()
    values = settings_values(
        "DEBUG", DJANGO_SECRET_KEY=dev["DJANGO_SECRET_KEY"], SECRET_TOKEN=dev["SECRET_TOKEN"], DEV_OVERLAY="true"
    )
    assert values == {"DEBUG": "False"}
