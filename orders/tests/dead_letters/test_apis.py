"""The operator REST API of dead letters (orders/dead_letters/apis.py): staff only; list, filter, show,
redrive (one, a group, a list) and discard."""

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from orders import services
from orders.models import DeadLetterStatus
from orders.tests.factories import dead_letter_archived, order_create

pytestmark = pytest.mark.django_db
# A POST under Basic auth says it is JSON, as no cross-site form can (core/operator_auth.py).
JSON = "application/json"


PATHS = [
    ("get", "/ops/dead-letters"),
    ("get", "/ops/dead-letters/groups"),
    ("get", "/ops/dead-letters/{id}"),
    ("post", "/ops/dead-letters/{id}/redrive"),
    ("post", "/ops/dead-letters/{id}/discard"),
    ("post", "/ops/dead-letters/redrive"),
]


@pytest.mark.parametrize("method, path", PATHS)
def test_anonymous_is_401(letter, method, path):
    response = getattr(APIClient(), method)(path.format(id=letter.pk), {}, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize("method, path", PATHS)
def test_non_staff_user_and_api_token_are_403(letter, method, path, api_client):
    User.objects.create_user("bob", password="pw-bob")
    client = APIClient()
    client.login(username="bob", password="pw-bob")
    assert getattr(client, method)(path.format(id=letter.pk), {}, format="json").status_code == 403
    # the order-writing bearer token is not an operator credential
    assert getattr(api_client, method)(path.format(id=letter.pk), {}, format="json").status_code in (401, 403)


def test_staff_lists_filters_and_shows(staff_client, letter):
    listing = staff_client.get("/ops/dead-letters?status=archived").json()
    assert [d["id"] for d in listing["results"]] == [letter.pk]
    assert staff_client.get("/ops/dead-letters?status=redriven").json()["count"] == 0
    assert staff_client.get(f"/ops/dead-letters?order_id={letter.order_id}").json()["count"] == 1
    detail = staff_client.get(f"/ops/dead-letters/{letter.pk}").json()
    assert detail["headers"]["task"] == "enrichment.enrich"
    group = staff_client.get("/ops/dead-letters/groups").json()[0]
    assert (group["group"], group["task"], group["failure"], group["count"]) == (
        "enrichment.enrich:rejected",
        "enrichment.enrich",
        "rejected",
        1,
    )
    assert staff_client.get("/ops/dead-letters/999999").status_code == 404


def test_staff_redrives_one(staff_client, letter, clean_queues):
    response = staff_client.post(f"/ops/dead-letters/{letter.pk}/redrive", content_type=JSON)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["redriven_by"]) == ("redriven", "staff:ops")
    assert staff_client.post(f"/ops/dead-letters/{letter.pk}/redrive", content_type=JSON).status_code == 409


def test_redrive_of_completed_order_is_409(staff_client, catalog, clean_queues):
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    services.order_enrichment_store(order_id=order.id, data={})
    services.order_finalize(order_id=order.id)
    letter = dead_letter_archived(order_id=order.id)
    response = staff_client.post(f"/ops/dead-letters/{letter.pk}/redrive", content_type=JSON)
    assert response.status_code == 409
    assert response.json()["code"] == "redrive_refused"
    assert "already completed" in response.json()["message"]


def test_bulk_redrive_by_group_and_validation(staff_client, letter, clean_queues):
    assert staff_client.post("/ops/dead-letters/redrive", {}, format="json").status_code == 400
    assert staff_client.post("/ops/dead-letters/redrive", {"all": True, "ids": [1]}, format="json").status_code == 400
    response = staff_client.post("/ops/dead-letters/redrive", {"group": "enrichment.enrich:rejected"}, format="json")
    assert response.json() == {"redriven": [letter.pk], "refused": {}}


def test_discard(staff_client, letter):
    response = staff_client.post(f"/ops/dead-letters/{letter.pk}/discard", content_type=JSON)
    assert response.json()["status"] == DeadLetterStatus.DISCARDED
    assert staff_client.post(f"/ops/dead-letters/{letter.pk}/discard", content_type=JSON).status_code == 409
