"""Who may call each endpoint: every write endpoint refuses missing or wrong credentials (the list comes
from the OpenAPI schema, so a new endpoint is covered without editing this file), and the operator
endpoints refuse non-staff. Elsewhere: the constant-time token comparison in clients/tests/test_auth.py;
the admin, staff only, in orders_project/tests/test_admin_site.py and dead_letters/test_admin.py;
production settings and Celery's JSON-only wire format in orders_project/tests/; the worker side (a
pickled message dead-lettered and never run) in e2e/test_security_worker.py."""

import base64
import json

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from orders.models import DeadLetter, DeadLetterStatus, Order

VALID_ORDER = {"customer_id": "sec-1", "items": [{"sku": "ABC", "qty": 1}]}


def _schema_write_operations() -> list[tuple[str, str, dict]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method.upper(), path, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in ("post", "put", "patch", "delete")
    ]


WRITE_OPERATIONS = _schema_write_operations()
WRITE_IDS = [f"{method} {path}" for method, path, _ in WRITE_OPERATIONS]
OPS_WRITES = [(m, p, o) for m, p, o in WRITE_OPERATIONS if p.startswith("/ops/")]


def _wrong_tokens() -> dict[str, str]:
    token = settings.SECRET_TOKEN
    same_length = "".join("x" if c != "x" else "y" for c in token)
    return {
        "missing": None,
        "empty bearer": "Bearer ",
        "same length, wrong": f"Bearer {same_length}",
        "one char off": f"Bearer {token[:-1]}{'a' if token[-1] != 'a' else 'b'}",
        "prefix of the token": f"Bearer {token[:-1]}",
        "token plus a char": f"Bearer {token}x",
        "much longer": f"Bearer {token * 8}",
        "other case": f"Bearer {token.upper()}",
        "no scheme": token,
        "other scheme": f"Token {token}",
        "basic with the token": "Basic " + base64.b64encode(f"api:{token}".encode()).decode(),
        "extra part": f"Bearer {token} {token}",
    }


WRONG_TOKENS = _wrong_tokens()


def _url(path: str, letter: DeadLetter) -> str:
    return path.replace("{id}", str(letter.pk))


def _body(path: str, letter: DeadLetter) -> dict:
    if path.startswith("/orders"):
        return VALID_ORDER
    if path.endswith("/dead-letters/redrive/"):
        return {"ids": [letter.pk]}
    return {}


def _json(data) -> str:
    return json.dumps(data)


def _nothing_changed(letter: DeadLetter, orders_before: int) -> bool:
    letter.refresh_from_db()
    return (
        letter.status == DeadLetterStatus.ARCHIVED and not letter.redriven_by and Order.objects.count() == orders_before
    )


# --- every write endpoint ---------------------------------------------------------------------
def test_the_schema_lists_the_write_endpoints():
    assert {
        ("POST", "/orders/"),
        ("POST", "/ops/dead-letters/{id}/redrive/"),
        ("POST", "/ops/dead-letters/{id}/discard/"),
        ("POST", "/ops/dead-letters/redrive/"),
    } <= {(m, p) for m, p, _ in WRITE_OPERATIONS}


@pytest.mark.parametrize("method, path, operation", WRITE_OPERATIONS, ids=WRITE_IDS)
def test_no_write_operation_is_documented_as_anonymous(method, path, operation):
    security = operation.get("security") or []
    assert security and {} not in security, f"{method} {path} allows anonymous callers: {security}"


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", list(WRONG_TOKENS.values()), ids=list(WRONG_TOKENS))
@pytest.mark.parametrize("method, path, operation", WRITE_OPERATIONS, ids=WRITE_IDS)
def test_every_write_endpoint_refuses_missing_or_wrong_credentials(letter, method, path, operation, authorization):
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    before = Order.objects.count()
    response = client.generic(
        method, _url(path, letter), data=_json(_body(path, letter)), content_type="application/json"
    )
    assert response.status_code == 401, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] in ("not_authenticated", "authentication_failed")
    assert _nothing_changed(letter, before)


@pytest.mark.django_db
def test_post_orders_with_the_token_is_accepted(api_client, letter):
    # the control for the refusals above: same body, the right token
    assert api_client.post("/orders", VALID_ORDER, format="json").status_code == 202


@pytest.mark.django_db
def test_post_orders_refuses_a_logged_in_user_that_is_not_staff(letter):
    User.objects.create_user("bob", password="pw-bob")
    client = APIClient()
    client.login(username="bob", password="pw-bob")
    before = Order.objects.count()
    assert client.post("/orders", VALID_ORDER, format="json").status_code == 403
    assert Order.objects.count() == before


# --- operator endpoints: staff only ----------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("method, path, operation", OPS_WRITES, ids=[f"{m} {p}" for m, p, _ in OPS_WRITES])
def test_operator_writes_refuse_the_bearer_token_holder_non_staff_and_anonymous(
    api_client, letter, method, path, operation
):
    User.objects.create_user("bob", password="pw-bob")
    non_staff = APIClient()
    non_staff.login(username="bob", password="pw-bob")
    non_staff_basic = APIClient()
    non_staff_basic.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"bob:pw-bob").decode())
    before = Order.objects.count()
    for who, client, allowed_statuses in [
        ("bearer token holder", api_client, (401, 403)),
        ("anonymous", APIClient(), (401,)),
        ("non-staff session", non_staff, (403,)),
        ("non-staff basic auth", non_staff_basic, (403,)),
    ]:
        response = client.generic(
            method, _url(path, letter), data=_json(_body(path, letter)), content_type="application/json"
        )
        assert response.status_code in allowed_statuses, (who, response.status_code, response.content)
        assert _nothing_changed(letter, before), who


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/ops/dead-letters", "/ops/dead-letters/groups", "/ops/dead-letters/{id}"])
def test_operator_reads_refuse_the_bearer_token_holder(api_client, letter, path):
    assert api_client.get(_url(path, letter)).status_code in (401, 403)
