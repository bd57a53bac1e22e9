"""Issue 27 MEDIUM 6: /metrics is not public through the Ingress (answered only for an IP-address Host, a
scrape by the pod's address, or METRICS_ALLOWED_HOSTS), and its database gauges are cached for
DIAGNOSTICS_CACHE_SECONDS instead of four aggregate queries per call."""

from pathlib import Path

import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders import metrics_collect

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("host", ["orders.example.com", "orders.localhost", "web.evil.example:8000"])
def test_metrics_is_refused_for_a_public_or_unknown_host(client, host):
    response = client.get("/metrics", HTTP_HOST=host)
    assert response.status_code == 404
    assert b"orders_" not in response.content


@pytest.mark.parametrize("host", ["10.244.1.17:8000", "[fd00::17]:8000", "127.0.0.1:8000", "localhost:8000"])
def test_metrics_answers_a_scrape_by_the_pods_address(client, host):
    response = client.get("/metrics", HTTP_HOST=host)
    assert response.status_code == 200
    assert b"orders_outbox_backlog" in response.content


def test_metrics_database_gauges_are_queried_once_per_cache_period(client, settings):
    # given: a cold cache and a cache period longer than the test
    settings.DIAGNOSTICS_CACHE_SECONDS = 60
    metrics_collect.database_gauges.reset()
    # when: three scrapes in a row
    with CaptureQueriesContext(connection) as first:
        assert client.get("/metrics", HTTP_HOST="10.0.0.7:8000").status_code == 200
    with CaptureQueriesContext(connection) as later:
        for _ in range(2):
            assert client.get("/metrics", HTTP_HOST="10.0.0.7:8000").status_code == 200
    # then: the aggregates ran on the first scrape only
    assert len(first.captured_queries) >= 3  # outbox, orders in flight, webhooks
    assert later.captured_queries == []


def test_compose_prometheus_scrapes_web_by_an_allowed_host():
    targets = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus-compose.yml").read_text())
    (web,) = next(job for job in targets["scrape_configs"] if job["job_name"] == "web")["static_configs"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    allowed = compose["services"]["web"]["environment"]["METRICS_ALLOWED_HOSTS"].split(",")
    assert [t.split(":")[0] for t in web["targets"]] == ["web"] and "web" in allowed
