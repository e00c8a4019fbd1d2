#!/bin/sh
# rootfs.sh BINARY DIR lays out the agenthost image's files in DIR: in
# DIR/root the root filesystem (the static binary, CA certificates, a
# passwd and group naming the image's user, agenthost 10001, and /tmp
# with mode 1777); DIR/data is the empty /data, the working directory and
# $HOME, which the Dockerfile copies apart to give it to the user.
#
# The Dockerfile's build stage runs it after compiling; `make image-prebuilt`
# runs it on this machine, for a build without a Go image (ROOTFS=prebuilt).
set -eu
[ $# -eq 2 ] || { echo "usage: $0 BINARY DIR" >&2; exit 2; }
bin=$1 out=$2
root=$out/root
rm -rf "$out"
install -d -m 0755 "$out" "$root" "$root/etc" "$root/usr/local/bin" "$root/etc/ssl/certs"
install -d -m 0700 "$out/data"
install -m 0755 "$bin" "$root/usr/local/bin/agenthost"
install -d -m 1777 "$root/tmp"
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
