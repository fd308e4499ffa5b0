export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export PS1='\h:\w\$ '
umask 022
