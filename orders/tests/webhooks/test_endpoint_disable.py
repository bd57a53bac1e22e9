"""An endpoint failing for long is disabled (WEBHOOK_DISABLE_AFTER_FAILURES in a row, or
WEBHOOK_DISABLE_AFTER_SECONDS): its client's events wait, pending and not dead-lettered, shown to operators
(the admin, `manage.py webhook_endpoint list`), until one re-enables it, which sends them."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from clients.models import WebhookEndpoint
from orders import services
from orders.models import OutboxMessage
from orders.pipeline import OutboxKind
from orders.tests.factories import order_create
from orders.webhooks import delivery
from orders.webhooks.models import WebhookDelivery, WebhookEvent
from tests.webhook_receiver import Answer

pytestmark = pytest.mark.django_db


def _completed_event(client_id: int) -> WebhookEvent:
    order = order_create(client_id=client_id)
    services.order_process(order_id=order.id)
    services.order_enrich(order_id=order.id)
    services.order_finalize(order_id=order.id)
    return WebhookEvent.objects.get(order=order)


def _deliver(event: WebhookEvent, attempt: int = 1) -> None:
    delivery.webhook_deliver(event_id=event.id, attempt=attempt, retries_left=True)


def _endpoint(client_id: int) -> WebhookEndpoint:
    return WebhookEndpoint.objects.get(client_id=client_id)


def test_an_endpoint_failing_n_times_in_a_row_is_disabled_and_its_events_wait_until_re_enabled(
    catalog, hooked_client, webhook_receiver, settings, admin_client_logged
):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    first, second = _completed_event(hooked_client.id), _completed_event(hooked_client.id)
    webhook_receiver.answer_next(*[Answer(503)] * 3)
    # given: two failed attempts (retried), then a third, which disables the endpoint
    for attempt in (1, 2):
        with pytest.raises(delivery.WebhookRetryable):
            _deliver(first, attempt)
    assert _endpoint(hooked_client.id).consecutive_failures == 2
    _deliver(first, 3)  # no raise: the event waits (its message is acked), it is not dead-lettered
    endpoint = _endpoint(hooked_client.id)
    assert endpoint.disabled_at is not None and "3 failed attempts in a row" in endpoint.disabled_reason
    # when: the other event's delivery runs
    _deliver(second)
    # then: nothing more was sent; both events wait, pending, saying why
    assert len(webhook_receiver.calls) == 3
    for event in WebhookEvent.objects.filter(id__in=[first.id, second.id]):
        assert event.status == "pending"
    assert "waiting for it to be re-enabled" in WebhookEvent.objects.get(id=second.id).last_error
    assert not WebhookDelivery.objects.filter(event=second).exists()
    # shown to operators: the admin's status page and the command
    page = admin_client_logged.get("/admin/clients/webhookendpointstatus/?state=disabled").content.decode()
    assert hooked_client.name in page and "disabled" in page
    listing = io.StringIO()
    call_command("webhook_endpoint", "list", stdout=listing)
    assert f"{hooked_client.name}\tdisabled" in listing.getvalue() and "waiting: 2" in listing.getvalue()
    # when: an operator re-enables it from the admin
    OutboxMessage.objects.all().delete()
    response = admin_client_logged.post(
        "/admin/clients/webhookendpointstatus/",
        {"action": "reenable", "_selected_action": [endpoint.pk]},
    )
    assert response.status_code == 302
    # then: enabled, failures forgotten, both waiting events published again through the outbox and delivered
    endpoint = _endpoint(hooked_client.id)
    assert (endpoint.disabled_at, endpoint.consecutive_failures, endpoint.failing_since) == (None, 0, None)
    republished = OutboxMessage.objects.filter(kind=OutboxKind.WEBHOOK)
    assert sorted(m.payload["event_id"] for m in republished) == sorted([str(first.id), str(second.id)])
    for event in (first, second):
        _deliver(event, 4)
    assert set(WebhookEvent.objects.filter(id__in=[first.id, second.id]).values_list("status", flat=True)) == {
        "delivered"
    }


def test_an_endpoint_failing_for_longer_than_the_time_bound_is_disabled(
    catalog, hooked_client, webhook_receiver, settings
):
    # given: an endpoint failing since longer ago than the bound (few failures: the count bound is far)
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 1000
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 3600
    WebhookEndpoint.objects.filter(client_id=hooked_client.id).update(
        consecutive_failures=1, failing_since=timezone.now() - timedelta(hours=2)
    )
    webhook_receiver.answer_next(Answer(500))
    # when
    _deliver(_completed_event(hooked_client.id))
    # then
    assert _endpoint(hooked_client.id).disabled_at is not None


def test_a_delivery_clears_the_endpoints_failures(catalog, hooked_client, webhook_receiver, settings):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    event = _completed_event(hooked_client.id)
    webhook_receiver.answer_next(Answer(503))
    with pytest.raises(delivery.WebhookRetryable):
        _deliver(event)
    _deliver(event, 2)
    endpoint = _endpoint(hooked_client.id)
    assert (endpoint.consecutive_failures, endpoint.failing_since, endpoint.disabled_at) == (0, None, None)


def test_re_enabling_needs_its_permission(catalog, hooked_client, client, settings):
    from django.contrib.auth.models import Permission, User

    WebhookEndpoint.objects.filter(client_id=hooked_client.id).update(disabled_at=timezone.now())
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_webhookendpointstatus"))
    client.force_login(user)
    endpoint = _endpoint(hooked_client.id)
    client.post("/admin/clients/webhookendpointstatus/", {"action": "reenable", "_selected_action": [endpoint.pk]})
    assert _endpoint(hooked_client.id).disabled_at is not None
