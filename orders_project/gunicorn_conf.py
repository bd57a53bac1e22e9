"""gunicorn settings for the REST API (the Procfile's `web`): synchronous DRF views on a WSGI server
with several worker processes (bench/README.md measured it against uvicorn, gunicorn's gthread and granian's WSGI and
ASGI interfaces: granian WSGI is faster but cannot bound a request body's time, see REQUEST_BODY_TIMEOUT)."""

import os

# S104: in a container the server must listen on all interfaces; WEB_HOST narrows it
bind = f"{os.environ.get('WEB_HOST', '0.0.0.0')}:{os.environ.get('WEB_PORT', '8000')}"  # noqa: S104
# 2 x cores + 1 (gunicorn's advice); containers set WEB_CONCURRENCY to their CPU limit's share.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1) + 1)
worker_class = "sync"
# A request never takes this long (the database and pool time out first); a stuck worker is replaced.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("WEB_KEEPALIVE", "5"))
# Recycle workers now and then (bounded memory growth), staggered so they never restart together.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "20000"))
max_requests_jitter = max_requests // 10
# Request line and header bounds (gunicorn answers 400 past them); the body is bounded by the app
# (REQUEST_MAX_BODY_BYTES, REQUEST_BODY_TIMEOUT: core/limits.py wraps orders_project.wsgi). The head of a
# request that drips is bounded by `timeout` above only (the sync worker is then killed and replaced),
# the reason a buffering proxy (the Ingress) sits in front in production.
limit_request_line = int(os.environ.get("WEB_LIMIT_REQUEST_LINE", "8190"))
limit_request_fields = int(os.environ.get("WEB_LIMIT_REQUEST_FIELDS", "100"))
limit_request_field_size = int(os.environ.get("WEB_LIMIT_REQUEST_FIELD_SIZE", "8190"))
accesslog = None  # one JSON line per order comes from the app; a line per request is the proxy's job
errorlog = "-"
# gunicorn 27 opens a control socket in ~/.gunicorn, shared by every gunicorn on the host (and read-only
# in the image): not used here.
control_socket_disable = True
