"""Fixtures shared by every test: the test vhost on the real RabbitMQ, a clean Redis test db,
an API client with the bearer token."""

import shutil
import subprocess
from typing import cast

import pytest
from amqp.channel import Channel
from django.conf import settings
from django.core.cache import cache
from kombu import Connection

from orders import topology


def _vhost_from_url(url: str) -> str:
    return Connection(url).virtual_host


@pytest.fixture(scope="session", autouse=True)
def rabbitmq_vhost() -> str:
    """Tests use their own vhost; created on first use (rabbitmqctl, as the machine's services user root)."""
    vhost = _vhost_from_url(settings.CELERY_BROKER_URL)
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=3) as conn:
            conn.connect()
    except Exception:
        rabbitmqctl = shutil.which("rabbitmqctl")
        assert rabbitmqctl, "RabbitMQ test vhost missing and rabbitmqctl not found to create it"
        subprocess.run([rabbitmqctl, "add_vhost", vhost], check=False, capture_output=True)
        subprocess.run(
            [rabbitmqctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True, capture_output=True
        )
    from django.core.management import call_command

    with open("/dev/null", "w") as devnull:
        call_command("declare_topology", stdout=devnull)
    return vhost


def purge_queues() -> None:
    with Connection(settings.CELERY_BROKER_URL) as conn:
        channel = conn.channel()
        names = [s.queue for s in topology.ALL_STAGES] + [topology.DEAD_LETTER_QUEUE_NAME]
        names += [f"celery_delayed_{level}" for level in range(28)]
        for name in names:
            try:
                cast(Channel, channel).queue_purge(name)  # stubs: StdChannel; run time: amqp Channel
            except Exception:  # delayed-delivery queues exist only once a worker declared them
                channel = conn.channel()


@pytest.fixture
def clean_queues():
    purge_queues()
    yield
    purge_queues()


@pytest.fixture(autouse=True)
def clean_cache():
    cache.clear()
    yield


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.SECRET_TOKEN}")
    return client


@pytest.fixture
def admin_client_logged(client):
    """Django's test client logged in as a superuser (the admin, staff-only pages)."""
    from django.contrib.auth.models import User

    User.objects.create_superuser("root", "root@example.com", "pw")
    client.login(username="root", password="pw")
    return client


@pytest.fixture
def staff_client():
    """An API client with an on-call staff user's HTTP Basic credentials (the operator endpoints)."""
    import base64

    from rest_framework.test import APIClient

    from orders.tests.factories import staff_user_create

    staff_user_create("ops", password="pw-ops")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"ops:pw-ops").decode())
    return client


@pytest.fixture
def anon_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def catalog(db):
    from orders.tests.factories import catalog_create

    return catalog_create()


def subprocess_env(**overrides) -> dict:
    """Environment for a child process that must see the test database (pytest-django's test_ copy)."""
    import os

    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="orders_project.settings_test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def django_subprocess(code: str, **env) -> "subprocess.CompletedProcess[str]":
    """`code` run by a new Python with the test database's environment (subprocess_env) and `env` on top."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(**env), capture_output=True, text=True, timeout=60
    )


def queue_messages(queue: str) -> list:
    """Take every message from a queue (acked), as kombu messages."""
    taken: list = []
    with Connection(settings.CELERY_BROKER_URL) as conn:
        channel = cast(Channel, conn.channel())  # stubs: StdChannel; run time: amqp Channel
        while True:
            message = channel.basic_get(queue, no_ack=True)
            if message is None:
                return taken
            taken.append(message)


@pytest.fixture
def webhook_receiver():
    """A real HTTP receiver on loopback that verifies deliveries with the standardwebhooks library
    (tests/webhook_receiver.py); `receiver.secrets` are the secrets it knows."""
    from tests.webhook_receiver import WebhookReceiver

    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
