import pytest

from clients import services as client_services
from enrichment import controls
from orders import services
from orders.tests.factories import order_create
from orders.webhooks.models import WebhookEvent


@pytest.fixture(autouse=True)
def provider_controls_reset():
    controls.controls_reset()
    yield
    controls.controls_reset()


@pytest.fixture
def hooked_client(db, webhook_receiver):
    """An API client whose endpoint is the test receiver (which knows its secret)."""
    client, _ = client_services.api_client_create(name="hooked-shop")
    _, secret = client_services.webhook_endpoint_set(client=client, url=webhook_receiver.url)
    webhook_receiver.secrets.append(secret)
    return client


@pytest.fixture
def completed_event(catalog, hooked_client) -> WebhookEvent:
    """A completed order of the hooked client, and the one webhook event its finalize recorded."""
    order = order_create(client_id=hooked_client.id)
    services.order_process(order_id=order.id)
    services.order_enrich(order_id=order.id)
    services.order_finalize(order_id=order.id)
    return WebhookEvent.objects.get(order=order)
