#!/usr/bin/env bash
# Lint, format check and type check, as configured in pyproject.toml: `ruff check`, `ruff format --check`,
# `mypy`. Runs all three and exits non-zero if any of them found something.
#   bash scripts/lint.sh            the whole tree (mypy: the packages listed in pyproject.toml)
#   bash scripts/lint.sh clients    only these paths; mypy then reports only their errors (the modules they
#                                   import are still analysed, with their own errors silenced)
set -u
cd "$(dirname "$0")/.."
bash scripts/venv.sh requirements-dev.txt >/dev/null || exit 1
status=0
step() { echo "== $*"; "$@" || status=1; }
if [ $# -eq 0 ]; then
  step .venv/bin/ruff check .
  step .venv/bin/ruff format --check .
  step .venv/bin/mypy
else
  step .venv/bin/ruff check "$@"
  step .venv/bin/ruff format --check "$@"
  step .venv/bin/mypy --follow-imports=silent --no-warn-unused-configs "$@"
fi
[ "$status" -eq 0 ] || echo "lint.sh: findings above (make fmt fixes formatting and the safe lint fixes)" >&2
exit "$status"
