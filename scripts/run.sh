#!/usr/bin/env bash
# Install everything and start the whole system in the foreground (Ctrl-C stops it cleanly).
set -eu
cd "$(dirname "$0")/.."
bash scripts/services.sh
bash scripts/apt.sh nginx=nginx-light
bash scripts/venv.sh requirements.txt
export PATH="$PWD/.venv/bin:$PATH"
# This checkout's secrets (API token, Django key, Flower's user:password), generated on the first run and
# kept in var/ (git-ignored): the settings refuse placeholder secrets with DEBUG off, here as in production.
# Any of them set in the environment wins.
mkdir -p var
[ -f var/dev-secrets.env ] || (umask 077 && python -c "import secrets as s; print(
f'SECRET_TOKEN={s.token_urlsafe(32)}\nDJANGO_SECRET_KEY={s.token_urlsafe(64)}\nFLOWER_BASIC_AUTH=admin:{s.token_urlsafe(16)}')" \
  > var/dev-secrets.env)
while IFS='=' read -r name value; do [ -n "${!name:-}" ] || export "$name=$value"; done < var/dev-secrets.env
# Plain HTTP on localhost: no SSL redirect, HSTS or secure-only cookies (settings.py, "Security").
export DJANGO_HTTPS=${DJANGO_HTTPS:-false}
export LOG_FORMAT=${LOG_FORMAT:-console}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/orders}
# nginx (the Procfile's `proxy`, scripts/proxy.sh) is the one address, PROXY_PORT: it buffers every request and
# response in front of web's sync workers and routes /ws/ to live, both on loopback only behind it.
export PROXY_PORT=${PROXY_PORT:-8000}
export WEB_HOST=${WEB_HOST:-127.0.0.1} WEB_PORT=${WEB_PORT:-8002}
export LIVE_HOST=${LIVE_HOST:-127.0.0.1} LIVE_PORT=${LIVE_PORT:-8001}
export NUM_PROXIES=${NUM_PROXIES:-1}
# The demo: the live page needs no login (read-only, no customer data; off by default elsewhere).
export LIVE_FEED_ANONYMOUS=${LIVE_FEED_ANONYMOUS:-true}
# The demo's fault items (HANG, DOWN, BOMBA, FLAKY, CRASH): seeded and acting here, never by default.
export DEMO_FAULTS_ENABLED=${DEMO_FAULTS_ENABLED:-true}
# Webhook endpoints on this machine (a receiver on http://127.0.0.1:...): allowed here, never by default.
export WEBHOOK_ALLOW_PRIVATE_URLS=${WEBHOOK_ALLOW_PRIVATE_URLS:-true}
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/prometheus}
# The same environment for commands in another shell (README "Try it"): `set -a; . var/run.env; set +a`.
(umask 077 && for name in SECRET_TOKEN DJANGO_SECRET_KEY FLOWER_BASIC_AUTH DJANGO_HTTPS LOG_FORMAT DATABASE_URL \
  PROXY_PORT WEB_HOST WEB_PORT LIVE_HOST LIVE_PORT NUM_PROXIES LIVE_FEED_ANONYMOUS DEMO_FAULTS_ENABLED \
  WEBHOOK_ALLOW_PRIVATE_URLS; do printf '%s=%q\n' "$name" "${!name}"; done > var/run.env)
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
db=$(python -c "import os,urllib.parse as u; print(u.urlparse(os.environ['DATABASE_URL']).path.lstrip('/'))")
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
  || createdb -h 127.0.0.1 -U postgres "$db"
python manage.py migrate --noinput
python manage.py seed_catalog
python manage.py declare_topology
echo "API, admin, docs and the live page on http://localhost:$PROXY_PORT/  (token: \$SECRET_TOKEN=$SECRET_TOKEN)"
echo "Flower on http://localhost:${FLOWER_PORT:-5555} ($FLOWER_BASIC_AUTH)"
echo "(secrets in var/dev-secrets.env)"
exec honcho start -f Procfile
