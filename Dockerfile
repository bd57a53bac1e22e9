# syntax=docker/dockerfile:1
#
# One image for every process of the order pipeline (see Procfile): web (gunicorn: REST API,
# admin, docs, live page HTML), live (uvicorn: the live page's WebSocket), the three Celery
# workers, the outbox relay, the dead-letter archiver and flower.
# Only the command differs between them (docker-compose.yml, k8s/base/*.yaml).

############################
# Stage 1: build wheels
############################
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY requirements.lock .
# The lock (scripts/lock.sh) pins every transitive dependency with its PyPI hashes: pip refuses any
# file whose hash it does not list. Every locked dependency ships a manylinux wheel for CPython 3.11
# (psycopg[binary], uvloop, httptools, watchfiles, ...), so wheels only: the files are PyPI's own, and
# the runtime stage checks the same hashes again. No compiler is needed here.
RUN pip wheel --no-cache-dir --require-hashes --only-binary=:all: --wheel-dir /wheels -r requirements.lock \
    && cp requirements.lock /wheels/requirements.lock

############################
# Stage 2: runtime
############################
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=orders_project.settings \
    DJANGO_DEBUG=False \
    LOG_FORMAT=json \
    WEB_PORT=8000 \
    LIVE_PORT=8001 \
    DJANGO_STATIC_MANIFEST=true \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus

# Fixed numeric UID/GID so Kubernetes can verify runAsNonRoot (it cannot resolve names).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app

WORKDIR /app

# Install from the builder's wheels through a bind mount: the wheels never land in a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels --require-hashes -r /wheels/requirements.lock

# Application code stays owned by root (read-only for the app user).
COPY . .

# Static files are collected at build time (DJANGO_STATIC_MANIFEST: hashed and gzipped, served by
# WhiteNoise from web with far-future cache headers). The settings must import without a reachable
# database/broker; the values below are build-time dummies, never used at runtime (as long as the
# settings require; the running container gets its own from the environment or refuses to start). Metrics are
# single-process here (`env -u`: prometheus_client goes multiprocess whenever the variable exists,
# even empty, and the gauges created at import would need /tmp/prometheus, created below, empty).
RUN DJANGO_SECRET_KEY=build-time-collectstatic-only-bW3kR8tZ1qX6nV4mC9sL2pJ7 \
    SECRET_TOKEN=build-time-collectstatic-only-hF5dG0yU \
    DJANGO_HTTPS=false \
    DATABASE_URL=postgres://build:build@127.0.0.1:5432/build \
    CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// \
    REDIS_URL=redis://127.0.0.1:6379/0 \
    env -u PROMETHEUS_MULTIPROC_DIR python manage.py collectstatic --noinput \
    && mkdir -p /tmp/prometheus \
    && chown app:app /tmp/prometheus

USER 10001:10001

# 8000 web (incl. /metrics), 8001 live (WebSocket /ws/orders), 5555 flower, 9100 worker metrics (METRICS_PORT)
EXPOSE 8000 8001 5555 9100

# No curl in slim: use the interpreter. urlopen raises (exit 1) on connection errors and non-2xx.
# Only meaningful for the web command; compose overrides it for the other services (live: :8001).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# The Procfile `web` line; `sh -c` for the ${VAR:-default} expansion, `exec` so gunicorn's master
# is PID 1 and receives SIGTERM directly (graceful shutdown: workers finish their requests within
# graceful_timeout, 20 s). Workers: WEB_CONCURRENCY (orders_project/gunicorn_conf.py).
CMD ["sh", "-c", "exec gunicorn orders_project.wsgi:application --config python:orders_project.gunicorn_conf --bind ${WEB_HOST:-0.0.0.0}:${WEB_PORT:-8000}"]
