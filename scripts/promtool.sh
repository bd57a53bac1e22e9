#!/usr/bin/env bash
# Debian's prometheus package for its promtool: tests/deploy/test_alert_rules.py runs `promtool check rules`
# and `promtool test rules` on deploy/prometheus/. Installed only when promtool is missing. Idempotent, quiet.
# (The package also ships a prometheus service; in containers policy-rc.d keeps it from starting, on a
# systemd host it starts on :9090, which nothing here uses.)
set -eu
command -v promtool >/dev/null 2>&1 && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null
