#!/usr/bin/env bash
# Debian's prometheus package for its promtool: tests/deploy/test_alert_rules.py runs `promtool check rules`
# and `promtool test rules` on deploy/prometheus/. Installed only when promtool is missing (scripts/apt.sh: its
# prometheus service is not started). Idempotent, quiet.
set -eu
bash "$(dirname "$0")/apt.sh" promtool=prometheus
command -v promtool >/dev/null
