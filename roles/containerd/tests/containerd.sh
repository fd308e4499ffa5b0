#!/bin/sh
# The configuration parses, uses systemd cgroups, and the host prepares the kernel.
set -eu
fail() { echo "FAIL: $*"; exit 1; }

containerd --config /etc/containerd/config.toml config dump > /tmp/containerd-effective.toml \
    || fail "containerd cannot load /etc/containerd/config.toml"
grep -q 'SystemdCgroup = true' /tmp/containerd-effective.toml || fail "runc does not use systemd cgroups"
grep -qx overlay /etc/modules-load.d/containerd.conf || fail "overlay not loaded at boot"
grep -qx br_netfilter /etc/modules-load.d/containerd.conf || fail "br_netfilter not loaded at boot"
[ -L /etc/systemd/system/multi-user.target.wants/containerd.service ] || fail "containerd.service not enabled"

# ip_forward must win over the hardening file (lexical order of /etc/sysctl.d).
last=$(cat /etc/sysctl.d/*.conf | sed -n 's/^[[:space:]]*net.ipv4.ip_forward[[:space:]]*=[[:space:]]*//p' | tail -n1)
[ "$last" = 1 ] || fail "net.ipv4.ip_forward ends up '$last'"
runc --version >/dev/null || fail "runc does not run"
echo ok
