#!/bin/sh
# The service answers on its configured port, directly and through nginx.
set -eu
. /etc/app/catalog.env
[ -L /etc/systemd/system/multi-user.target.wants/app@catalog.service ] \
    || { echo "FAIL: app@catalog.service is not enabled"; exit 1; }

runuser -u app -- /srv/app/catalog/run 2>/tmp/catalog-test.log &
svc=$!
trap 'kill $svc 2>/dev/null || true' EXIT
get() { curl -fsS --max-time 3 --retry 10 --retry-delay 1 --retry-all-errors "$1"; }

get "http://127.0.0.1:$CATALOG_PORT/healthz" | grep -q '"ok"' \
    || { echo "FAIL: catalog not answering on $CATALOG_PORT"; cat /tmp/catalog-test.log; exit 1; }
n=$(get "http://127.0.0.1:$CATALOG_PORT/items" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" -ge 1 ] || { echo "FAIL: catalog lists no items"; exit 1; }

nginx
trap 'kill $svc 2>/dev/null || true; nginx -s quit 2>/dev/null || true' EXIT
get http://127.0.0.1/catalog/items/PN-2001 | grep -q 'Fountain pen' \
    || { echo "FAIL: nginx does not proxy /catalog/"; exit 1; }
echo "ok: $n items on port $CATALOG_PORT"
