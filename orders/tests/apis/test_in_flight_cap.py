"""One client cannot stall every client's orders: a cap on its orders in flight (ORDERS_IN_FLIGHT_MAX, a
429 `too_many_orders_in_flight` past it) and a per-client request rate a real API would use (100/s)."""

import json
import os
import subprocess
import sys

import pytest

from clients.tests.factories import api_client_for, client_with_key
from orders import services
from orders.models import Order

pytestmark = pytest.mark.django_db
ORDER = {"customer_id": "c-1", "items": [{"sku": "ABC", "qty": 1}]}


@pytest.fixture
def shop():
    return api_client_for(client_with_key("shop")[1])


@pytest.fixture
def partner():
    return api_client_for(client_with_key("partner")[1])


def test_a_client_past_its_orders_in_flight_gets_a_429_and_other_clients_do_not(settings, catalog, shop, partner):
    # given: a cap of 3 orders in flight, and a client with 3 pending orders
    settings.ORDERS_IN_FLIGHT_MAX = 3
    accepted = [shop.post("/orders", ORDER, format="json", HTTP_X_IDEMPOTENCY_KEY=f"k-{i}") for i in range(3)]
    assert [r.status_code for r in accepted] == [202, 202, 202]
    # when
    refused = shop.post("/orders", ORDER, format="json")
    # then: a 429 with its own code, nothing created; another client is not held back
    assert refused.status_code == 429
    assert refused.json()["code"] == "too_many_orders_in_flight"
    assert refused.json()["extra"] == {"in_flight_max": 3}
    assert Order.objects.count() == 3
    assert partner.post("/orders", ORDER, format="json").status_code == 202
    # a replay of an accepted order (its idempotency key) still answers that order
    replay = shop.post("/orders", ORDER, format="json", HTTP_X_IDEMPOTENCY_KEY="k-0")
    assert (replay.status_code, replay.json()["order_id"]) == (202, accepted[0].json()["order_id"])
    # and once one of its orders is done (failed here), the client may post again
    services.order_fail(order_id=accepted[1].json()["order_id"], stage="process", reason="x")
    assert shop.post("/orders", ORDER, format="json").status_code == 202


def test_the_defaults_are_a_real_apis_rate_and_a_cap_on_orders_in_flight():
    # the settings module alone, with none of the test environment's overrides of these
    env = {k: v for k, v in os.environ.items() if k not in ("THROTTLE_CLIENT_RATE", "ORDERS_IN_FLIGHT_MAX")}
    env.update(DJANGO_SETTINGS_MODULE="orders_project.settings", DJANGO_DEBUG="true")
    env.pop("DEMO_FAULTS_ENABLED", None)
    code = (
        "import json; from django.conf import settings as s;"
        "print(json.dumps([s.THROTTLE_RATES['client'], s.ORDERS_IN_FLIGHT_MAX, s.DEMO_FAULTS_ENABLED]))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["100/s", 1000, False]
