#!/usr/bin/env bash
# Debian's chromium for the real-browser tests (e2e/test_live_page.py): Playwright drives it through
# executable_path, so `playwright install` (a download at run time) is never needed. Idempotent, quiet.
set -eu
cd "$(dirname "$0")/.."
bash scripts/apt.sh chromium=chromium
