"""The operator API's POSTs (redrive, discard) cannot be triggered from another site: not with the Basic
credentials a staff browser caches, not with its session cookie (core/operator_auth.py)."""

import base64
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from orders import services
from orders.models import DeadLetter, DeadLetterStatus
from orders.tests.factories import catalog_create, dead_letter_archived, order_create, staff_user_create

pytestmark = pytest.mark.django_db
BASIC = "Basic " + base64.b64encode(b"ops:pw-ops").decode()


@pytest.fixture
def letter() -> DeadLetter:
    staff_user_create("ops", password="pw-ops")
    catalog_create()
    order = order_create(items=[("ABC", 1)])
    services.order_process(order_id=order.id)
    services.order_fail(order_id=order.id, stage="enrich", reason="x")
    return dead_letter_archived(order_id=order.id)


def assert_untouched(letter: DeadLetter) -> None:
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetterStatus.ARCHIVED


@pytest.mark.parametrize("action", ["redrive", "discard"])
@pytest.mark.parametrize(
    "content_type,body",
    [
        ("application/x-www-form-urlencoded", "x=1"),  # an auto-submitted cross-site <form>
        ("multipart/form-data; boundary=b", "--b--\r\n"),  # <form enctype=multipart/form-data>
        ("text/plain", "{}"),  # <form enctype=text/plain> or a no-cors fetch with a body
        (None, ""),  # a no-cors fetch without a body: no Content-Type at all
    ],
)
def test_basic_auth_post_a_cross_site_page_can_send_is_refused(
    letter: DeadLetter, action: str, content_type: str | None, body: str
) -> None:
    extra: dict[str, Any] = {"CONTENT_TYPE": content_type} if content_type else {}
    response = Client().generic(
        "POST", f"/ops/dead-letters/{letter.pk}/{action}", body, HTTP_AUTHORIZATION=BASIC, **extra
    )
    assert response.status_code == 403, response.content
    assert "Content-Type: application/json" in response.json()["message"]
    assert_untouched(letter)


def test_basic_auth_post_with_json_content_type_is_served(letter: DeadLetter) -> None:
    # what curl, scripts and the e2e test send: a cross-site page cannot without a CORS preflight
    response = Client().post(
        f"/ops/dead-letters/{letter.pk}/discard", content_type="application/json", HTTP_AUTHORIZATION=BASIC
    )
    assert response.status_code == 200, response.content
    assert DeadLetter.objects.get(pk=letter.pk).status == DeadLetterStatus.DISCARDED


def test_basic_auth_reads_need_no_content_type(letter: DeadLetter) -> None:
    assert Client().get(f"/ops/dead-letters/{letter.pk}", HTTP_AUTHORIZATION=BASIC).status_code == 200


def test_wrong_basic_credentials_are_still_401(letter: DeadLetter) -> None:
    wrong = "Basic " + base64.b64encode(b"ops:nope").decode()
    response = Client().post(
        f"/ops/dead-letters/{letter.pk}/discard",
        "x=1",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=wrong,
    )
    assert response.status_code == 401
    assert_untouched(letter)


@pytest.mark.parametrize("action", ["redrive", "discard"])
def test_staff_session_post_without_csrf_token_is_refused(letter: DeadLetter, action: str) -> None:
    browser = Client(enforce_csrf_checks=True)  # the cookie rides along with a cross-site form; the token cannot
    browser.force_login(User.objects.get(username="ops"))
    response = browser.post(f"/ops/dead-letters/{letter.pk}/{action}", {"x": "1"})
    assert response.status_code == 403, response.content
    assert "CSRF" in response.json()["message"]
    assert_untouched(letter)


def test_staff_session_post_with_csrf_token_is_served(letter: DeadLetter) -> None:
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(User.objects.get(username="ops"))
    browser.get("/admin/")  # sets the csrftoken cookie, as any page with a form does
    token = browser.cookies["csrftoken"].value
    response = browser.post(f"/ops/dead-letters/{letter.pk}/discard", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content
