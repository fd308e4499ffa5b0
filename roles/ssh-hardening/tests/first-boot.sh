#!/bin/sh
# What ssh-hostkeys.service does on first boot works, and sshd then serves on its port.
set -eu
unit=/etc/systemd/system/ssh-hostkeys.service
cmd=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$cmd" ] || { echo "FAIL: no ExecStart in $unit"; exit 1; }
$cmd
[ -s /etc/ssh/ssh_host_ed25519_key ] || { echo "FAIL: '$cmd' made no ed25519 key"; exit 1; }

mkdir -p /run/sshd
/usr/sbin/sshd -o ListenAddress=127.0.0.1 -o Port=2222 -o PidFile=/run/sshd-test.pid
trap 'kill "$(cat /run/sshd-test.pid)" 2>/dev/null || true' EXIT
# sshd binds its port before it daemonizes: no wait needed. curl times out after reading the banner.
banner=$(curl -s --max-time 2 telnet://127.0.0.1:2222 </dev/null | head -n1 || true)
case "$banner" in
    SSH-2.0-OpenSSH*) echo "ok: $banner" ;;
    *) echo "FAIL: no SSH banner on 127.0.0.1:2222 (got '$banner')"; exit 1 ;;
esac
