import json
import subprocess
import sys

import pytest

from conftest import subprocess_env

pytestmark = pytest.mark.django_db


def test_healthz_answers_whatever_the_host(client):
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_every_backing_service(client):
    response = client.get("/readyz", HTTP_HOST="10.1.2.3")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "rabbitmq": "ok", "redis": "ok"}


READYZ = """
import json, django; django.setup()
from django.test import Client
response = Client().get("/readyz")
print(json.dumps({**json.loads(response.content), "http_status": response.status_code}))
"""


@pytest.mark.parametrize(
    "broken, env",
    [
        ("rabbitmq", {"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"}),
        ("redis", {"REDIS_URL": "redis://127.0.0.1:1/0"}),
        ("database", {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nope"}),
    ],
)
def test_readyz_is_503_naming_the_service_that_is_down(broken, env):
    result = subprocess.run([sys.executable, "-c", READYZ], env=subprocess_env(**env), capture_output=True, text=True, timeout=60)
    body = json.loads(result.stdout.strip().splitlines()[-1])
    assert body["http_status"] == 503 and body["status"] == "unavailable"
    assert body["checks"][broken] != "ok"
    assert [name for name, state in body["checks"].items() if state != "ok"] == [broken]


def test_metrics_exposes_pipeline_counters(api_client, client):
    api_client.post("/orders", {"customer_id": "m", "source": "web", "items": [{"sku": "ABC", "qty": 1}]}, format="json")
    response = client.get("/metrics", HTTP_HOST="10.0.0.7:8000")
    text = response.content.decode()
    assert response.status_code == 200
    assert 'orders_accepted_total{source="web"}' in text
    for name in ("order_stage_duration_seconds", "orders_outbox_backlog", "orders_outbox_oldest_age_seconds", "orders_dlq_depth", "orders_dead_lettered_total", "order_task_retries_total"):
        assert name in text


def test_metrics_outbox_backlog_counts_unpublished_rows(api_client, client):
    api_client.post("/orders", {"customer_id": "m", "items": [{"sku": "ABC", "qty": 1}]}, format="json")
    text = client.get("/metrics").content.decode()
    # inside the test transaction the fast path never ran: the row is still unpublished
    assert "orders_outbox_backlog 1.0" in text


def test_api_database_outage_is_503_not_500():
    code = """
import django; django.setup()
from django.conf import settings
from django.test import Client
r = Client().post("/orders", {"customer_id": "1", "items": [{"sku": "ABC", "qty": 1}]}, content_type="application/json", HTTP_AUTHORIZATION="Bearer " + settings.SECRET_TOKEN)
print(r.status_code, r["Content-Type"], r.get("Retry-After"), r.json()["code"])
"""
    result = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/nope"),
        capture_output=True, text=True, timeout=60,
    )
    assert result.stdout.strip().splitlines()[-1] == "503 application/json 1 service_unavailable"
