#!/bin/sh
# The effective sshd configuration refuses root and passwords.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ssh-keygen -q -t ed25519 -N '' -f "$tmp/key"
mkdir -p /run/sshd
/usr/sbin/sshd -T -f /etc/ssh/sshd_config -h "$tmp/key" -C user=admin,host=client,addr=192.0.2.1 \
    > "$tmp/effective"
for want in "permitrootlogin no" "passwordauthentication no" \
            "kbdinteractiveauthentication no" "permitemptypasswords no" \
            "allowgroups admins" "x11forwarding no" "maxauthtries 3"; do
    grep -qx "$want" "$tmp/effective" || { echo "FAIL: sshd has not '$want'"; exit 1; }
done
echo ok
