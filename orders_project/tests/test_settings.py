"""orders_project/settings.py as production imports it: DEBUG off by default, and no start without the
secrets. (The rest of the production settings: tests/deploy/test_settings_security.py.)"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]


_PROBE = """
import sys
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
try:
    debug = settings.DEBUG
except ImproperlyConfigured as exc:
    print(f"ImproperlyConfigured: {exc}")
    sys.exit(3)
print(f"DEBUG={debug} SECRET_KEY={settings.SECRET_KEY} SECRET_TOKEN={settings.SECRET_TOKEN}")
"""


def _import_production_settings(**env) -> subprocess.CompletedProcess:
    """Import orders_project.settings (what production runs) in a process with a clean environment."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "orders_project.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=BASE_DIR, env=clean, capture_output=True, text=True, timeout=60
    )


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = _import_production_settings(SECRET_TOKEN="t")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ImproperlyConfigured" in result.stdout and "DJANGO_SECRET_KEY" in result.stdout


def test_production_settings_refuse_to_start_without_the_api_token():
    result = _import_production_settings(DJANGO_SECRET_KEY="k")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ImproperlyConfigured" in result.stdout and "SECRET_TOKEN" in result.stdout


def test_debug_is_off_by_default():
    key, token = "kQ7xZ" * 10, "tW4mP" * 7  # long enough for production (settings.SECRET_MIN_LENGTHS)
    result = _import_production_settings(DJANGO_SECRET_KEY=key, SECRET_TOKEN=token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"DEBUG=False SECRET_KEY={key} SECRET_TOKEN={token}" in result.stdout


def test_the_dev_defaults_exist_only_with_debug_on():
    result = _import_production_settings(DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DEBUG=True" in result.stdout


@pytest.mark.django_db
def test_a_statement_run_repeatedly_is_prepared_on_its_connection():
    # DB_PREPARE_THRESHOLD (default 5): PostgreSQL plans the order's statements once per connection
    with connection.cursor() as cursor:
        for i in range(6):
            cursor.execute("SELECT %s::int + 41", [i])
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int + 41'")
        assert cursor.fetchone()[0] == 1


def test_prepared_statements_can_be_turned_off():
    key, token = "kQ7xZ" * 10, "tW4mP" * 7
    probe = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])"
    clean = {"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "orders_project.settings"}
    for value, expected in (("off", "None"), ("0", "0"), (None, "5")):
        env = {**clean, "DJANGO_SECRET_KEY": key, "SECRET_TOKEN": token}
        if value is not None:
            env["DB_PREPARE_THRESHOLD"] = value
        result = subprocess.run(
            [sys.executable, "-c", probe], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.stdout.strip() == expected, result.stderr
