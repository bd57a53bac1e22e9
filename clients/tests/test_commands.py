"""`manage.py api_client`: create prints the key alone on the last line; list, key (rotation), revoke."""

import io

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test.utils import override_settings

from clients.tests.factories import api_client_for
from orders.models import Product

pytestmark = pytest.mark.django_db
ORDER = {"customer_id": "c-1", "items": [{"sku": "ABC", "qty": 1}]}


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("api_client", *args, stdout=out)
    return out.getvalue()


def test_create_prints_a_working_key_alone_on_the_last_line(catalog: dict[str, Product]) -> None:
    key = run("create", "web-shop").splitlines()[-1]
    assert " " not in key and "." in key
    assert api_client_for(key).post("/orders", ORDER, format="json").status_code == 202


def test_create_refuses_an_existing_name_and_a_bad_name() -> None:
    run("create", "web-shop")
    with pytest.raises(CommandError, match="already exists"):
        run("create", "web-shop")
    with pytest.raises(CommandError):
        run("create", "not a slug")


def test_rotate_with_key_then_revoke_the_old_one_by_prefix(catalog: dict[str, Product]) -> None:
    old = run("create", "mobile").splitlines()[-1]
    new = run("key", "mobile", "--label", "2026-12").splitlines()[-1]
    listing = run("list")
    assert old.split(".")[0] in listing and new.split(".")[0] in listing
    assert old not in listing and new not in listing  # keys are never shown again
    run("revoke", old.split(".")[0])
    assert api_client_for(old).get("/orders").status_code == 401
    assert api_client_for(new).get("/orders").status_code == 200
    assert "revoked" in run("list")


def test_revoke_all_and_unknown_targets(catalog: dict[str, Product]) -> None:
    key = run("create", "partner").splitlines()[-1]
    assert "Revoked 1 key(s)" in run("revoke", "--all", "partner")
    assert api_client_for(key).get("/orders").status_code == 401
    with pytest.raises(CommandError):
        run("revoke", "nosuchpf")
    with pytest.raises(CommandError):
        run("revoke", "--all", "nobody")


def test_revoke_all_default_revokes_secret_token_and_a_new_value_works(catalog: dict[str, Product]) -> None:
    # given: SECRET_TOKEN works
    old_token = settings.SECRET_TOKEN
    assert api_client_for(old_token).get("/orders").status_code == 200

    # when: every key of `default` is revoked
    out = run("revoke", "--all", "default")

    # then: SECRET_TOKEN's value is one of them and is refused from now on; `list` shows it revoked
    assert "Revoked 1 key(s)" in out and "set a new SECRET_TOKEN" in out
    assert api_client_for(old_token).get("/orders").status_code == 401
    assert any("revoked" in line and "SECRET_TOKEN" in line for line in run("list").splitlines())
    # a rotated SECRET_TOKEN (a new value in the environment) is a new, working key
    rotated = "rotated-" + "k" * 40
    with override_settings(SECRET_TOKEN=rotated):
        assert api_client_for(rotated).get("/orders").status_code == 200
        assert api_client_for(old_token).get("/orders").status_code == 401
