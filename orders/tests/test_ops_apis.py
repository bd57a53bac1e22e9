"""GET /ops/diagnostics (orders/ops_apis.py), staff only: every backing service's state, with the error
text of a down one."""

import json
import subprocess
import sys

import pytest

from conftest import subprocess_env

pytestmark = pytest.mark.django_db


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
from orders.tests.factories import staff_user_create
staff_user_create("diag", password="pw-diag", permissions=("orders.view_diagnostics",))
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
