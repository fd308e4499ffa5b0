# base: an admin user, hardening files, 8 MB of "shared libraries", a documentation tree.
set -eu
echo 'admin:x:1000:1000:admin:/home/admin:/bin/sh' >> /etc/passwd
echo 'admin:x:1000:' >> /etc/group
mkdir -p /home/admin/.ssh /var/log /var/lib/base /usr/lib/base /usr/share/doc/base
chmod 700 /home/admin/.ssh
chown -R 1000:1000 /home/admin
echo 'base 1.0' > /etc/base-release
printf 'net.ipv4.ip_forward = 0\nkernel.kptr_restrict = 2\n' > /etc/sysctl.conf
for lib in crypto ssl z xml2; do
    head -c 2097152 /dev/urandom > "/usr/lib/base/lib$lib.so.1"
    ln -s "lib$lib.so.1" "/usr/lib/base/lib$lib.so"
done
i=0
while [ $i -lt 200 ]; do
    echo "base documentation page $i" > "/usr/share/doc/base/page$i.txt"
    i=$((i + 1))
done
# a scratch file made and removed in the same step, and tools of the origin removed
# (not /etc/hostname: podman bind-mounts it during RUN)
head -c 1048576 /dev/urandom > /tmp/scratch && rm /tmp/scratch
rm /usr/bin/telnet /usr/bin/ftpget /usr/bin/ftpput /usr/sbin/telnetd
