#!/bin/sh
# containerd: the full default configuration, switched to the systemd cgroup driver
# (the kubelet and systemd must agree on who manages cgroups).
set -eu

install -d -m 0755 /etc/containerd
containerd config default > /etc/containerd/config.toml.new
sed -i 's/^\([[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*\)false/\1true/' /etc/containerd/config.toml.new
grep -q '^[[:space:]]*SystemdCgroup = true' /etc/containerd/config.toml.new \
    || { echo "containerd config has no SystemdCgroup setting to switch" >&2; exit 1; }
mv /etc/containerd/config.toml.new /etc/containerd/config.toml
chmod 0644 /etc/containerd/config.toml /etc/modules-load.d/containerd.conf /etc/sysctl.d/70-containerd.conf

systemctl enable containerd.service

image-stamp
