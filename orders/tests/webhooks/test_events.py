"""Webhook events are recorded in the state change's own transaction: one per terminal transition of an
order whose client has an endpoint, none otherwise, with an outbox row that publishes its delivery."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from clients.tests.factories import client_with_key
from orders import services
from orders.models import Order, OrderStatus, OutboxMessage
from orders.pipeline import DELIVER_WEBHOOK, OutboxKind, outbox_message
from orders.tests.factories import order_create
from orders.webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


def _completed(order: Order) -> Order:
    services.order_process(order_id=order.id)
    services.order_enrich(order_id=order.id)
    return services.order_finalize(order_id=order.id)


def _events(order: Order) -> list[str]:
    return list(WebhookEvent.objects.filter(order=order).order_by("created_at").values_list("type", flat=True))


def _webhook_outbox(order: Order) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(order=order, kind=OutboxKind.WEBHOOK).order_by("created_at"))


def test_finalize_records_one_completed_event_with_its_outbox_row(catalog, hooked_client):
    order = order_create(client_id=hooked_client.id)
    # when: finalize, then a redelivered finalize
    _completed(order)
    services.order_finalize(order_id=order.id)
    # then: one event, one outbox row naming it, published as the webhooks queue's task
    event = WebhookEvent.objects.get(order=order)
    assert (event.type, event.status, event.client_id, event.attempts) == (
        "order.completed",
        "pending",
        hooked_client.id,
        0,
    )
    (row,) = _webhook_outbox(order)
    assert row.payload == {"event_id": str(event.id)} and row.published_at is None
    message = outbox_message(row.kind, str(row.order_id), row.payload)
    assert message.task == DELIVER_WEBHOOK.task and list(message.args) == [str(order.id), str(event.id)]
    assert event.webhook_id == f"msg_{event.id.hex}"


def test_no_event_and_no_extra_statement_for_a_client_without_endpoint(catalog, hooked_client):
    plain = order_create()  # the default client: no endpoint
    hooked = order_create(client_id=hooked_client.id)
    for order in (plain, hooked):
        services.order_process(order_id=order.id)
        services.order_enrich(order_id=order.id)
    # when
    counts = {}
    for order in (plain, hooked):
        with CaptureQueriesContext(connection) as queries:
            services.order_finalize(order_id=order.id)
        counts[order.id] = len(queries)
    # then: the event is part of finalize's one write statement, whoever the client
    assert counts[plain.id] == counts[hooked.id]
    assert _events(plain) == [] and _webhook_outbox(plain) == []
    assert _events(hooked) == ["order.completed"]


def test_every_terminal_transition_is_one_event(catalog, hooked_client):
    failed = order_create(client_id=hooked_client.id, items=[("NOPE", 1)])
    cancelled = order_create(client_id=hooked_client.id)
    refunded = _completed(order_create(client_id=hooked_client.id))
    # when
    services.order_process(order_id=failed.id)  # unknown sku: a business failure
    services.order_fail(order_id=failed.id, stage="process", reason="again")  # already terminal: a no-op
    services.order_cancel(order_id=cancelled.id, actor="client:x")
    services.order_cancel(order_id=cancelled.id, actor="client:x")  # idempotent
    services.order_cancel(order_id=refunded.id, actor="client:x")  # refund_pending: not terminal, no event
    assert _events(refunded) == ["order.completed"]
    services.order_refund(order_id=refunded.id)
    services.order_refund(order_id=refunded.id)  # a duplicate skips
    # then
    assert _events(failed) == ["order.failed"]
    assert _events(cancelled) == ["order.cancelled"]
    assert _events(refunded) == ["order.completed", "order.refunded"]
    assert Order.objects.get(id=refunded.id).status == OrderStatus.REFUNDED
    assert len(_webhook_outbox(refunded)) == 2


def test_a_stage_failure_and_a_dead_letter_end_the_order_with_one_failed_event(catalog, hooked_client):
    from orders.tests.factories import dead_letter_archived

    order = order_create(client_id=hooked_client.id)
    services.order_process(order_id=order.id)
    # when: the enrich stage fails for good, then its dead letter is archived
    services.order_fail(order_id=order.id, stage="enrich", reason="provider down", kind="retries_exhausted")
    dead_letter_archived(order_id=order.id)
    # then
    assert _events(order) == ["order.failed"]


def test_the_event_is_rolled_back_with_its_state_change(catalog, hooked_client):
    order = order_create(client_id=hooked_client.id)
    # when: the transaction that cancels the order rolls back
    with pytest.raises(RuntimeError), transaction.atomic():
        services.order_cancel(order_id=order.id, actor="client:x")
        assert _events(order) == ["order.cancelled"]  # written inside it
        raise RuntimeError("the commit never happens")
    # then: neither the state change nor its event nor its outbox row exist
    assert Order.objects.get(id=order.id).status == OrderStatus.PENDING
    assert _events(order) == [] and _webhook_outbox(order) == []
    # and the same for finalize's one statement
    services.order_process(order_id=order.id)
    services.order_enrich(order_id=order.id)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.order_finalize(order_id=order.id)
        raise RuntimeError("rolled back")
    assert Order.objects.get(id=order.id).status == OrderStatus.PROCESSING and _events(order) == []


def test_another_clients_endpoint_gets_nothing_of_this_clients_orders(catalog, hooked_client):
    other, _ = client_with_key("other-shop")
    order = order_create(client_id=other.id)
    _completed(order)
    assert _events(order) == []
    assert not WebhookEvent.objects.filter(client=hooked_client).exists()
