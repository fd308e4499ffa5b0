#!/bin/sh
set -eu
fail() { echo "FAIL: $*"; exit 1; }

getent passwd app >/dev/null || fail "no app user"
uid=$(id -u app)
[ "$uid" -lt 1000 ] || fail "app is not a system user (uid $uid)"
[ "$(getent passwd app | cut -d: -f7)" = /usr/sbin/nologin ] || fail "app has a login shell"
[ "$(passwd -S app | cut -d' ' -f2)" != P ] || fail "app has a usable password"
[ "$(stat -c %U:%a /srv/app)" = root:755 ] || fail "/srv/app must be root's, 0755"
[ "$(stat -c %U /var/lib/app)" = app ] || fail "/var/lib/app is not the app user's"
grep -q '^ExecStart=/srv/app/%i/run$' /etc/systemd/system/app@.service || fail "app@.service template broken"
# The app user can run code but not change it.
if runuser -u app -- sh -c 'touch /srv/app/.probe' 2>/dev/null; then
    rm -f /srv/app/.probe; fail "app can write /srv/app"
fi
runuser -u app -- python3 -c 'print("app user runs python")' >/dev/null || fail "app cannot run python3"
echo ok
