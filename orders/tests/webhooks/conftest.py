import pytest

from clients import services as client_services
from enrichment import controls


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
