#!/bin/sh
# rootfs.sh BINARY DIR lays out the agenthost image's root filesystem in
# DIR: the static binary, CA certificates, a passwd and group naming the
# image's user (agenthost, 10001), /tmp (1777) and /data, the working
# directory and $HOME (the Dockerfile gives it to the user).
#
# The Dockerfile's build stage runs it after compiling; `make image-prebuilt`
# runs it on this machine, for a build without a Go image (ROOTFS=prebuilt).
set -eu
[ $# -eq 2 ] || { echo "usage: $0 BINARY DIR" >&2; exit 2; }
bin=$1 root=$2
rm -rf "$root"
install -d -m 0755 "$root" "$root/etc" "$root/usr/local/bin" "$root/etc/ssl/certs"
install -m 0755 "$bin" "$root/usr/local/bin/agenthost"
install -d -m 1777 "$root/tmp"
install -d -m 0700 "$root/data"
for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
  if [ -f "$ca" ]; then
    install -m 0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
    break
  fi
done
[ -f "$root/etc/ssl/certs/ca-certificates.crt" ] || { echo "rootfs.sh: no CA bundle found here (install ca-certificates)" >&2; exit 1; }
printf 'root:x:0:0:root:/root:/sbin/nologin\nagenthost:x:10001:10001:agenthost:/data:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nagenthost:x:10001:\n' > "$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
