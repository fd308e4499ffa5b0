#!/bin/sh
# base: identity and first-boot hygiene of every golden image.
set -eu

# Networking by systemd-networkd (DHCP on en*/eth*), DNS by systemd-resolved from the
# DHCP answer. systemd-resolved's postinst already points /etc/resolv.conf at its stub.
systemctl enable systemd-networkd.service systemd-resolved.service

# Every server must get its own machine-id on first boot: an empty file tells systemd
# to generate one (a baked id makes DHCP leases and journals collide across servers).
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id

# The bootstrap copied the build host's name; servers get theirs from DHCP/cloud metadata.
echo localhost > /etc/hostname

# UTC everywhere.
ln -sf /usr/share/zoneinfo/Etc/UTC /etc/localtime
echo Etc/UTC > /etc/timezone

image-stamp
