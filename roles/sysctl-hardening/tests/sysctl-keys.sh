#!/bin/sh
# Every key in the image's sysctl.d files names a real kernel setting (a typo is only
# a warning at boot), and the hardening values are the ones that win. The test instance
# shares the test host's kernel: keys of modules not loaded there are only noted.
set -eu
if [ ! -d /proc/sys/kernel ]; then
    echo "skip: no /proc/sys in this test instance"
    exit 0
fi
status=0
for f in /etc/sysctl.d/*.conf; do
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$f" | while IFS='=' read -r key _; do
        key=$(echo "$key" | tr -d ' \t')
        path=/proc/sys/$(echo "${key#-}" | tr . /)
        case "$key" in
            # '-key': optional by design (systemd-sysctl ignores failures to set it)
            -*) [ -e "$path" ] || echo "note: optional ${key#-} absent on this kernel" ;;
            # module-provided keys (br_netfilter) exist only once the module is loaded
            net.bridge.*) [ -e "$path" ] || echo "note: $key needs its module ($f)" ;;
            *) [ -e "$path" ] || { echo "FAIL: unknown sysctl $key in $f"; exit 1; } ;;
        esac
    done || status=1
done
[ "$status" = 0 ] || exit 1

# Last file wins, as systemd-sysctl applies them in lexical order.
effective() { cat /etc/sysctl.d/*.conf | sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" | tail -n1; }
for kv in kernel.kptr_restrict=2 net.ipv4.conf.all.accept_redirects=0 net.ipv4.tcp_syncookies=1; do
    [ "$(effective "${kv%%=*}")" = "${kv#*=}" ] || { echo "FAIL: ${kv%%=*} is not ${kv#*=}"; exit 1; }
done
echo ok
