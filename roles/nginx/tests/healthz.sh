#!/bin/sh
# nginx starts with the image's configuration and answers /healthz, hiding its version.
set -eu
nginx -t -q
nginx
trap 'nginx -s quit 2>/dev/null || true' EXIT
curl -fsS --max-time 3 --retry 5 --retry-delay 1 --retry-all-errors -D /tmp/healthz.headers \
    http://127.0.0.1/healthz | grep -qx ok
if grep -qi '^server: nginx/' /tmp/healthz.headers; then
    echo "FAIL: nginx shows its version"; exit 1
fi
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://127.0.0.1/nope)
[ "$code" = 404 ] || { echo "FAIL: unknown path gave $code"; exit 1; }
echo ok
