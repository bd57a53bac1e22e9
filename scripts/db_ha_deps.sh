#!/usr/bin/env bash
# Debian's packages devtools/db_ha.py runs (etcd, HAProxy, PgBouncer; PostgreSQL 15 is already on the machine),
# installed only when missing. devtools/db_ha.py starts its own copies on its own ports; none of these packages'
# system services may stay running (etcd's would take 2379, HAProxy's and PgBouncer's their default ports), so
# the install runs under a policy-rc.d that forbids starting services, and anything started anyway is stopped.
set -eu
say() { printf '[db_ha_deps] %s\n' "$*"; }

# scripts/apt.sh installs what is missing under a policy-rc.d that forbids service starts.
bash "$(dirname "$0")/apt.sh" etcd=etcd-server etcdctl=etcd-client haproxy=haproxy pgbouncer=pgbouncer \
  /usr/lib/postgresql/15/bin/postgres=postgresql-15

# No system-wide service of these packages stays running (with systemd, none is enabled either). Without
# systemd, only a service whose own pid file names a live process is stopped: the init scripts' `stop` with no
# pid file matches every process of that executable (start-stop-daemon --exec) and would kill devtools/db_ha.py's
# own etcd, HAProxy and PgBouncer too.
for entry in etcd:/run/etcd.pid haproxy:/run/haproxy.pid pgbouncer:/run/postgresql/pgbouncer.pid; do
  svc=${entry%%:*} pidfile=${entry#*:}
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif [ -s "$pidfile" ] && kill -0 "$(head -n1 "$pidfile")" 2>/dev/null && [ -x "/etc/init.d/$svc" ]; then
    say "stopping the system $svc service"
    "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
  fi
done
for port in 2379 2380; do
  if ss -ltnH "sport = :$port" | grep -q .; then
    say "warning: something listens on $port (a system etcd?): devtools/db_ha.py uses its own ports anyway"
  fi
done
say "etcd $(etcd --version 2>/dev/null | head -n1 | awk '{print $3}'), $(haproxy -v 2>/dev/null | head -n1 | awk '{print $1, $3}'), $(pgbouncer --version 2>/dev/null | head -n1) ready"
