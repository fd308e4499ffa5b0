# app: a 4 MB application archive, 100 config fragments, a motd rewritten, a base file removed.
set -eu
mkdir -p /opt/app/lib /etc/app/conf.d /var/log/app
head -c 4194304 /dev/urandom > /opt/app/lib/app.jar
i=0
while [ $i -lt 100 ]; do
    echo "route$i = /api/v1/r$i" > "/etc/app/conf.d/route$i.conf"
    i=$((i + 1))
done
echo 'Application server image.' >> /etc/motd
rm /usr/share/doc/base/page0.txt
chown -R 1000:1000 /var/log/app
