"""Password guessing (core/login_guard.py): attempts are counted per address and per username in the real
Redis before any password is hashed; past the limit, HTTP Basic on /ops gets a 429 and the admin's and the
browsable API's login pages a lockout page, both with Retry-After, and no hash is computed."""

import base64
from collections.abc import Iterator
from unittest import mock

import pytest
from django.contrib.auth import hashers, password_validation
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client
from django.test.utils import override_settings

pytestmark = pytest.mark.django_db
LIMITS = {"LOGIN_FAILURE_LIMIT_PER_IP": 100, "LOGIN_FAILURE_LIMIT_PER_USERNAME": 3, "LOGIN_LOCKOUT_SECONDS": 600}


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def ops_user() -> User:
    return User.objects.create_superuser("ops", "ops@example.com", "pw-ops-long-enough")


@pytest.fixture
def hashes() -> Iterator[mock.MagicMock]:
    """Counts password hashes: checking a password and hashing a dummy one for an unknown user both get a hasher."""
    with mock.patch.object(hashers, "get_hasher", wraps=hashers.get_hasher) as spy:
        yield spy


@override_settings(**LIMITS)
def test_basic_auth_is_locked_out_per_username_with_429_before_any_hash(ops_user: User, hashes: mock.MagicMock) -> None:
    # given: three wrong passwords for `ops`, each a 401
    client = Client(REMOTE_ADDR="10.1.0.1")
    wrong = [client.get("/ops/diagnostics", HTTP_AUTHORIZATION=basic("ops", f"guess{i}")) for i in range(3)]
    assert [r.status_code for r in wrong] == [401, 401, 401]
    hashes.reset_mock()

    # when: the right password, from another address
    response = Client(REMOTE_ADDR="10.1.0.2").get(
        "/ops/diagnostics", HTTP_AUTHORIZATION=basic("ops", "pw-ops-long-enough")
    )

    # then: refused unhashed, with the error shape and Retry-After
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 600
    hashes.assert_not_called()


@override_settings(**{**LIMITS, "LOGIN_FAILURE_LIMIT_PER_IP": 4, "LOGIN_FAILURE_LIMIT_PER_USERNAME": 100})
def test_basic_auth_is_locked_out_per_address_across_usernames(ops_user: User, hashes: mock.MagicMock) -> None:
    # given: four guesses from one address, each at another (unknown) username
    client = Client(REMOTE_ADDR="10.2.0.1")
    assert [
        client.get("/ops/diagnostics", HTTP_AUTHORIZATION=basic(f"user{i}", "x")).status_code for i in range(4)
    ] == [401] * 4
    hashes.reset_mock()

    # when / then: that address is refused, unhashed, even with right credentials; another address is served
    assert client.get("/ops/diagnostics", HTTP_AUTHORIZATION=basic("ops", "pw-ops-long-enough")).status_code == 429
    hashes.assert_not_called()
    other = Client(REMOTE_ADDR="10.2.0.2").get(
        "/ops/diagnostics", HTTP_AUTHORIZATION=basic("ops", "pw-ops-long-enough")
    )
    assert other.status_code == 200


@override_settings(**LIMITS)
def test_successful_basic_logins_are_not_counted(ops_user: User) -> None:
    # an operator's script authenticates every request with Basic: its successes never lock it out
    client = Client(REMOTE_ADDR="10.3.0.1")
    good = basic("ops", "pw-ops-long-enough")
    assert {client.get("/ops/diagnostics", HTTP_AUTHORIZATION=good).status_code for _ in range(6)} == {200}


@pytest.mark.parametrize("login_url", ["/admin/login/", "/api-auth/login/"])
@override_settings(**LIMITS)
def test_login_pages_show_a_lockout_page_with_retry_after_before_any_hash(
    ops_user: User, hashes: mock.MagicMock, login_url: str
) -> None:
    # given: three wrong passwords on the login form
    client = Client(REMOTE_ADDR="10.4.0.1")
    for i in range(3):
        failed = client.post(login_url, {"username": "ops", "password": f"guess{i}"})
        assert failed.status_code == 200  # the form again, with its error
    hashes.reset_mock()

    # when: the right password
    response = client.post(login_url, {"username": "ops", "password": "pw-ops-long-enough"})

    # then: a lockout page, not a login; no hash computed
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert 1 <= int(response["Retry-After"]) <= 600
    assert "_auth_user_id" not in client.session
    hashes.assert_not_called()


def test_password_validators_refuse_a_short_common_password(ops_user: User) -> None:
    with pytest.raises(ValidationError):
        password_validation.validate_password("x", user=ops_user)
    with pytest.raises(ValidationError):
        password_validation.validate_password("password123", user=ops_user)
    password_validation.validate_password("correct-horse-battery-staple", user=ops_user)
