# svc: a 2 MB service bundle, a symlink, an app file removed, a config edited in place.
set -eu
mkdir -p /opt/svc/bin
head -c 2097152 /dev/urandom > /opt/svc/bin/catalog
chmod 755 /opt/svc/bin/catalog
ln -s /opt/svc/bin/catalog /usr/local/bin/catalog
rm /etc/app/conf.d/route0.conf
sed -i 's/workers = 4/workers = 8/' /etc/app/app.conf
echo 'catalog service' > /etc/svc/role
