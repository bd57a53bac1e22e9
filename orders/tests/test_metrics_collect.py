"""Scrape-time gauges (orders/metrics_collect.py) on /metrics: RabbitMQ's and Redis's health as gauges
(a down broker is a 0, not an error), one kept broker connection for every probe and scrape, the outbox
backlog."""

import json
import subprocess
import sys

import pytest

from conftest import subprocess_env

pytestmark = pytest.mark.django_db


def test_metrics_shows_rabbitmq_and_redis_health_as_gauges(client):
    from orders import metrics_collect

    metrics_collect.broker_check.reset()
    metrics_collect.redis_check.reset()
    text = client.get("/metrics").content.decode()
    for service in ("database", "rabbitmq", "redis"):
        assert f'orders_backing_service_up{{service="{service}"}} 1.0' in text


PROBE = """
import json, django; django.setup()
from django.test import Client
client = Client()
response = client.get("{path}")
print(json.dumps({{"http_status": response.status_code, "body": response.content.decode()}}))
"""


def probe(path: str, **env) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(path=path)],
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


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


def test_metrics_outbox_backlog_counts_unpublished_rows(api_client, client):
    from orders import metrics_collect

    metrics_collect.database_gauges.reset()  # an earlier scrape in this process is cached
    api_client.post("/orders", {"customer_id": "m", "items": [{"sku": "ABC", "qty": 1}]}, format="json")
    text = client.get("/metrics").content.decode()
    # inside the test transaction the fast path never ran: the row is still unpublished
    assert "orders_outbox_backlog 1.0" in text
