"""The same settings, with defaults that keep tests off the dev data: their own database
(pytest-django adds the test_ prefix), their own RabbitMQ vhost and Redis database."""

import os

TEST_ENV = {
    "DJANGO_DEBUG": "False",
    # As long as production requires (settings.SECRET_MIN_LENGTHS); never used outside the tests.
    "DJANGO_SECRET_KEY": "Vt3tFFpv1hKkZ9oa6kHGu9RfoLFcsVSz_Xep30M107uTwUgSlGWWgPHbOrFQbG0K",
    "SECRET_TOKEN": "5daLtk_KY6-K4kiJhcoSuipeGrFs3nOqgAz3oBQirGM",
    # Plain HTTP (test client, live servers): no SSL redirect, no secure-only cookies.
    "DJANGO_HTTPS": "False",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/orders_test",
    "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/orders_test",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "CACHE_KEY_PREFIX": "orders-test",
    "CHANNELS_PREFIX": "asgi-test",
    # The test client's Host (testserver) may read /metrics, as a scrape by address does.
    "METRICS_ALLOWED_HOSTS": "localhost,127.0.0.1,[::1],testserver",
    "LOG_FORMAT": "console",
    "ENRICHMENT_LATENCY_MS": "20",
    "TASK_MAX_RETRIES": "2",
    "TASK_RETRY_BACKOFF_BASE": "1",
    "TASK_RETRY_BACKOFF_MAX": "2",
    "ENRICHMENT_PROVIDER_TIMEOUT": "1",
    # The demo's fault items (HANG, DOWN, BOMBA, FLAKY, CRASH), seeded and acting, as in `make run`.
    "DEMO_FAULTS_ENABLED": "True",
    "DEMO_CRASH_ENABLED": "True",
    "OUTBOX_GRACE_SECONDS": "1",
    "HEARTBEAT_FILE": "/tmp/orders-test-heartbeat",
    # Throttling has its own tests (core/tests/test_throttling.py); elsewhere it must not get in the way.
    "THROTTLE_CLIENT_RATE": "100000/s",
    "THROTTLE_ANON_RATE": "100000/s",
    # So is the failed-login lockout (core/tests/test_login_guard.py).
    "LOGIN_FAILURE_LIMIT_PER_IP": "100000",
    "LOGIN_FAILURE_LIMIT_PER_USERNAME": "100000",
    # Webhooks: receivers on loopback over http, and retries quick enough for a test.
    "WEBHOOK_ALLOW_PRIVATE_URLS": "True",
    "WEBHOOK_CONNECT_TIMEOUT": "1",
    "WEBHOOK_READ_TIMEOUT": "1",
    "WEBHOOK_MAX_RETRIES": "3",
    "WEBHOOK_RETRY_BACKOFF_BASE": "0.2",
    "WEBHOOK_RETRY_BACKOFF_MAX": "1",
    # Threads of the live server keep no connection that would block dropping the test database.
    "DB_CONN_MAX_AGE": "0",
}
for _key, _value in TEST_ENV.items():
    os.environ.setdefault(_key, _value)

from orders_project.settings import *  # noqa: E402, F403

# Basic-auth tests hash a password per request; the production hasher is slow on purpose.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
