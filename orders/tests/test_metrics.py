"""The pipeline's metrics (orders/metrics.py) on /metrics."""

import pytest

pytestmark = pytest.mark.django_db


def test_metrics_exposes_pipeline_counters(api_client, client):
    api_client.post(
        "/orders", {"customer_id": "m", "source": "web", "items": [{"sku": "ABC", "qty": 1}]}, format="json"
    )
    response = client.get("/metrics", HTTP_HOST="10.0.0.7:8000")
    text = response.content.decode()
    assert response.status_code == 200
    assert 'orders_accepted_total{source="web"}' in text
    for name in (
        "order_stage_duration_seconds",
        "orders_outbox_backlog",
        "orders_outbox_oldest_age_seconds",
        "orders_dlq_depth",
        "orders_dead_lettered_total",
        "order_task_retries_total",
    ):
        assert name in text
