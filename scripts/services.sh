#!/usr/bin/env bash
# Start whichever local service is down (PostgreSQL, Redis, RabbitMQ), the way the machine starts them.
set -u
say() { printf '[services] %s\n' "$*"; }

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
  say "starting RabbitMQ"
  rabbitmq-server -detached || true
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 \
    && rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { say "PostgreSQL is not up"; exit 1; }
redis-cli -h 127.0.0.1 ping >/dev/null || { say "Redis is not up"; exit 1; }
rabbitmq-diagnostics -q check_running >/dev/null || { say "RabbitMQ is not up"; exit 1; }
# Flower's broker tab and the queue-depth checks use the management API.
if ! rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_management; then
  say "enabling rabbitmq_management"
  rabbitmq-plugins enable rabbitmq_management >/dev/null
fi
say "PostgreSQL, Redis and RabbitMQ are up"
