#!/usr/bin/env bash
# Debian's chromium for the real-browser test (e2e/test_live_page.py): Playwright drives it through
# executable_path, so `playwright install` (a download at run time) is never needed. Idempotent, quiet.
set -eu
[ -x /usr/bin/chromium ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
[ -x /usr/bin/chromium ]
