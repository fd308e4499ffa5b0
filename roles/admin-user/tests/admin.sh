#!/bin/sh
set -eu
fail() { echo "FAIL: $*"; exit 1; }

getent group admins >/dev/null || fail "group admins missing"
gid=$(getent group admins | cut -d: -f3)
[ "$gid" -lt 1000 ] || fail "admins is not a system group (gid $gid)"
id -nG admin | tr ' ' '\n' | grep -qx admins || fail "admin is not in admins"
[ "$(passwd -S admin | cut -d' ' -f2)" = L ] || fail "admin account is not locked"
visudo -cq || fail "sudoers does not parse"
sudo -l -U admin | grep -q 'NOPASSWD: ALL' || fail "admin has no passwordless sudo"
[ "$(stat -c %a /home/admin/.ssh)" = 700 ] || fail "~admin/.ssh is not 0700"
echo ok
