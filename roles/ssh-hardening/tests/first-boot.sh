#!/bin/sh
# What ssh-hostkeys.service does on first boot works, and sshd then serves on its port.
set -eu
unit=/etc/systemd/system/ssh-hostkeys.service
cmd=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$cmd" ] || { echo "FAIL: no ExecStart in $unit"; exit 1; }
$cmd
[ -s /etc/ssh/ssh_host_ed25519_key ] || { echo "FAIL: '$cmd' made no ed25519 key"; exit 1; }

mkdir -p /run/sshd
rm -f /run/sshd-test.pid
/usr/sbin/sshd -o ListenAddress=127.0.0.1 -o Port=2222 -o PidFile=/run/sshd-test.pid
trap 'kill "$(cat /run/sshd-test.pid 2>/dev/null)" 2>/dev/null || true' EXIT
# sshd writes its pid file once it listens (it daemonizes before that): wait up to 10 s.
i=0
while [ ! -s /run/sshd-test.pid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# curl's telnet:// prints the server's banner, then times out (the expected exit 28).
banner=$(curl -s --max-time 2 telnet://127.0.0.1:2222 </dev/null | head -n1 || true)
case "$banner" in
    SSH-2.0-OpenSSH*) echo "ok: $banner" ;;
    *) echo "FAIL: no SSH banner on 127.0.0.1:2222 (got '$banner')"; exit 1 ;;
esac
