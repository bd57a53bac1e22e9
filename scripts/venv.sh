#!/usr/bin/env bash
# Create .venv and install a requirements file's lock (requirements.txt -> requirements.lock,
# requirements-dev.txt -> requirements-dev.lock; scripts/lock.sh compiles them), every file checked
# against the lock's hashes. Skips the install when no lock changed since the last one.
set -eu
req=${1:-requirements.txt}
cd "$(dirname "$0")/.."
lock="${req%.txt}.lock"
[ -f "$lock" ] || { echo "venv.sh: no $lock (scripts/lock.sh compiles it from $req)" >&2; exit 1; }
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.installed-$(cat requirements*.lock | sha256sum | cut -c1-16)-$(basename "$lock")"
if [ ! -f "$stamp" ]; then
  # Errors only (-qq): `make run`'s output is the system's, not the installer's (this machine's pip config names
  # local index folders that do not exist, a warning per package).
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_WARN_SCRIPT_LOCATION=1
  .venv/bin/pip install -qq --upgrade pip
  # Hash-checking mode also refuses any dependency the lock does not list.
  .venv/bin/pip install -qq --require-hashes -r "$lock"
  touch "$stamp"
fi
