#!/bin/sh
# The image says what it is, and nothing of the build is left behind.
set -eu
fail() { echo "FAIL: $*"; exit 1; }

[ -f /etc/image-release ] || fail "/etc/image-release missing"
. /etc/image-release
[ -n "$IMAGE" ] && [ -n "$VERSION" ] || fail "image-release lacks IMAGE/VERSION"
if [ -n "${LAYER_IMAGE:-}" ]; then
    [ "$IMAGE" = "$LAYER_IMAGE" ] || fail "image-release names $IMAGE, not $LAYER_IMAGE"
fi
grep -qF "$IMAGE $VERSION" /etc/motd || fail "motd does not name $IMAGE $VERSION"

[ ! -e /.layer ] || fail "/.layer staging area left in the image"
[ ! -e /usr/sbin/policy-rc.d ] || fail "build-time policy-rc.d left in the image"
[ ! -s /etc/machine-id ] || fail "a machine-id is baked into the image"
[ "$(cat /etc/hostname)" = localhost ] || fail "build host name baked into /etc/hostname"
[ -L /etc/systemd/system/multi-user.target.wants/systemd-networkd.service ] \
    || fail "systemd-networkd is not enabled"
[ "$(readlink /etc/resolv.conf)" = ../run/systemd/resolve/stub-resolv.conf ] \
    || fail "/etc/resolv.conf is not systemd-resolved's stub (build host's resolver baked in?)"
[ -x /sbin/init ] || fail "no init"
echo "ok: $IMAGE $VERSION ($LINEAGE)"
