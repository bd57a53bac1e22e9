#!/usr/bin/env bash
# Install everything the tests need and run them (real PostgreSQL, RabbitMQ, Redis; own db and vhost).
set -eu
cd "$(dirname "$0")/.."
bash scripts/services.sh
bash scripts/venv.sh requirements-dev.txt
bash scripts/browser.sh
bash scripts/promtool.sh
export PATH="$PWD/.venv/bin:$PATH"
exec python -m pytest "$@"
