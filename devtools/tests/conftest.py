"""The devtools tests start their own servers (devtools/db_ha.py's PostgreSQL HA) and use neither the broker nor
the cache: the root conftest's autouse fixtures (the RabbitMQ test vhost, Redis's test db) are not needed here."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def rabbitmq_vhost() -> None:
    return None


@pytest.fixture(autouse=True)
def clean_cache() -> None:
    return None
