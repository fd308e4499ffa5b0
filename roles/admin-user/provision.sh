#!/bin/sh
# admin-user: system group `admins` with passwordless sudo, locked `admin` account.
set -eu

getent group admins >/dev/null || addgroup --system admins
if ! getent passwd admin >/dev/null; then
    adduser --disabled-password --gecos "Administrator" --shell /bin/bash admin
fi
adduser admin admins
passwd --lock admin

install -d -m 0700 -o admin -g admin /home/admin/.ssh
install -m 0600 -o admin -g admin /dev/null /home/admin/.ssh/authorized_keys

# sudoers drop-ins must be root-owned and not writable by others, or sudo ignores them.
chmod 0440 /etc/sudoers.d/10-admins
visudo -cq

image-stamp
