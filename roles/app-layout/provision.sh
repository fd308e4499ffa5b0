#!/bin/sh
# app-layout: the app user and the /srv/app tree.
set -eu

# Code is root's and read-only to the app user; only state and logs are writable.
install -d -m 0755 -o root -g root /srv/app /etc/app

getent group app >/dev/null || addgroup --system app
if ! getent passwd app >/dev/null; then
    adduser --system --ingroup app --home /srv/app --no-create-home \
        --shell /usr/sbin/nologin --gecos "Application runtime" app
fi
install -d -m 0750 -o app -g app /var/lib/app /var/log/app
chmod 0644 /etc/systemd/system/app@.service

image-stamp
