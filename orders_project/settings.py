"""One settings module, read from the environment.

Defaults point at the local services (PostgreSQL, RabbitMQ, Redis on 127.0.0.1) so the README's
run command needs no .env; production sets DJANGO_DEBUG=False and a real DJANGO_SECRET_KEY.
"""

import hashlib
import re
import sys
import warnings
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from core.broker_nodes import urls_shuffled
from core.rates import parse_rate
from orders import topology

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# =============================================================================
# Core
# =============================================================================
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# A dev default only while DEBUG is on: production must set the key (ImproperlyConfigured otherwise).
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key" if DEBUG else environ.Env.NOTSET)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "rest_framework_api_key",
    "core",
    "clients",
    "orders",
    "enrichment",
]

MIDDLEWARE = [
    # First: probes and scrapers reach /healthz, /readyz and /metrics by pod IP, whatever ALLOWED_HOSTS says.
    "core.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, browsable API, docs, live page) from the WSGI web itself: one image, no sidecar.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A login page's attempt refused by the failed-login lockout: a 429 page with Retry-After (core/login_guard.py).
    "core.login_guard.LoginLockoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "orders_project.urls"
# /orders and /orders/ are both routed explicitly; never redirect (a redirect drops a POST body).
APPEND_SLASH = False
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "orders_project.wsgi.application"
ASGI_APPLICATION = "orders_project.asgi.application"

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The image runs collectstatic at build time with DJANGO_STATIC_MANIFEST=true (Dockerfile): hashed,
# pre-compressed files (ES module imports rewritten to the hashed names: orders_project/storage.py)
# that WhiteNoise serves from STATIC_ROOT with far-future cache headers. Everywhere
# else (make run, tests, DEBUG) nothing is collected: plain storage, and WhiteNoise finds the files in the
# apps' static/ directories when each process starts (STATIC_ROOT does not exist there).
STATIC_MANIFEST = env.bool("DJANGO_STATIC_MANIFEST", default=False)
if STATIC_MANIFEST:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "orders_project.storage.StaticFilesStorage"},
    }
else:
    WHITENOISE_USE_FINDERS = True
    warnings.filterwarnings("ignore", message=f"No directory at: {re.escape(str(STATIC_ROOT))}")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

# =============================================================================
# Database
# =============================================================================
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/orders")}
# Under ASGI (uvicorn) every request runs in its own thread-sensitive context, so a persistent connection
# is never reused (Django ticket #33497): bench/ measured 84 connections from one uvicorn process at 16
# concurrent requests, then "too many clients". The web server therefore takes its connections from a
# psycopg connection pool (Django 5.1+): a request borrows one and gives it back when it ends, and at most
# DB_POOL_MAX_SIZE are open whatever the concurrency (a request waits up to DB_POOL_TIMEOUT for one).
# So does a threads-pool worker (enrichment): its threads give the connection back during the provider
# call, so in-flight enrichments are not bounded by PostgreSQL's max_connections. Prefork pool children
# keep one persistent connection each instead (CELERY_DB_REUSE_MAX below).
_PROGRAM = Path(sys.argv[0]).name
_CELERY_WORKER = _PROGRAM == "celery"


def _celery_pool(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg in ("-P", "--pool") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--pool="):
            return arg.partition("=")[2]
    return "prefork"


# Off (Django's default): checking a reused connection costs a `SELECT 1` round trip on every request and
# task (13 % of the web's samples, bench/README.md). After a PostgreSQL restart each process's first use of
# its dead connection fails instead (a 503 the client retries, or a task retried as transient) and Django
# drops the connection, so the next one reconnects.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_CONN_HEALTH_CHECKS", default=False)
# Threads share a process: uvicorn/daphne (ASGI) and the threads-pool worker take connections from a pool.
# One-request-at-a-time processes (gunicorn's sync workers, prefork children) keep one persistent connection.
_THREADED = _PROGRAM in ("uvicorn", "daphne") or (_CELERY_WORKER and _celery_pool(sys.argv) == "threads")
_PERSISTENT = _PROGRAM == "gunicorn" or _CELERY_WORKER
if env.bool("DB_POOL", default=_THREADED):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # pooling replaces persistent connections
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=12),
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
    }  # with CONN_HEALTH_CHECKS, Django has the pool check a connection before lending it
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=300 if _PERSISTENT else 0)
# Fail fast (the API answers 503) instead of hanging when PostgreSQL is unreachable.
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int("DB_CONNECT_TIMEOUT", default=3)
# Parameters bound by PostgreSQL (psycopg's C dumpers) instead of quoted into the SQL text in Python: the
# accepting INSERT and the stages' statements carry arrays and JSON.
DATABASES["default"]["OPTIONS"]["server_side_binding"] = env.bool("DB_SERVER_SIDE_BINDING", default=True)
# psycopg prepares a statement on a connection after it ran this many times ("off": never, Django's default, for
# a transaction-mode PgBouncer older than 1.21). The stages' and POST's statements are large CTEs: prepared,
# PostgreSQL parses and plans each once per connection instead of once per order (~25 % of its CPU per order).
# Behind a transaction-pooling PgBouncer (DB_TRANSACTION_POOLER), consecutive transactions of one process may run on
# different server connections: no named prepared statements (PgBouncer before 1.21 cannot track them), no
# server-side cursors (they live past their transaction), no LISTEN (the relay's goes to DATABASE_DIRECT_URL).
DB_TRANSACTION_POOLER = env.bool("DB_TRANSACTION_POOLER", default=False)
_prepare = env.str("DB_PREPARE_THRESHOLD", default="off" if DB_TRANSACTION_POOLER else "5").strip().lower()
DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None if _prepare in ("", "off", "none") else int(_prepare)
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DB_TRANSACTION_POOLER
# A session of its own on the current primary, not through the pooler: the relay's LISTEN. Unset, the default
# database's address (fine without a pooler; behind a transaction pooler the relay then polls only).
DATABASE_DIRECT_URL = env.str("DATABASE_DIRECT_URL", default="")
_connect_timeout = DATABASES["default"]["OPTIONS"]["connect_timeout"]
if DATABASE_DIRECT_URL:
    _direct = env.db_url_config(DATABASE_DIRECT_URL)
    DATABASES["direct"] = {**_direct, "OPTIONS": {**_direct.get("OPTIONS", {}), "connect_timeout": _connect_timeout}}
else:  # the default's address, without its pool: one session
    DATABASES["direct"] = {**DATABASES["default"], "OPTIONS": {"connect_timeout": _connect_timeout}}
DATABASES["direct"].update(CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=False, TEST={"MIRROR": "default"})

# =============================================================================
# Cache (GET /orders/{id}) and channel layer (live page) on Redis
# =============================================================================
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# django-redis, not Django's RedisCache: Django's keeps its connection pool in the cache object, which
# under ASGI is rebuilt for every request, so every request opened a new Redis connection (11 % of the
# web's samples in bench/); django-redis keeps one pool per process. Values are JSON, never pickle.
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="orders"),
        "TIMEOUT": env.int("ORDER_CACHE_TIMEOUT", default=300),
        "OPTIONS": {
            "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
            "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=1.0),
            "SOCKET_TIMEOUT": env.float("REDIS_SOCKET_TIMEOUT", default=1.0),
        },
    }
}
# An order's cache-version key (orders/events.py) expires this long after its last change; it must outlive
# every value cached under it (ORDER_CACHE_TIMEOUT), or an expired key could lead readers back to an old value.
ORDER_CACHE_VERSION_TTL = env.int("ORDER_CACHE_VERSION_TTL", default=2 * CACHES["default"]["TIMEOUT"] + 60)
if CACHES["default"]["TIMEOUT"] >= ORDER_CACHE_VERSION_TTL:
    raise ImproperlyConfigured("ORDER_CACHE_VERSION_TTL must be longer than ORDER_CACHE_TIMEOUT")
CHANNEL_LAYERS = {
    "default": {
        # Redis pub/sub: a group send is one PUBLISH (the list-based layer costs a few round trips and a
        # Lua script per group per event); the live page's events are best-effort anyway (it catches up
        # from the API after a gap), which is what pub/sub offers.
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # The same socket bounds as the cache: a Redis that stops answering fails a send instead of hanging it.
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_connect_timeout": CACHES["default"]["OPTIONS"]["SOCKET_CONNECT_TIMEOUT"],
                    "socket_timeout": CACHES["default"]["OPTIONS"]["SOCKET_TIMEOUT"],
                }
            ],
            "prefix": env.str("CHANNELS_PREFIX", default="asgi"),
        },
    }
}
# The demo's anonymous live page (`make run` turns it on): anyone may watch the feed and read every order
# through the API, without customer ids, enrichment, invoices, staff names or exception text. Off: the page
# and the order reads need a staff login or a client key.
LIVE_FEED_ANONYMOUS = env.bool("LIVE_FEED_ANONYMOUS", default=False)
# Empty: the live page opens its socket on its own origin (`/ws/orders`, routed to the live process by
# the proxy or Ingress). A port: the page opens ws(s)://<its host>:<port>/ws/orders instead (the live
# process published on its own port, as `make run` and docker compose do).
LIVE_WS_PORT = env.str("LIVE_WS_PORT", default="")
if LIVE_WS_PORT and not (LIVE_WS_PORT.isdigit() and 0 < int(LIVE_WS_PORT) < 65536):
    raise ImproperlyConfigured(f"LIVE_WS_PORT must be empty or a port number, not {LIVE_WS_PORT!r}")

# =============================================================================
# Request limits (core/limits.py wraps the WSGI and ASGI apps; core/parsers.py)
# =============================================================================
# A body over this is a 413 before it is read (a Content-Length over it) or as soon as it grows past it
# (chunked), on gunicorn and uvicorn alike; Django's own check (admin forms) uses the same bound.
REQUEST_MAX_BODY_BYTES = env.int("REQUEST_MAX_BODY_BYTES", default=256 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BODY_BYTES
# The whole body must arrive within this many seconds of the headers, else 408: a client dripping bytes
# would otherwise hold a gunicorn sync worker until its WEB_TIMEOUT kills it.
REQUEST_BODY_TIMEOUT = env.float("REQUEST_BODY_TIMEOUT", default=15.0)
# JSON nested deeper than this is a 400 (an order is 3 deep); Python's parser would raise RecursionError
# near 1,000, and anything that walks the data afterwards could too.
REQUEST_JSON_MAX_DEPTH = env.int("REQUEST_JSON_MAX_DEPTH", default=32)
# Read by the servers' own command lines, named here so the limits are in one list: gunicorn's request
# line and header bounds (WEB_LIMIT_REQUEST_LINE, WEB_LIMIT_REQUEST_FIELDS, WEB_LIMIT_REQUEST_FIELD_SIZE in
# orders_project/gunicorn_conf.py); uvicorn's WebSocket frame bound LIVE_WS_MAX_BYTES (--ws-max-size) and
# its request head bound LIVE_MAX_HEAD_BYTES (--h11-max-incomplete-event-size), in the Procfile's `live`.
LIVE_WS_MAX_BYTES = env.int("LIVE_WS_MAX_BYTES", default=64 * 1024)

# =============================================================================
# API
# =============================================================================
SECRET_TOKEN = env.str("SECRET_TOKEN", default="dev-token" if DEBUG else environ.Env.NOTSET)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "clients.auth.BearerKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    # JSON only: a form or multipart body is a 415, not a half-parsed order. Bounded: malformed, deep or
    # non-UTF-8 JSON is a 400 (core/parsers.py), never a 500.
    "DEFAULT_PARSER_CLASSES": ["core.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.ClientRateThrottle", "core.throttling.AnonRateThrottle"],
    # Proxies in front of the web that append to X-Forwarded-For (the anonymous throttle's client IP).
    "NUM_PROXIES": env.int("NUM_PROXIES", default=None),
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Requests per client (all its keys) or staff user, and per anonymous IP: '<n>/<s|min|hour|day>', a
# fixed window in Redis (core/throttling.py); over it, 429 with Retry-After.
THROTTLE_RATES = {
    # A real API's per-client default (Stripe: 100 requests/s in live mode).
    "client": env.str("THROTTLE_CLIENT_RATE", default="100/s"),
    "anon": env.str("THROTTLE_ANON_RATE", default="60/min"),
}
for _scope, _rate in THROTTLE_RATES.items():
    try:
        parse_rate(_rate)
    except ValueError as exc:
        raise ImproperlyConfigured(f"THROTTLE_{_scope.upper()}_RATE: {exc}") from exc
# GET /orders: cursor pages of ORDERS_PAGE_SIZE orders; `?page_size=` up to ORDERS_PAGE_SIZE_MAX.
ORDERS_PAGE_SIZE = env.int("ORDERS_PAGE_SIZE", default=50)
ORDERS_PAGE_SIZE_MAX = env.int("ORDERS_PAGE_SIZE_MAX", default=200)
# A client's orders in flight (pending, processing, refund_pending) at most: POST /orders past it is a 429
# (`too_many_orders_in_flight`), so one client cannot fill the pipeline's queues for every other (0: no cap).
ORDERS_IN_FLIGHT_MAX = env.int("ORDERS_IN_FLIGHT_MAX", default=1000)
SPECTACULAR_SETTINGS = {
    "TITLE": "Order pipeline API",
    "VERSION": "1.0.0",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Orders and dead letters both have a `status` choice set: name them (else a check warning, and a hashed name).
    "ENUM_NAME_OVERRIDES": {"DeadLetterStatusEnum": "orders.models.DeadLetterStatus"},
}

# =============================================================================
# Security: production defaults (`manage.py check --deploy` is clean with DEBUG off)
# =============================================================================
# Production is served over HTTPS, TLS ending at a proxy (the Ingress) that sets X-Forwarded-Proto. That is
# the default whenever DEBUG is off; DJANGO_HTTPS=false turns every HTTPS-only default below off at once,
# for plain-HTTP setups: `make run`, the tests, compose on one machine, the dev overlay on kind.
HTTPS = env.bool("DJANGO_HTTPS", default=not DEBUG)
# Only behind a proxy that sets (or strips) the header: a client reaching the web directly could fake it.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DJANGO_TRUST_X_FORWARDED_PROTO", default=HTTPS) else None
)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=HTTPS)
# Kubelet probes and Prometheus call the pod over plain HTTP (ProbeMiddleware answers them first anyway).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=HTTPS)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS

# Secrets: with DEBUG off, a short or placeholder value refuses to start (ImproperlyConfigured) rather
# than run with a key anyone can read in this repository.
SECRET_MIN_LENGTHS = {"DJANGO_SECRET_KEY": 50, "SECRET_TOKEN": 32}
_PLACEHOLDER_MARKERS = (
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "replace_me",
    "placeholder",
    "insecure",
    "dev-only",
    "not-for-production",
    "example",
    "dev-token",
    "test-token",
    "test-secret",
)


# SHA-256 of the secrets committed in k8s/overlays/dev/kustomization.yaml (public, so never a real secret):
# refused with DEBUG off unless DEV_OVERLAY=true, which only that overlay sets. Hashes, so this module does not
# carry them too; tests/deploy/test_settings_security.py holds the list and the overlay in agreement.
DEV_OVERLAY = env.bool("DEV_OVERLAY", default=False)
_DEV_OVERLAY_SECRET_SHA256 = frozenset(
    {
        "89eceb05f7321b02e0a7b37bebd308e63973c1c33e335ffdff09e6da9117a322",  # DJANGO_SECRET_KEY
        "0404ac4094a992ffe7ea44f50d3c2604424a979fcbc23a1afbabac2d9cca55cd",  # SECRET_TOKEN
    }
)


def _check_secret(name: str, value: str) -> None:
    hint = "generate one: python -c 'import secrets; print(secrets.token_urlsafe(64))'"
    if not DEV_OVERLAY and hashlib.sha256(value.encode()).hexdigest() in _DEV_OVERLAY_SECRET_SHA256:
        raise ImproperlyConfigured(
            f"{name} is the dev overlay's committed value (k8s/overlays/dev), public in this repository;"
            f" set DEV_OVERLAY=true only on that local cluster ({hint})"
        )
    if len(value) < SECRET_MIN_LENGTHS[name]:
        raise ImproperlyConfigured(
            f"{name} is {len(value)} characters; at least {SECRET_MIN_LENGTHS[name]} are required"
            f" when DJANGO_DEBUG is off ({hint})"
        )
    marker = next((m for m in _PLACEHOLDER_MARKERS if m in value.lower()), None)
    if marker or len(set(value)) < 5:
        raise ImproperlyConfigured(
            f"{name} is a placeholder ({marker or 'too few distinct characters'}), not a secret ({hint})"
        )


if not DEBUG:
    _check_secret("DJANGO_SECRET_KEY", SECRET_KEY)
    _check_secret("SECRET_TOKEN", SECRET_TOKEN)

# =============================================================================
# Logins: staff passwords (admin, browsable API, HTTP Basic on /ops)
# =============================================================================
# Every attempt is counted per address and per username in Redis before the password is hashed; past a
# limit, refused unhashed (429, Retry-After) until LOGIN_LOCKOUT_SECONDS after the first counted attempt.
# A successful login gives its count back. core/login_guard.py says why not django-axes.
AUTHENTICATION_BACKENDS = ["core.login_guard.GuardedModelBackend"]
LOGIN_FAILURE_LIMIT_PER_IP = env.int("LOGIN_FAILURE_LIMIT_PER_IP", default=20)
LOGIN_FAILURE_LIMIT_PER_USERNAME = env.int("LOGIN_FAILURE_LIMIT_PER_USERNAME", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)
# https://docs.djangoproject.com/en/5.2/topics/auth/passwords/#enabling-password-validation
PASSWORD_MIN_LENGTH = env.int("PASSWORD_MIN_LENGTH", default=12)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": PASSWORD_MIN_LENGTH},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# =============================================================================
# Pipeline behaviour
# =============================================================================
ENRICHMENT_LATENCY_MS = env.int("ENRICHMENT_LATENCY_MS", default=200)
ENRICHMENT_FAILURE_RATE = env.float("ENRICHMENT_FAILURE_RATE", default=0.0)
# The demo's fault items (HANG, DOWN, BOMBA, FLAKY, CRASH; docs/pipeline.md "Simulating failures"): seeded by
# seed_catalog and acted on by the simulated provider only when on (`make run`, the tests, the chaos run).
# Off (every deployment's default) they are not seeded and any such product is an ordinary item.
DEMO_FAULTS_ENABLED = env.bool("DEMO_FAULTS_ENABLED", default=False)
# CRASH kills the worker only with this on too.
DEMO_CRASH_ENABLED = env.bool("DEMO_CRASH_ENABLED", default=False)
# Retries: delay n = min(RETRY_BACKOFF_BASE * 2**n, RETRY_BACKOFF_MAX), full jitter.
TASK_MAX_RETRIES = env.int("TASK_MAX_RETRIES", default=5)
TASK_RETRY_BACKOFF_BASE = env.int("TASK_RETRY_BACKOFF_BASE", default=1)
TASK_RETRY_BACKOFF_MAX = env.int("TASK_RETRY_BACKOFF_MAX", default=60)
# A hanging provider: the soft limit raises inside the task (retried as transient);
# the hard limit is a safety net that kills the child (redelivered, bounded by the delivery limit).
ENRICHMENT_SOFT_TIME_LIMIT = env.float("ENRICHMENT_SOFT_TIME_LIMIT", default=10.0)
ENRICHMENT_TIME_LIMIT = env.float("ENRICHMENT_TIME_LIMIT", default=30.0)
QUEUE_DELIVERY_LIMIT = env.int("QUEUE_DELIVERY_LIMIT", default=3)
OUTBOX_GRACE_SECONDS = env.float("OUTBOX_GRACE_SECONDS", default=5.0)
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=100)
OUTBOX_POLL_SECONDS = env.float("OUTBOX_POLL_SECONDS", default=1.0)
# After a LISTEN wake-up the relay may wait this long for more commits before taking its batch: less relay CPU per
# order under light load, that much more latency for the first order of each batch (bench/README.md; 0: no wait).
OUTBOX_LINGER_SECONDS = env.float("OUTBOX_LINGER_SECONDS", default=0.0)
# The reconciler (orders/services/reconcile.py, run by the relay every RECONCILE_INTERVAL_SECONDS and by
# `manage.py reconcile_orders`): an order in flight with no history entry for STUCK_ORDER_SECONDS (plus its
# retry's delay) is re-published at its stage, at most RECONCILE_MAX_ATTEMPTS times without progress, then
# failed; RECONCILE_BATCH_SIZE orders per pass (0 interval: the relay does not reconcile).
STUCK_ORDER_SECONDS = env.float("STUCK_ORDER_SECONDS", default=300.0)
RECONCILE_INTERVAL_SECONDS = env.float("RECONCILE_INTERVAL_SECONDS", default=60.0)
RECONCILE_MAX_ATTEMPTS = env.int("RECONCILE_MAX_ATTEMPTS", default=3)
RECONCILE_BATCH_SIZE = env.int("RECONCILE_BATCH_SIZE", default=500)
# How far back a pass looks for failed orders whose dead letter never reached the archive.
RECONCILE_LOOKBACK_SECONDS = env.float("RECONCILE_LOOKBACK_SECONDS", default=86400.0)
# Where the chain is published once the order commits: by the relay (default), which the commit wakes at
# once with NOTIFY and which publishes in batches with pipelined confirms, or also inline, by the web
# process right after the commit (a second transaction and a broker round trip on the request).
# bench/README.md measures both.
OUTBOX_PUBLISH_INLINE = env.bool("OUTBOX_PUBLISH_INLINE", default=False)
# Seconds the relay waits for the broker's confirms of a batch; past it the connection is dropped and the
# rows stay unsent for the next batch (a broker that blocks publishers, a memory or disk alarm, never
# confirms). The inline publish waits OUTBOX_INLINE_TIMEOUT at most (the request is waiting; the order is
# committed and the relay publishes it later); it bounds its socket reads and writes too.
OUTBOX_CONFIRM_TIMEOUT = env.float("OUTBOX_CONFIRM_TIMEOUT", default=10.0)
OUTBOX_INLINE_TIMEOUT = env.float("OUTBOX_INLINE_TIMEOUT", default=2.0)
# Socket read/write bound (py-amqp read_timeout/write_timeout) of every broker connection: a node that
# went silent fails the read after this long and the client moves to the next node.
BROKER_SOCKET_TIMEOUT = env.float("BROKER_SOCKET_TIMEOUT", default=10.0)
# Broker and Redis health for /metrics and GET /ops/diagnostics, and /metrics' database gauges, are checked
# at most once per this many seconds per process, over one kept connection (orders/metrics_collect.py).
DIAGNOSTICS_CACHE_SECONDS = env.float("DIAGNOSTICS_CACHE_SECONDS", default=5.0)
# /metrics answers only a Host that is an IP address (Prometheus scrapes the pod by its address) or one of
# these names (compose's prometheus scrapes `web`); any other Host, the Ingress's public name included, gets
# a 404 (core/views.py metrics_view).
METRICS_ALLOWED_HOSTS = env.list("METRICS_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# The DLQ's bound: past either, RabbitMQ refuses new dead letters (overflow reject-publish) and, with
# at-least-once dead-lettering, keeps them in their source queue until the archiver makes room: none is
# dropped (docs/pipeline.md "Failure handling"). 0 = no bound of that kind.
DLQ_MAX_LENGTH = env.int("DLQ_MAX_LENGTH", default=100_000)
DLQ_MAX_BYTES = env.int("DLQ_MAX_BYTES", default=512 * 1024 * 1024)
# The archiver stops touching its heartbeat after this many dead letters in a row it could not store (its
# liveness probe then restarts it); a malformed one is stored raw and does not count.
ARCHIVER_FAILURE_LIMIT = env.int("ARCHIVER_FAILURE_LIMIT", default=5)

# =============================================================================
# Webhooks (orders/webhooks/): a client's endpoint gets its orders' terminal events, Standard Webhooks
# =============================================================================
# After a secret rotation (`api_client set-webhook` again, `rotate-webhook-secret`, the admin) deliveries
# are signed with the old secret too for this long, so the receiver can switch over.
WEBHOOK_SECRET_GRACE_SECONDS = env.int("WEBHOOK_SECRET_GRACE_SECONDS", default=24 * 3600)
# Seconds to connect to an endpoint, and to wait for each read of its answer. A slow endpoint holds one
# thread of the webhooks worker, never an order: that worker and queue are its own.
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=3.0)
WEBHOOK_READ_TIMEOUT = env.float("WEBHOOK_READ_TIMEOUT", default=10.0)
# The whole attempt (connect, send, the answer's head and body) ends by this deadline: a receiver dripping
# its answer is cut off there, and the attempt is a timeout (retried), never delivered. Only a complete,
# well-formed answer counts, its body read to its end; a body over WEBHOOK_RESPONSE_MAX_BYTES does not.
WEBHOOK_TOTAL_TIMEOUT = env.float("WEBHOOK_TOTAL_TIMEOUT", default=15.0)
WEBHOOK_RESPONSE_MAX_BYTES = env.int("WEBHOOK_RESPONSE_MAX_BYTES", default=1024 * 1024)
# An endpoint failing this many attempts in a row, or failing for this long (0: not that bound), is
# disabled (as Stripe does): its client's events wait, undelivered and not dead-lettered, until an
# operator re-enables it (the admin, `manage.py webhook_endpoint enable NAME`), which sends them.
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=100)
WEBHOOK_DISABLE_AFTER_SECONDS = env.int("WEBHOOK_DISABLE_AFTER_SECONDS", default=3 * 24 * 3600)
# Retries of a delivery that timed out, could not connect, or got a 429 or 5xx: delay n is uniform in
# [0, min(BASE * 2**n, MAX)] seconds (full jitter), or the answer's Retry-After capped at MAX; then the
# delivery is dead-lettered (as is any other 3xx/4xx at once), to be redriven by an operator.
WEBHOOK_MAX_RETRIES = env.int("WEBHOOK_MAX_RETRIES", default=10)
WEBHOOK_RETRY_BACKOFF_BASE = env.float("WEBHOOK_RETRY_BACKOFF_BASE", default=2.0)
WEBHOOK_RETRY_BACKOFF_MAX = env.float("WEBHOOK_RETRY_BACKOFF_MAX", default=3600.0)
# Local development and tests only: http URLs and private/loopback/link-local addresses are allowed.
# Off (the default), an endpoint must be https on a public address, checked when it is set and, every
# address its name resolves to, before each delivery (DNS rebinding).
WEBHOOK_ALLOW_PRIVATE_URLS = env.bool("WEBHOOK_ALLOW_PRIVATE_URLS", default=False)

# =============================================================================
# Celery (https://docs.celeryq.dev/en/stable/userguide/configuration.html)
# =============================================================================
# One node's URL, or a cluster's nodes as Celery/kombu's `;`-separated list. With BROKER_URL_SHUFFLE each
# process takes the list in its own random order (kombu opens every connection at the first URL: unshuffled,
# every process sits on node 1) and moves along it when its node fails (core/broker_nodes.py).
BROKER_URL_SHUFFLE = env.bool("BROKER_URL_SHUFFLE", default=True)
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=env.str("RABBITMQ_URL", default="amqp://guest:guest@127.0.0.1:5672//")
)
if BROKER_URL_SHUFFLE:
    CELERY_BROKER_URL = urls_shuffled(CELERY_BROKER_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=3.0)
# AMQP heartbeat: a node that went silent (a partition, a host gone: no RST, no FIN) is found after two
# missed beats, 2 x 10 s, and the worker moves to another node (Celery's default 120 s: four minutes).
CELERY_BROKER_HEARTBEAT = env.float("BROKER_HEARTBEAT", default=10.0)
# The worker's consumer reconnects along the list with the failed node last, and declares the
# delayed-retry topology once over its own connection (core/celery_cluster.py).
CELERY_WORKER_CONSUMER = "core.celery_cluster:Consumer"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "confirm_publish": True,
    # Every read and write bounded, workers' included: a publish to a silent node fails after this long and
    # is retried on the next node (CELERY_TASK_PUBLISH_RETRY_POLICY), as is one to a blocked broker.
    "read_timeout": BROKER_SOCKET_TIMEOUT,
    "write_timeout": BROKER_SOCKET_TIMEOUT,
    # A publisher's connect gives up fast (the outbox keeps the row); workers reconnect on their own.
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_QUEUES = topology.work_queues(QUEUE_DELIVERY_LIMIT, no_declare=True)
CELERY_TASK_ROUTES = topology.task_routes()
CELERY_TASK_DEFAULT_EXCHANGE = topology.ORDERS_EXCHANGE.name
CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
CELERY_TASK_DEFAULT_QUEUE = topology.STAGES[0].queue
CELERY_TASK_CREATE_MISSING_QUEUES = False
# The set-up (manage.py declare_topology) owns the topology; publishers never re-declare.
CELERY_TASK_PUBLISH_RETRY = True
# A stage's publish of the next stage (after its commit): each attempt moves to the next node of the list; a
# blocked broker (memory or disk alarm) fails an attempt after BROKER_SOCKET_TIMEOUT, so these retries are what
# a stage waits out an alarm with (~BROKER_PUBLISH_RETRIES x 12 s) before the task errors and is dead-lettered.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": env.int("BROKER_PUBLISH_RETRIES", default=30),
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 2,
}
# The acks of every task, set once here (orders/stage_task.py relies on them): late, so a worker that dies
# mid-task leaves its message to be redelivered.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A failed task is rejected without requeue, so RabbitMQ dead-letters it (Celery acks failures by default).
CELERY_TASK_ACKS_ON_FAILURE = False
# A hard time limit requeues; the queue's delivery limit bounds it (see docs/pipeline.md "Failure handling").
CELERY_TASK_ACKS_ON_TIMEOUT = False
# Celery's Django fix-up closes the database connection before and after every task unless this is set
# (bench/: a PostgreSQL connect was 12-17 % of each task); core/worker_signals.py still drops a connection
# that failed or outlived CONN_MAX_AGE after each task, as Django does after each request.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# Messages reserved per worker slot (acks late: a reserved message is redelivered if the worker dies). With
# 1, every task waits a broker round trip for its next message (bench/README.md).
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=4)
# Task events cost publishes per task; Flower turns them on while it runs (its --enable-events default),
# or set WORKER_TASK_EVENTS=true. Worker heartbeats (Flower's worker list) are sent either way.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("WORKER_TASK_EVENTS", default=False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

# Workers serve /metrics on this port from their main process (0 = off).
METRICS_PORT = env.int("METRICS_PORT", default=0)

# =============================================================================
# Logging: JSON lines in containers, readable lines in the run command
# =============================================================================
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"structured": {"()": "core.logging.build_formatter", "fmt": LOG_FORMAT}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "amqp": {"level": "WARNING"},
        "kombu": {"level": "WARNING"},
        # Celery's "Task ... succeeded in ..." line per task: the stage's own `stage_finished` line carries the
        # same (task id, stage, outcome, duration) with the order id; failures and retries still log.
        "celery.app.trace": {"level": env.str("CELERY_TRACE_LOG_LEVEL", default="WARNING")},
        # uvicorn configures its loggers before Django loads; these route them through ours.
        "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
# The provider call's total deadline: every wait in it (latency, HANG, a refund's) ends by then, and the
# call is then a transient timeout.
ENRICHMENT_PROVIDER_TIMEOUT = env.float("ENRICHMENT_PROVIDER_TIMEOUT", default=5.0)
# Touched by the relay and the archiver each loop; their liveness probe checks its age.
HEARTBEAT_FILE = env.str("HEARTBEAT_FILE", default="/tmp/heartbeat")  # noqa: S108  (a liveness file, no secret; the pod's own /tmp)
# Fault injection for tests and the chaos run: the archiver dies after storing, before acking.
DEAD_LETTER_FAULT_AFTER_STORE = env.bool("DEAD_LETTER_FAULT_AFTER_STORE", default=False)
