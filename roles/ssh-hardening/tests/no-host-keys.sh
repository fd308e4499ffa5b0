#!/bin/sh
# A golden image must not carry SSH host keys: each server generates its own.
set -eu
keys=$(ls /etc/ssh/ssh_host_* 2>/dev/null || true)
[ -z "$keys" ] || { echo "FAIL: host keys baked into the image: $keys"; exit 1; }
[ -L /etc/systemd/system/multi-user.target.wants/ssh-hostkeys.service ] \
    || { echo "FAIL: ssh-hostkeys.service is not enabled"; exit 1; }
echo ok
