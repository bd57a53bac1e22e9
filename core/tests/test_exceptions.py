"""The API's error handler (core/exceptions.py): a database outage is a 503 to retry, never a 500."""

import pytest

from conftest import django_subprocess

pytestmark = pytest.mark.django_db


def last_line_with_the_database_down(code: str) -> str:
    """The last line `code` prints in a Django process whose database does not answer (nothing listens)."""
    result = django_subprocess(code, DATABASE_URL="postgres://postgres@127.0.0.1:1/nope")
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr[-2000:]
    return lines[-1]


def test_api_database_outage_is_503_not_500() -> None:
    code = """
import django; django.setup()
from django.conf import settings
from django.test import Client
r = Client().post(
    "/orders",
    {"customer_id": "1", "items": [{"sku": "ABC", "qty": 1}]},
    content_type="application/json",
    HTTP_AUTHORIZATION="Bearer " + settings.SECRET_TOKEN,
)
print(r.status_code, r["Content-Type"], r.get("Retry-After"), r.json()["code"])
"""
    assert last_line_with_the_database_down(code) == "503 application/json 1 service_unavailable"


def test_a_database_outage_outside_the_api_is_503_not_500() -> None:
    """The admin's login page reads the session in a middleware and the page is not a DRF view: handler500
    (core.exceptions.server_error) turns the broken database into a 503 with Retry-After there too."""
    code = """
import django; django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
client.cookies["sessionid"] = "x" * 32  # a session to load: the database is read before the view runs
r = client.get("/admin/", HTTP_HOST="localhost")
print(r.status_code, r["Content-Type"], r.get("Retry-After"), r.json()["code"])
"""
    assert last_line_with_the_database_down(code) == "503 application/json 1 service_unavailable"
