#!/bin/sh
# nginx: replace Debian's welcome site with our default server.
set -eu

rm -f /etc/nginx/sites-enabled/default
ln -sfn ../sites-available/default-server /etc/nginx/sites-enabled/default-server
rm -f /var/www/html/index.nginx-debian.html

# The package enables nginx.service already; say so explicitly for readers.
systemctl enable nginx.service
nginx -t -q

image-stamp
