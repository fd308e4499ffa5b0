#!/bin/sh
# ssh-hardening: key-only sshd, and no host keys in the image.
set -eu

chmod 0644 /etc/ssh/sshd_config.d/50-hardening.conf
systemctl enable ssh.service ssh-hostkeys.service

# Check the configuration with a throwaway key (the image must not keep one).
tmp=$(mktemp -d)
ssh-keygen -q -t ed25519 -N '' -f "$tmp/key"
mkdir -p /run/sshd
/usr/sbin/sshd -t -f /etc/ssh/sshd_config -h "$tmp/key"
rm -rf "$tmp"

# openssh-server's postinst generated host keys: every server built from this image
# would share them. Remove them; ssh-hostkeys.service makes fresh ones on first boot.
rm -f /etc/ssh/ssh_host_*

image-stamp
