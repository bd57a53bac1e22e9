#!/usr/bin/env bash
# Install everything the tests need and run them (real PostgreSQL, RabbitMQ, Redis; own db and vhost).
set -eu
cd "$(dirname "$0")/.."
bash scripts/services.sh
bash scripts/venv.sh requirements-dev.txt
# Lint, format and type checks first (scripts/lint.sh): findings fail the run. LINT=0 skips them (a quick
# local run of some tests); CI never sets it.
LINT=${LINT:-1}
if [ "$LINT" = 1 ]; then bash scripts/lint.sh; fi
bash scripts/browser.sh
# nginx for the Procfile's proxy (e2e/test_proxy.py)
bash scripts/apt.sh nginx=nginx-light
bash scripts/promtool.sh
export PATH="$PWD/.venv/bin:$PATH"
exec python -m pytest "$@"
