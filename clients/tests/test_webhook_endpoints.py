"""A client's webhook endpoint: `api_client set-webhook` (and the admin) store it and print its signing
secret alone on the last line; rotation keeps the old secret signing for the grace period."""

import base64
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from clients import selectors, services
from clients.models import ApiClient, WebhookEndpoint
from orders.webhooks.signing import webhook_headers

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("api_client", *args, stdout=out)
    return out.getvalue()


def verifies(secret: str, headers: dict, body: str) -> bool:
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


def signed_now(endpoint: WebhookEndpoint, *, at: datetime | None = None) -> tuple[dict, str]:
    """A delivery's headers as the endpoint's active secrets would sign it now (or `at`)."""
    body = '{"type":"order.completed"}'
    headers = webhook_headers(
        webhook_id="msg_1",
        body=body,
        secrets=selectors.webhook_signing_secrets(endpoint=endpoint, now=at),
        now=timezone.now(),
    )
    return headers, body


def test_set_webhook_prints_a_standard_webhooks_secret_alone_on_the_last_line():
    run("create", "shop")
    out = run("set-webhook", "shop", "https://93.184.215.14/hooks")
    secret = out.splitlines()[-1]
    assert secret.startswith("whsec_") and " " not in secret
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    endpoint = WebhookEndpoint.objects.get(client__name="shop")
    assert endpoint.url == "https://93.184.215.14/hooks" and endpoint.secret == secret
    assert "webhook https://93.184.215.14/hooks" in run("list") and secret not in run("list")
    # and a delivery signed with it verifies with the library
    headers, body = signed_now(endpoint)
    assert verifies(secret, headers, body)


@override_settings(WEBHOOK_SECRET_GRACE_SECONDS=3600)
@pytest.mark.parametrize(
    "how", [("set-webhook", "shop", "https://93.184.215.14/v2"), ("rotate-webhook-secret", "shop")]
)
def test_rotation_signs_with_both_secrets_during_the_grace_period_only(how):
    run("create", "shop")
    old = run("set-webhook", "shop", "https://93.184.215.14/v1").splitlines()[-1]
    # when
    new = run(*how).splitlines()[-1]
    # then: both verify now...
    assert new != old and new.startswith("whsec_")
    endpoint = WebhookEndpoint.objects.get(client__name="shop")
    headers, body = signed_now(endpoint)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(entry.startswith("v1,") for entry in headers["webhook-signature"].split(" "))
    assert verifies(new, headers, body) and verifies(old, headers, body)
    # ...and after the grace period only the new one does
    later = timezone.now() + timedelta(seconds=3601)
    headers, body = signed_now(endpoint, at=later)
    assert verifies(new, headers, body) and not verifies(old, headers, body)
    assert endpoint.previous_secret_expires_at == pytest.approx(
        timezone.now() + timedelta(seconds=3600), abs=timedelta(seconds=30)
    )


def test_set_webhook_refuses_unsafe_urls_unless_private_urls_are_allowed():
    run("create", "shop")
    with override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=False):
        for url in (
            "http://93.184.215.14/h",
            "https://127.0.0.1/h",
            "https://10.0.0.2/h",
            "https://localhost:8443/h",
            "https://[::1]/h",
        ):
            with pytest.raises(CommandError, match="Webhook URL refused"):
                run("set-webhook", "shop", url)
        assert not WebhookEndpoint.objects.exists()
    with override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=True):
        assert run("set-webhook", "shop", "http://127.0.0.1:9/h").splitlines()[-1].startswith("whsec_")


def test_unknown_client_rotation_without_endpoint_and_removal():
    with pytest.raises(CommandError, match="No API client"):
        run("set-webhook", "nobody", "https://93.184.215.14/h")
    run("create", "shop")
    with pytest.raises(CommandError, match="no webhook endpoint"):
        run("rotate-webhook-secret", "shop")
    run("set-webhook", "shop", "https://93.184.215.14/h")
    assert "Removed" in run("remove-webhook", "shop")
    assert not WebhookEndpoint.objects.exists()
    assert "had no webhook endpoint" in run("remove-webhook", "shop")


def test_signing_secrets_drop_an_expired_previous_secret():
    client, _ = services.api_client_create(name="shop")
    endpoint, first = services.webhook_endpoint_set(client=client, url="https://93.184.215.14/h")
    assert selectors.webhook_signing_secrets(endpoint=endpoint) == [first]
    endpoint, second = services.webhook_secret_rotate(client=client)
    assert selectors.webhook_signing_secrets(endpoint=endpoint) == [second, first]
    now = datetime.now(UTC)
    assert selectors.webhook_signing_secrets(endpoint=endpoint, now=now + timedelta(days=2)) == [second]


def test_admin_sets_an_endpoint_shows_the_secret_once_and_rotates(admin_client_logged):
    client = ApiClient.objects.create(name="partner")
    # when: added in the admin
    response = admin_client_logged.post(
        "/admin/clients/webhookendpoint/add/", {"client": client.pk, "url": "https://93.184.215.14/hooks"}, follow=True
    )
    # then: stored, and its secret is in the message after saving
    endpoint = WebhookEndpoint.objects.get(client=client)
    assert endpoint.secret in response.content.decode()
    page = admin_client_logged.get(f"/admin/clients/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in page and endpoint.secret[-4:] in page
    # an unsafe URL is a form error
    with override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=False):
        response = admin_client_logged.post(
            f"/admin/clients/webhookendpoint/{endpoint.pk}/change/", {"client": client.pk, "url": "https://127.0.0.1/x"}
        )
    assert response.status_code == 200 and "Webhook URL refused" in response.content.decode()
    # the rotate action
    old = endpoint.secret
    response = admin_client_logged.post(
        "/admin/clients/webhookendpoint/", {"action": "rotate_secret", "_selected_action": [endpoint.pk]}, follow=True
    )
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.previous_secret == old and endpoint.secret in response.content.decode()
