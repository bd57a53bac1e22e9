#!/usr/bin/env bash
# Install everything and start the whole system in the foreground (Ctrl-C stops it cleanly).
set -eu
cd "$(dirname "$0")/.."
bash scripts/services.sh
bash scripts/venv.sh requirements.txt
export PATH="$PWD/.venv/bin:$PATH"
export SECRET_TOKEN=${SECRET_TOKEN:-dev-token}
export DJANGO_SECRET_KEY=${DJANGO_SECRET_KEY:-dev-only-not-for-production}
export LOG_FORMAT=${LOG_FORMAT:-console}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/orders}
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/prometheus}
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
db=$(python -c "import os,urllib.parse as u; print(u.urlparse(os.environ['DATABASE_URL']).path.lstrip('/'))")
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
  || createdb -h 127.0.0.1 -U postgres "$db"
python manage.py migrate --noinput
python manage.py seed_catalog
python manage.py declare_topology
echo "API on http://localhost:8000  (token: \$SECRET_TOKEN=$SECRET_TOKEN)  Flower on http://localhost:5555"
exec honcho start -f Procfile
