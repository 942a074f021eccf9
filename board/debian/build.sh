#!/usr/bin/env bash
# Builds the Debian packages from staged trees with dpkg-deb (no debhelper, no
# cargo-deb):
#   board/debian/build.sh                         # all four into target/deb/
#   board/debian/build.sh --out DIR jailbird:armhf warden:amd64
#   board/debian/build.sh --rebuild jailbird:arm64
#   board/debian/build.sh --bin target/board/rpi-zero/jailbird jailbird:armhf
# Packages: jailbird:armhf (the ARMv6 Pi Zero build, so it runs on every Pi),
# jailbird:arm64, jailbird:amd64 (static musl binaries, no Depends) and
# warden:amd64 (the jail host's tool, glibc: Depends from dpkg-shlibdeps).
# A binary that is missing is built (scripts/build-target.sh for jailbird,
# `cargo build --release --locked -p warden` for warden); --rebuild builds it
# even when present; --bin FILE packages a binary you built yourself (e.g.
# board/build.sh with JAILBIRD_DEFAULT_* baked in) for the one jailbird package
# named. The units, env files and jail-host files are the ones in
# board/rpi-zero/ and board/jail-host/, paths rewritten for /usr/bin.
# Writes OUTDIR/<package>_<version>-1_<arch>.deb and prints each one's size;
# byte for byte reproducible (SOURCE_DATE_EPOCH, default: the last commit's date).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

die() { echo "board/debian/build.sh: $*" >&2; exit 2; }

out="target/deb" rebuild=0 bin_override="" wanted=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out)
      if [ $# -lt 2 ] || [ -z "$2" ]; then die "--out needs a directory"; fi
      out="$2"; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    --bin)
      if [ $# -lt 2 ] || [ ! -f "$2" ]; then die "--bin needs a binary that exists"; fi
      bin_override="$2"; shift 2 ;;
    -h|--help) sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 0 ;;
    jailbird:armhf|jailbird:arm64|jailbird:amd64|warden:amd64) wanted+=("$1"); shift ;;
    -*) die "unknown option '$1' (known: --out DIR, --rebuild, --bin FILE)" ;;
    *) die "unknown package '$1' (known: jailbird:armhf jailbird:arm64 jailbird:amd64 warden:amd64)" ;;
  esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=(jailbird:armhf jailbird:arm64 jailbird:amd64 warden:amd64)
if [ -n "$bin_override" ] && { [ ${#wanted[@]} -ne 1 ] || [ "${wanted[0]#jailbird:}" = "${wanted[0]}" ]; }; then
  die "--bin goes with exactly one jailbird:ARCH"
fi
for tool in dpkg-deb dpkg-shlibdeps file gzip md5sum sed; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install dpkg-dev file)"
done

MAINTAINER="jailbird developers <jailbird@jailbird.invalid>"
REVISION=1
: "${SOURCE_DATE_EPOCH:=$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}"
export SOURCE_DATE_EPOCH
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo_version() { # MANIFEST: the [package] version
  sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' "$1" | head -n 1
}

# jailbird's Debian architecture -> Rust target and what `file` says of it.
triple_of() {
  case "$1" in
    armhf) echo arm-unknown-linux-musleabihf ;;
    arm64) echo aarch64-unknown-linux-musl ;;
    amd64) echo x86_64-unknown-linux-musl ;;
  esac
}
machine_of() {
  case "$1" in
    armhf) echo "32-bit LSB executable, ARM, EABI5" ;;
    arm64) echo "64-bit LSB executable, ARM aarch64" ;;
    amd64) echo "64-bit LSB .*x86-64" ;;
  esac
}

# A file from the repository with its paths rewritten for the package: every
# FROM=TO pair must match at least once, and no /usr/local may remain.
rewrite() { # SRC DEST MODE FROM=TO...
  local src="$1" dest="$2" mode="$3" pair text
  shift 3
  text="$(cat "$src")"
  for pair in "$@"; do
    grep -qF -- "${pair%%=*}" <<<"$text" || die "$src no longer names ${pair%%=*}: update build.sh"
    text="${text//"${pair%%=*}"/"${pair#*=}"}"
  done
  if grep -n /usr/local <<<"$text" >&2; then die "$src still names /usr/local after rewriting"; fi
  install -d -m 0755 "$(dirname "$dest")"
  printf '%s\n' "$text" > "$dest"
  chmod "$mode" "$dest"
}

# Docs every package carries: copyright and changelog.Debian.gz.
docs() { # STAGE PACKAGE VERSION
  local doc="$1/usr/share/doc/$2"
  install -d -m 0755 "$doc"
  install -m 0644 "$here/copyright" "$doc/copyright"
  {
    printf '%s (%s) unstable; urgency=medium\n\n' "$2" "$3"
    printf '  * Built by board/debian/build.sh from commit %s.\n\n' "$commit"
    printf ' -- %s  %s\n' "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
  } | gzip -9n > "$doc/changelog.Debian.gz"
  chmod 0644 "$doc/changelog.Debian.gz"
  install -d -m 0755 "$1/usr/share/lintian/overrides"
  install -m 0644 "$here/$2/lintian-overrides" "$1/usr/share/lintian/overrides/$2"
}

# Installed-Size as dpkg-gencontrol counts it: KiB per file, rounded up, and
# one per directory or symlink.
installed_size() { # STAGE
  find "$1" -path "$1/DEBIAN" -prune -o -mindepth 1 -printf '%y %s\n' |
    awk '$1 == "f" { kib += int(($2 + 1023) / 1024); next } { kib += 1 } END { print kib + 0 }'
}

# control file (from FIELDS on stdin plus Installed-Size), md5sums, maintainer
# scripts and conffiles; then the .deb.
pack() { # STAGE PACKAGE VERSION ARCH
  local stage="$1" pkg="$2" version="$3" arch="$4" deb script
  install -d -m 0755 "$stage/DEBIAN"
  {
    cat
    printf 'Installed-Size: %s\n' "$(installed_size "$stage")"
  } > "$stage/DEBIAN/control"
  for script in preinst postinst prerm postrm; do
    if [ -f "$here/$pkg/$script" ]; then install -m 0755 "$here/$pkg/$script" "$stage/DEBIAN/$script"; fi
  done
  install -m 0644 "$here/$pkg/conffiles" "$stage/DEBIAN/conffiles"
  (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
    xargs -r md5sum) > "$stage/DEBIAN/md5sums"
  chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control"
  find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  deb="$out/${pkg}_${version}_${arch}.deb"
  dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
  printf '%s: %s bytes, Installed-Size %s KiB\n' "$deb" "$(stat -c %s "$deb")" \
    "$(sed -n 's/^Installed-Size: //p' "$stage/DEBIAN/control")"
}

jailbird_deb() { # ARCH
  local arch="$1" triple bin stage version
  triple="$(triple_of "$arch")"
  bin="${bin_override:-target/$triple/release/jailbird}"
  if [ -z "$bin_override" ] && { [ "$rebuild" = 1 ] || [ ! -f "$bin" ]; }; then
    scripts/build-target.sh "$triple"
  fi
  file -b "$bin" | grep -Eq "$(machine_of "$arch").*statically linked" ||
    die "$bin is not a static $arch executable: $(file -b "$bin")"
  # The release profile strips; anything else is some other build's leftover.
  if file -b "$bin" | grep -q "not stripped"; then die "$bin is not stripped: not a release build (try --rebuild)"; fi
  version="$(cargo_version Cargo.toml)-$REVISION"
  stage="$work/jailbird-$arch/debian/jailbird"
  install -d -m 0755 "$stage/usr/bin"
  install -m 0755 "$bin" "$stage/usr/bin/jailbird"
  rewrite board/rpi-zero/jailbird.service "$stage/usr/lib/systemd/system/jailbird.service" 0644 \
    /usr/local/bin/jailbird=/usr/bin/jailbird \
    /etc/systemd/system/jailbird.service=/usr/lib/systemd/system/jailbird.service
  # 0600 as every other install route writes it (README, the .ipk, device-config).
  install -d -m 0755 "$stage/etc/jailbird"
  install -m 0600 board/rpi-zero/jailbird.env "$stage/etc/jailbird/jailbird.env"
  docs "$stage" jailbird "$version"
  pack "$stage" jailbird "$version" "$arch" <<CONTROL
Package: jailbird
Version: $version
Architecture: $arch
Maintainer: $MAINTAINER
Section: net
Priority: optional
Description: reverse SSH tunnel from a device to a jail sshd
 jailbird holds one reverse SSH tunnel open from a device behind NAT to a
 locked-down "jail" sshd, so an operator can reach the device's own sshd
 through the jail (autossh -M 0 -N -R in one small static binary).
 .
 The unit is enabled on install but not started: it starts at the next boot
 (for an SD-card image, the device's first), where it creates the device's
 own key. Nothing device-specific is created at install time. Settings:
 /etc/jailbird/jailbird.env.
CONTROL
}

warden_deb() {
  local bin=target/release/warden stage version depends
  if [ "$rebuild" = 1 ] || [ ! -f "$bin" ]; then
    cargo build --release --locked -p warden
  fi
  file -b "$bin" | grep -Eq "64-bit LSB .*x86-64" || die "$bin is not an amd64 executable: $(file -b "$bin")"
  version="$(cargo_version warden/Cargo.toml)-$REVISION"
  stage="$work/warden/debian/warden"
  install -d -m 0755 "$stage/usr/bin"
  install -m 0755 "$bin" "$stage/usr/bin/warden"
  rewrite board/jail-host/warden-watch@.service "$stage/usr/lib/systemd/system/warden-watch@.service" 0644 \
    /usr/local/bin/warden=/usr/bin/warden \
    /etc/systemd/system/warden-watch@.service=/usr/lib/systemd/system/warden-watch@.service
  install -d -m 0755 "$stage/etc/warden" "$stage/usr/lib/sysusers.d" "$stage/usr/lib/tmpfiles.d" \
    "$stage/usr/share/warden"
  install -m 0644 board/jail-host/warden.env "$stage/etc/warden/warden.env"
  install -m 0644 "$here/warden/sysusers.conf" "$stage/usr/lib/sysusers.d/warden.conf"
  install -m 0644 "$here/warden/tmpfiles.conf" "$stage/usr/lib/tmpfiles.d/warden.conf"
  # Placed, not in effect: setup.sh installs these for sshd and the kernel
  # when the admin configures the jail (README.Debian).
  install -m 0755 board/jail-host/setup.sh "$stage/usr/share/warden/setup.sh"
  install -m 0644 board/jail-host/ssh-fleet.conf board/jail-host/sysctl-fleet.conf "$stage/usr/share/warden/"
  docs "$stage" warden "$version"
  install -m 0644 "$here/warden/README.Debian" "$stage/usr/share/doc/warden/README.Debian"
  # dpkg-shlibdeps reads debian/control from the directory above the stage,
  # and finds the stage by its DEBIAN/.
  install -d -m 0755 "$stage/DEBIAN"
  printf 'Source: warden\n\nPackage: warden\nArchitecture: amd64\n' > "$work/warden/debian/control"
  depends="$(cd "$work/warden" && dpkg-shlibdeps -O -edebian/warden/usr/bin/warden)"
  depends="${depends#shlibs:Depends=}"
  [ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies for $bin"
  rm "$work/warden/debian/control"
  pack "$stage" warden "$version" amd64 <<CONTROL
Package: warden
Version: $version
Architecture: amd64
Maintainer: $MAINTAINER
Depends: $depends, systemd | systemd-sysusers, systemd | systemd-tmpfiles
Recommends: openssh-server
Section: net
Priority: optional
Description: fleet registry and jail sshd authorization for jailbird
 warden is the fleet side of jailbird: a registry of devices and jails
 (SQLite or PostgreSQL), enrolment, sshd's AuthorizedKeysCommand for the
 jail's stock OpenSSH, and a watch service that records which devices are
 online and ends the sessions of revoked ones.
 .
 Installs the binary, the warden-watch@ unit and the warden account that
 owns /var/lib/warden. Nothing reaches sshd or the kernel until the jail is
 configured: see /usr/share/doc/warden/README.Debian.
CONTROL
}

for want in "${wanted[@]}"; do
  case "$want" in
    jailbird:*) jailbird_deb "${want#jailbird:}" ;;
    warden:amd64) warden_deb ;;
  esac
done
