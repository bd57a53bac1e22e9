"""Issue: security checks. Every write endpoint refuses missing or wrong credentials (the list comes
from the OpenAPI schema, so a new endpoint is covered without editing this file), operator endpoints
and the admin refuse non-staff, the bearer token is compared in constant time, production settings
refuse to start without their secrets and DEBUG is off by default, and Celery speaks JSON only.
(The worker side, a pickled message dead-lettered and never run, is e2e/test_security_worker.py.)"""
import ast
import base64
import hmac
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.test import APIClient

import clients.auth
from orders.models import DeadLetter, DeadLetterStatus, Order

BASE_DIR = Path(__file__).resolve().parents[2]
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
    return letter.status == DeadLetterStatus.ARCHIVED and not letter.redriven_by and Order.objects.count() == orders_before


# --- every write endpoint ---------------------------------------------------------------------
def test_the_schema_lists_the_write_endpoints():
    assert {("POST", "/orders/"), ("POST", "/ops/dead-letters/{id}/redrive/"), ("POST", "/ops/dead-letters/{id}/discard/"), ("POST", "/ops/dead-letters/redrive/")} <= {
        (m, p) for m, p, _ in WRITE_OPERATIONS
    }


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
    response = client.generic(method, _url(path, letter), data=_json(_body(path, letter)), content_type="application/json")
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
def test_operator_writes_refuse_the_bearer_token_holder_non_staff_and_anonymous(api_client, letter, method, path, operation):
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
        response = client.generic(method, _url(path, letter), data=_json(_body(path, letter)), content_type="application/json")
        assert response.status_code in allowed_statuses, (who, response.status_code, response.content)
        assert _nothing_changed(letter, before), who


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/ops/dead-letters", "/ops/dead-letters/groups", "/ops/dead-letters/{id}"])
def test_operator_reads_refuse_the_bearer_token_holder(api_client, letter, path):
    assert api_client.get(_url(path, letter)).status_code in (401, 403)


# --- admin: staff only ----------------------------------------------------------------------
ADMIN_PAGES = ["/admin/", "/admin/orders/order/", "/admin/orders/deadletter/", "/admin/orders/product/", "/admin/auth/user/"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_refuses_anonymous_and_non_staff(client, path):
    assert client.get(path).status_code == 302
    User.objects.create_user("bob", password="pw-bob")
    client.login(username="bob", password="pw-bob")
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_admin_login_refuses_a_non_staff_user(client):
    User.objects.create_user("bob", password="pw-bob")
    response = client.post("/admin/login/?next=/admin/", {"username": "bob", "password": "pw-bob", "next": "/admin/"})
    assert response.status_code == 200  # the form again, with an error; no redirect into the admin
    assert "staff account" in response.content.decode()
    assert client.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_admin_actions_refuse_non_staff(client, letter):
    User.objects.create_user("bob", password="pw-bob")
    client.login(username="bob", password="pw-bob")
    response = client.post(
        "/admin/orders/deadletter/", {"action": "redrive", "_selected_action": [letter.pk], "index": 0}
    )
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert _nothing_changed(letter, Order.objects.count())


# --- constant-time token comparison ---------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    "presented",
    [
        pytest.param(lambda t: "".join("x" if c != "x" else "y" for c in t), id="equal length"),
        pytest.param(lambda t: t[:-1], id="shorter"),
        pytest.param(lambda t: t + "-and-more", id="longer"),
        pytest.param(lambda t: "t", id="one char"),
    ],
)
def test_the_token_goes_through_hmac_compare_digest_whatever_its_length(monkeypatch, presented):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(clients.auth.hmac, "compare_digest", spy)
    token = presented(settings.SECRET_TOKEN)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post("/orders", VALID_ORDER, format="json")
    assert response.status_code == 401
    # one comparison, of the full presented token against the full secret: no early exit on length
    assert calls == [(token.encode(), settings.SECRET_TOKEN.encode())]


@pytest.mark.django_db
def test_the_right_token_also_goes_through_hmac_compare_digest(monkeypatch, catalog):
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(clients.auth.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.SECRET_TOKEN}")
    assert client.post("/orders", VALID_ORDER, format="json").status_code == 202
    assert calls == [(settings.SECRET_TOKEN.encode(), settings.SECRET_TOKEN.encode())]


def test_client_auth_compares_the_token_only_with_hmac_compare_digest():
    assert clients.auth.hmac is hmac
    tree = ast.parse(textwrap.dedent(inspect.getsource(clients.auth)))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "hmac.compare_digest"
    ]
    assert calls and any("SECRET_TOKEN" in ast.unparse(node) for node in calls)
    # no `==`, `!=`, `in` (short-circuiting, timing-leaky) comparison touches the token
    leaky = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Compare) and "SECRET_TOKEN" in ast.unparse(node)]
    assert leaky == []


# --- settings: DEBUG off by default, secrets required in production ---------------------------
_PROBE = """
import sys
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
try:
    debug = settings.DEBUG
except ImproperlyConfigured as exc:
    print(f"ImproperlyConfigured: {exc}")
    sys.exit(3)
print(f"DEBUG={debug} SECRET_KEY={settings.SECRET_KEY} SECRET_TOKEN={settings.SECRET_TOKEN}")
"""


def _import_production_settings(**env) -> subprocess.CompletedProcess:
    """Import orders_project.settings (what production runs) in a process with a clean environment."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DJANGO_SETTINGS_MODULE": "orders_project.settings", **env}
    return subprocess.run([sys.executable, "-c", _PROBE], cwd=BASE_DIR, env=clean, capture_output=True, text=True, timeout=60)


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = _import_production_settings(SECRET_TOKEN="t")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ImproperlyConfigured" in result.stdout and "DJANGO_SECRET_KEY" in result.stdout


def test_production_settings_refuse_to_start_without_the_api_token():
    result = _import_production_settings(DJANGO_SECRET_KEY="k")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ImproperlyConfigured" in result.stdout and "SECRET_TOKEN" in result.stdout


def test_debug_is_off_by_default():
    key, token = "kQ7xZ" * 10, "tW4mP" * 7  # long enough for production (settings.SECRET_MIN_LENGTHS)
    result = _import_production_settings(DJANGO_SECRET_KEY=key, SECRET_TOKEN=token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"DEBUG=False SECRET_KEY={key} SECRET_TOKEN={token}" in result.stdout


def test_the_dev_defaults_exist_only_with_debug_on():
    result = _import_production_settings(DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DEBUG=True" in result.stdout


# --- Celery: JSON only ----------------------------------------------------------------------
def test_celery_accepts_and_writes_json_only():
    from orders_project.celery import app

    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_SERIALIZER == settings.CELERY_RESULT_SERIALIZER == "json"
    # what the app actually runs with, not only what settings.py says
    assert list(app.conf.accept_content) == ["json"]
    assert app.conf.result_accept_content in (None, ["json"])  # None: falls back to accept_content
    assert (app.conf.task_serializer, app.conf.result_serializer, app.conf.event_serializer) == ("json", "json", "json")


def test_workers_dead_letter_messages_they_cannot_decode():
    from core.celery_security import RejectUndecodableMessages
    from orders_project.celery import app

    assert RejectUndecodableMessages in app.steps["consumer"]
