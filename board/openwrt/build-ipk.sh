#!/usr/bin/env bash
# Assembles an OpenWrt package from a built jailbird binary, without an SDK:
#   board/openwrt/build-ipk.sh BINARY ARCH OUTDIR
#   board/openwrt/build-ipk.sh target/board/openwrt/jailbird aarch64_cortex-a53 out/
# ARCH is the OpenWrt package architecture (`opkg print-architecture` on the
# router). Writes OUTDIR/jailbird_<version>-<release>_<ARCH>.ipk: an ar archive
# of debian-binary ("2.0"), control.tar.gz (control, conffiles, postinst,
# prerm) and data.tar.gz (the same files the feed Makefile installs), byte for
# byte reproducible (SOURCE_DATE_EPOCH, default: the last commit's date).
# Install on the router: opkg install /tmp/jailbird_*.ipk
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
[ $# -eq 3 ] || { echo "usage: $0 BINARY ARCH OUTDIR" >&2; exit 2; }
binary="$1" arch="$2" outdir="$3"
[ -f "$binary" ] || { echo "build-ipk: no binary at $binary" >&2; exit 2; }
case "$arch" in
  ''|*[!A-Za-z0-9_.+-]*) echo "build-ipk: bad architecture name '$arch'" >&2; exit 2 ;;
esac

# Version and release from the feed Makefile, which must match Cargo.toml.
version="$(sed -n 's/^PKG_VERSION:=//p' "$here/Makefile")"
release="$(sed -n 's/^PKG_RELEASE:=//p' "$here/Makefile")"
# The service user, as the buildroot writes it from USERID (package-pack.mk):
# the postinst's default_postinst creates it from the control file.
userid="$(sed -n 's/^ *USERID:=//p' "$here/Makefile")"
[ -n "$userid" ] || { echo "build-ipk: no USERID in board/openwrt/Makefile" >&2; exit 2; }
cargo_version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
[ "$version" = "$cargo_version" ] || {
  echo "build-ipk: board/openwrt/Makefile PKG_VERSION $version != Cargo.toml version $cargo_version" >&2; exit 2; }
: "${SOURCE_DATE_EPOCH:=$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
data="$work/data" control="$work/control"
install -d -m 0755 "$data/usr/sbin" "$data/etc/init.d" "$data/etc/config" "$data/lib/upgrade/keep.d" "$control"
install -d -m 0700 "$data/etc/jailbird"
install -m 0755 "$binary" "$data/usr/sbin/jailbird"
install -m 0755 "$here/files/jailbird.init" "$data/etc/init.d/jailbird"
install -m 0600 "$here/files/jailbird.config" "$data/etc/config/jailbird"
install -m 0644 "$here/files/jailbird.upgrade" "$data/lib/upgrade/keep.d/jailbird"

installed_size="$(du -sb "$data" | cut -f1)"
cat > "$control/control" <<CONTROL
Package: jailbird
Version: $version-$release
Depends: libc
Source: board/openwrt
SourceName: jailbird
License: Apache-2.0
Section: net
Require-User: $userid
Architecture: $arch
Installed-Size: $installed_size
Description: Reverse SSH tunnel to a locked-down jail (static binary)
 jailbird holds one reverse SSH tunnel from this router to a jail sshd, so
 an operator can reach the router through the jail. Configure in
 /etc/config/jailbird; logs: logread -e jailbird.
CONTROL
install -m 0644 "$here/control/conffiles" "$control/conffiles"
install -m 0755 "$here/control/postinst" "$here/control/prerm" "$control/"

# Deterministic tarballs: sorted, root-owned, fixed mtime, gzip without a name or time.
pack() { # DIR OUT
  tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="@$SOURCE_DATE_EPOCH" -C "$1" -cf - . | gzip -9n > "$2"
}
pack "$control" "$work/control.tar.gz"
pack "$data" "$work/data.tar.gz"
printf '2.0\n' > "$work/debian-binary"

mkdir -p "$outdir"
ipk="$(cd "$outdir" && pwd)/jailbird_${version}-${release}_${arch}.ipk"
rm -f "$ipk"
# An ar archive as dpkg-deb writes it (member names without GNU ar's trailing
# "/"), debian-binary first: the order opkg and dpkg expect.
ar_member() { # NAME FILE
  local size
  size="$(stat -c %s "$2")"
  printf '%-16s%-12s%-6s%-6s%-8s%-10s`\n' "$1" "$SOURCE_DATE_EPOCH" 0 0 100644 "$size"
  cat "$2"
  if [ $((size % 2)) -eq 1 ]; then printf '\n'; fi
}
{
  printf '!<arch>\n'
  for member in debian-binary control.tar.gz data.tar.gz; do
    ar_member "$member" "$work/$member"
  done
} > "$ipk.tmp"
mv "$ipk.tmp" "$ipk"
echo "$ipk: $(stat -c %s "$ipk") bytes"
