#!/usr/bin/env bash
# The Procfile's `proxy`: nginx (Debian's package; `make run` installs it) in front of web and live, buffering
# every request and response, as nginx does in compose and the Ingress in k8s (deploy/nginx/).
set -eu
cd "$(dirname "$0")/.."
export PROXY_PORT=${PROXY_PORT:-8000}
export PROXY_WEB_UPSTREAM=${PROXY_WEB_UPSTREAM:-127.0.0.1:${WEB_PORT:-8002}}
export PROXY_LIVE_UPSTREAM=${PROXY_LIVE_UPSTREAM:-127.0.0.1:${LIVE_PORT:-8001}}
export PROXY_CLIENT_TIMEOUT=${PROXY_CLIENT_TIMEOUT:-10s}
export PROXY_KEEPALIVE_TIMEOUT=${PROXY_KEEPALIVE_TIMEOUT:-5s}
export PROXY_MAX_BODY=${PROXY_MAX_BODY:-1m}
export PROXY_ACCESS_LOG=${PROXY_ACCESS_LOG:-/dev/stdout orders}
dir=${PROXY_DIR:-$PWD/var/nginx-$PROXY_PORT}
mkdir -p "$dir/tmp"
# As root, nginx's workers run as nobody: they write buffered bodies there.
[ "$(id -u)" != 0 ] || chown nobody "$dir/tmp"
for name in local.conf:nginx.conf orders.conf.template:orders.conf; do
  python3 -c '
import os, re, sys
text = open(sys.argv[1]).read()
# the same rule as envsubst in nginx image: only ${NAME}s that are set; nginx $variables stay
print(re.sub(r"\$\{(PROXY_\w+)\}", lambda m: os.environ.get(m.group(1), m.group(0)), text), end="")
' "deploy/nginx/${name%%:*}" >"$dir/${name#*:}"
done
exec /usr/sbin/nginx -e stderr -p "$dir/" -c "$dir/nginx.conf"
