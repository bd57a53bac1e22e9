"""The deploy checks need no service (each runs offline or in its own process): these no-op fixtures
shadow the root conftest's autouse ones (RabbitMQ vhost, Redis cache)."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def rabbitmq_vhost():
    return None


@pytest.fixture(autouse=True)
def clean_cache():
    yield
