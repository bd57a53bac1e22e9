import json
import subprocess
import sys

import pytest

from conftest import subprocess_env

pytestmark = pytest.mark.django_db


def test_healthz_answers_whatever_the_host(client):
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_only_what_the_web_cannot_serve_without(client):
    response = client.get("/readyz", HTTP_HOST="10.1.2.3")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok"}


def test_readyz_reads_the_migration_graph_only_until_it_says_applied(client):
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


def probe(path: str, **env) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(path=path)], env=subprocess_env(**env), capture_output=True, text=True, timeout=60
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "env",
    [{"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"}, {"REDIS_URL": "redis://127.0.0.1:1/0"}],
    ids=["rabbitmq-down", "redis-down"],
)
def test_readyz_stays_ready_when_rabbitmq_or_redis_is_down(env):
    # POST (outbox) and GET (database) still work: no web pod may leave the Service for a shared outage
    answer = probe("/readyz", **env)
    assert answer["http_status"] == 200
    assert json.loads(answer["body"])["checks"] == {"database": "ok", "migrations": "ok"}


def test_readyz_is_503_naming_the_failed_check_without_its_error_text():
    answer = probe("/readyz", DATABASE_URL="postgres://secretuser@127.0.0.1:1/secretdb")
    body = json.loads(answer["body"])
    assert answer["http_status"] == 503 and body["status"] == "unavailable"
    assert body["checks"] == {"database": "unavailable", "migrations": "not checked"}
    assert "secret" not in answer["body"] and "127.0.0.1" not in answer["body"] and "Error" not in answer["body"]


def test_metrics_shows_rabbitmq_and_redis_health_as_gauges(client):
    from orders import metrics_collect

    metrics_collect.broker_check.reset()
    metrics_collect.redis_check.reset()
    text = client.get("/metrics").content.decode()
    for service in ("database", "rabbitmq", "redis"):
        assert f'orders_backing_service_up{{service="{service}"}} 1.0' in text


def test_metrics_shows_a_down_broker_as_a_gauge_not_an_error():
    answer = probe("/metrics", CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//")
    assert answer["http_status"] == 200
    assert 'orders_backing_service_up{service="rabbitmq"} 0.0' in answer["body"]
    assert 'orders_backing_service_up{service="redis"} 1.0' in answer["body"]


SCRAPES = """
import django; django.setup()
from django.test import Client
client = Client()
for _ in range(5):
    for path in ("/metrics", "/readyz", "/healthz"):
        assert client.get(path).status_code == 200, path
print("ok")
"""


def test_probes_and_metrics_reuse_one_broker_connection():
    from orders.tests.stalling_broker import StallingBroker

    # given: a pass-through proxy to the real RabbitMQ that counts connections
    broker = StallingBroker(answers=10**9)
    try:
        # when: five rounds of probes and scrapes, each of which checks the broker (no caching)
        env = subprocess_env(CELERY_BROKER_URL=broker.url, DIAGNOSTICS_CACHE_SECONDS="0")
        result = subprocess.run([sys.executable, "-c", SCRAPES], env=env, capture_output=True, text=True, timeout=60)
        # then
        assert result.stdout.strip().endswith("ok"), result.stderr[-2000:]
        assert broker.connections == 1
    finally:
        broker.close()


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


# ---------------------------------------------------------------------------
# GET /ops/diagnostics (staff only)
# ---------------------------------------------------------------------------


def test_diagnostics_shows_every_backing_service_to_staff(staff_client, api_client):
    from orders import metrics_collect

    metrics_collect.broker_check.reset()
    # given: an order waiting in the outbox
    api_client.post("/orders", {"customer_id": "d", "items": [{"sku": "ABC", "qty": 1}]}, format="json")
    # when
    body = staff_client.get("/ops/diagnostics").json()
    # then
    assert {name: body[name]["status"] for name in ("database", "rabbitmq", "redis", "dlq", "outbox")} == dict.fromkeys(
        ("database", "rabbitmq", "redis", "dlq", "outbox"), "ok"
    )
    assert body["dlq"]["depth"] >= 0 and body["outbox"]["backlog"] == 1


@pytest.mark.parametrize("who, status", [("anonymous", 401), ("api_client", 401), ("non_staff", 403)])
def test_diagnostics_is_staff_only(who, status, api_client, anon_client):
    import base64

    from django.contrib.auth.models import User

    client = {"anonymous": anon_client, "api_client": api_client}.get(who)
    if who == "non_staff":
        User.objects.create_user("someone", password="pw-someone")
        client = anon_client
        client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"someone:pw-someone").decode())
    response = client.get("/ops/diagnostics")
    assert response.status_code == status
    assert "rabbitmq" not in response.content.decode()


DIAGNOSTICS = """
import base64, json, django; django.setup()
from django.contrib.auth.models import User
from django.test import Client
User.objects.filter(username="diag").delete()
User.objects.create_user("diag", password="pw-diag", is_staff=True)
response = Client().get("/ops/diagnostics", HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"diag:pw-diag").decode())
User.objects.filter(username="diag").delete()
print(json.dumps({"http_status": response.status_code, **response.json()}))
"""


def test_diagnostics_gives_staff_the_error_text_of_a_down_broker():
    env = subprocess_env(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//")
    result = subprocess.run([sys.executable, "-c", DIAGNOSTICS], env=env, capture_output=True, text=True, timeout=60)
    body = json.loads(result.stdout.strip().splitlines()[-1])
    assert body["http_status"] == 200
    assert body["rabbitmq"]["status"] == "error" and "Connection refused" in body["rabbitmq"]["error"]
    assert body["dlq"]["status"] == "error"
    assert (body["database"]["status"], body["redis"]["status"]) == ("ok", "ok")
