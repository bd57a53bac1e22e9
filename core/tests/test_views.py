"""The probes (core/views.py): /healthz always answers; /readyz checks only what the web cannot serve
without, and names a failed check without its error text. (/metrics: orders/tests/test_metrics*.py.)"""

import json
import subprocess
import sys

import pytest
from django.test import Client

from conftest import subprocess_env

pytestmark = pytest.mark.django_db


def test_healthz_answers_whatever_the_host(client: Client) -> None:
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_only_what_the_web_cannot_serve_without(client: Client) -> None:
    response = client.get("/readyz", HTTP_HOST="10.1.2.3")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok"}


def test_readyz_reads_the_migration_graph_only_until_it_says_applied(client: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from core import views

    views._migrations_applied = False
    with CaptureQueriesContext(connection) as first:
        assert client.get("/readyz").status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert client.get("/readyz").status_code == 200
    assert any("django_migrations" in q["sql"] for q in first.captured_queries)
    assert [q["sql"] for q in second.captured_queries] == ["SELECT 1"]


PROBE = """
import json, django; django.setup()
from django.test import Client
client = Client()
response = client.get("{path}")
print(json.dumps({{"http_status": response.status_code, "body": response.content.decode()}}))
"""


def probe(path: str, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(path=path)],
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "env",
    [{"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"}, {"REDIS_URL": "redis://127.0.0.1:1/0"}],
    ids=["rabbitmq-down", "redis-down"],
)
def test_readyz_stays_ready_when_rabbitmq_or_redis_is_down(env: dict[str, str]) -> None:
    # POST (outbox) and GET (database) still work: no web pod may leave the Service for a shared outage
    answer = probe("/readyz", **env)
    assert answer["http_status"] == 200
    assert json.loads(answer["body"])["checks"] == {"database": "ok", "migrations": "ok"}


def test_readyz_is_503_naming_the_failed_check_without_its_error_text() -> None:
    answer = probe("/readyz", DATABASE_URL="postgres://secretuser@127.0.0.1:1/secretdb")
    body = json.loads(answer["body"])
    assert answer["http_status"] == 503 and body["status"] == "unavailable"
    assert body["checks"] == {"database": "unavailable", "migrations": "not checked"}
    assert "secret" not in answer["body"] and "127.0.0.1" not in answer["body"] and "Error" not in answer["body"]
