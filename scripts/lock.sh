#!/usr/bin/env bash
# Compile requirements.txt / requirements-dev.txt into requirements.lock / requirements-dev.lock: every
# transitive dependency pinned, with the hashes of all its files on PyPI (any platform, Python 3.11), which
# scripts/venv.sh and the Dockerfile install with --require-hashes. The existing locks are the preferred
# versions: a run only moves what the .txt files changed; `--upgrade` (passed through) moves everything.
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/uv ] || bash scripts/venv.sh requirements-dev.txt  # the pinned uv
# PyPI only: this machine's pip configuration (extra indexes, find-links) must not leak into the lock.
export UV_CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh"
compile() { .venv/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
  --index-url https://pypi.org/simple "$@"; }
compile requirements.txt -o requirements.lock "${@}"
# The dev lock keeps every runtime version of requirements.lock.
compile requirements-dev.txt -c requirements.lock -o requirements-dev.lock "${@}"
