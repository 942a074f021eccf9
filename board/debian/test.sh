#!/usr/bin/env bash
# Checks the Debian packages, as root on a Debian/Ubuntu machine:
#   board/debian/test.sh
# 1. builds them (board/debian/build.sh: target/deb/, binaries built if missing);
# 2. lintian on each: any error or warning fails (overrides, each with its
#    reason, in board/debian/*/lintian-overrides);
# 3. installs them with dpkg into throw-away copies of a Debian bookworm
#    minbase root (debootstrap, cached in /var/cache/jailbird-test/; the only
#    network use, when the cache is filled) and checks files, modes, the
#    conffiles dpkg recorded, that the install created nothing but the
#    package's files and dpkg's and deb-systemd-helper's records (no device
#    key), the warden account and /var/lib/warden, setup.sh on the package,
#    and what remove and purge leave;
# 4. first boot: the installed image copied twice (two devices flashed from one
#    image), the unit's ExecStartPre= run in each (armhf under
#    qemu-arm-static -cpu arm1176, arm64 under qemu-aarch64-static): two
#    different keys, the same key again at the next boot, none in the image.
#    Then proves those checks can fail: an image in which the key was made at
#    install time (as a postinst running `jailbird key` would) must fail both.
# Ends with "debian: N passed, N failed".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

die() { echo "board/debian/test.sh: $*" >&2; exit 2; }
[ $# -eq 0 ] || die "takes no arguments (got '$1')"
[ "$(id -u)" = 0 ] || die "run as root: it installs packages into chroots"

SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Ready for warden's Depends (systemd | systemd-sysusers, ... tmpfiles)
# without a whole systemd; jailbird needs nothing.
INCLUDE=systemd-standalone-sysusers,systemd-standalone-tmpfiles
CACHE=/var/cache/jailbird-test
BASE="$CACHE/$SUITE-minbase-$(printf '%s' "$MIRROR $INCLUDE" | md5sum | cut -c1-8)"
DEBS=target/deb
VERSION=0.1.0-1
STEP_SECONDS=120 # a first boot under emulation takes a second or two

started=$(date +%s)
need() { # COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return
  echo "== installing $2"
  apt-get install -y -qq --no-install-recommends "$2" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$2" >/dev/null; } ||
    die "could not install $2"
}
export DEBIAN_FRONTEND=noninteractive
need lintian lintian
need debootstrap debootstrap
need dpkg-shlibdeps dpkg-dev
need file file
need qemu-arm-static qemu-user-static

passed=0 failed=0 bad=0
# check WHAT FUNCTION ARGS...: counts FUNCTION's verdict: it fails if it
# returns non-zero or if anything in it called `why` (errexit does not stop a
# function run as a condition, so a `why` that is not its last word counts too).
check() {
  local what="$1"
  shift
  bad=0
  if "$@" && [ "$bad" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what" >&2; fi
}
# refute WHAT FUNCTION ARGS...: FUNCTION must fail (a check proving it can).
refute() {
  local what="$1"
  shift
  bad=0
  if "$@" 2>/dev/null && [ "$bad" = 0 ]; then
    failed=$((failed + 1))
    echo "FAIL: $what (the check passed)" >&2
  else
    passed=$((passed + 1))
  fi
}
# why REASON: says what is wrong and marks the running check failed.
why() {
  echo "  $*" >&2
  bad=1
  return 1
}

# ---- 1, 2: build and lintian -------------------------------------------------
echo "== build"
board/debian/build.sh --out "$DEBS"
debs=("$DEBS"/jailbird_"$VERSION"_armhf.deb "$DEBS"/jailbird_"$VERSION"_arm64.deb
  "$DEBS"/jailbird_"$VERSION"_amd64.deb "$DEBS"/warden_"$VERSION"_amd64.deb)
echo "== lintian"
lintian_ok() { lintian --fail-on error,warning "${debs[@]}"; }
check "lintian reports no error or warning" lintian_ok

# ---- 3: the throw-away root ----------------------------------------------------
if [ ! -f "$BASE/.complete" ]; then
  echo "== debootstrap --variant=minbase $SUITE into $BASE (once; cached)"
  t0=$(date +%s)
  rm -rf "$BASE.tmp"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$BASE.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  # Only dpkg is used in it: no apt lists, downloaded packages or docs.
  rm -rf "$BASE.tmp"/var/cache/apt/archives/*.deb "$BASE.tmp"/var/cache/apt/*.bin "$BASE.tmp"/var/lib/apt/lists/* \
    "$BASE.tmp"/usr/share/locale/* "$BASE.tmp"/usr/share/man/* "$BASE.tmp"/usr/share/doc/*
  touch "$BASE.tmp/.complete"
  rm -rf "$BASE"
  mv "$BASE.tmp" "$BASE"
  echo "   $(($(date +%s) - t0)) s"
fi
# The roots are copied a dozen times: in a tmpfs of its own (copies and
# removals take ~0.3 s each there, ~5 s on this disk), gone at the end.
work="$(mktemp -d /var/tmp/jailbird-deb-test.XXXXXX)"
mount -t tmpfs -o size=4g,mode=0700 jailbird-deb-test "$work"
mounted=()
cleanup() {
  local m
  for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  umount "$work" 2>/dev/null || umount -l "$work" || true
  rmdir "$work"
}
trap cleanup EXIT
# with_proc ROOT: /proc in the chroot (systemd-tmpfiles refuses to run without
# it; a booted host and pi-gen's chroot have it). Never in a root that is copied.
with_proc() {
  mount -t proc proc "$1/proc"
  mounted+=("$1/proc")
}

# inroot ROOT COMMAND...: runs COMMAND in the chroot with a clean environment.
inroot() {
  local r="$1"
  shift
  timeout "$STEP_SECONDS" chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"
}
# Every path in ROOT but the kernel's and scratch ones.
paths() {
  (cd "$1" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp -o -path ./run \) -prune \
    -o -print) | LC_ALL=C sort
}
fresh() { # NAME: a new copy of the base root
  cp -a "$BASE" "$work/$1"
  echo "$work/$1"
}
dpkg_in() { # ROOT DPKG-ARGS... [DEB]: dpkg in the root, a .deb copied in first
  local r="$1" last="${*: -1}"
  shift
  if [ -f "$last" ]; then
    cp "$last" "$r/tmp/"
    set -- "${@:1:$#-1}" "/tmp/$(basename "$last")"
  fi
  inroot "$r" dpkg "$@" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; return 1; }
  rm -f "$r"/tmp/*.deb
}

# mode_owner ROOT PATH MODE OWNER:GROUP (as the root's own passwd names them)
mode_owner() {
  local got
  got="$(inroot "$1" stat -c '%a %U:%G' "$2" 2>&1)" || why "$2: missing ($got)"
  [ "$got" = "$3 $4" ] || why "$2: $got, want $3 $4"
}
absent() { # ROOT PATH...
  local r="$1" p bad=0
  shift
  for p in "$@"; do
    if [ -e "$r$p" ] || [ -L "$r$p" ]; then echo "  $p exists" >&2; bad=1; fi
  done
  return "$bad"
}
conffile_recorded() { # ROOT PACKAGE PATH: dpkg holds PATH as a conffile with the shipped md5
  local r="$1" line want
  line="$(inroot "$r" dpkg-query -W -f="\${Conffiles}\n" "$2" | grep -F " $3 ")" || why "$2: $3 not a conffile"
  want="$(md5sum <"$r$3" | cut -d' ' -f1)"
  [ "$(awk '{ print $2 }' <<<"$line")" = "$want" ] || why "$2: $3 recorded as '$line', file md5 $want"
}
installed() { # ROOT PACKAGE ARCH
  local got
  got="$(inroot "$1" dpkg-query -W -f="\${Status} \${Architecture}" "$2" 2>&1)" || why "$2: $got"
  [ "$got" = "install ok installed $3" ] || why "$2: '$got'"
}
# only_new BEFORE AFTER ROOT PACKAGE ALLOWED-REGEX: every path the install
# added is the package's (dpkg -L) or dpkg's/deb-systemd-helper's record.
only_new() {
  local extra
  extra="$(comm -13 "$1" "$2" | sed 's|^\.||' |
    grep -vxF -f <(inroot "$3" dpkg -L "$4") | grep -Ev "$5" || true)"
  [ -z "$extra" ] || why "the install created more than the package's files: $(tr '\n' ' ' <<<"$extra")"
}
RECORDS='^/var/lib/dpkg(/|$)|^/var/log/dpkg\.log$|^/var/lib/systemd$|^/var/lib/systemd/deb-systemd-helper-enabled(/|$)|^/etc/systemd/system/multi-user\.target\.wants(/jailbird\.service)?$'

# ---- jailbird, per architecture -------------------------------------------------
no_identity() { # ROOT: nothing of a device key in it
  absent "$1" /var/lib/jailbird /var/lib/private/jailbird /var/lib/jailbird/identity
}
# first_boot ROOT ARCH: what systemd does at the unit's first start, up to
# ExecStartPre= (the key): the StateDirectory=, the EnvironmentFile=, then the
# command from the installed unit. Prints the public key line.
first_boot() {
  local r="$1" arch="$2" unit="$1/usr/lib/systemd/system/jailbird.service" cmd argv runner=()
  cmd="$(sed -n 's/^ExecStartPre=//p' "$unit")"
  [ "$cmd" = "/usr/bin/jailbird key" ] || { why "ExecStartPre='$cmd'"; return 1; }
  read -ra argv <<<"$cmd"
  [ "$(sed -n 's/^StateDirectory=//p' "$unit")" = jailbird ] || { why "StateDirectory= is not jailbird"; return 1; }
  install -d -m 0700 "$r/var/lib/jailbird"
  case "$arch" in
    armhf) cp /usr/bin/qemu-arm-static "$r/qemu"; runner=(/qemu -cpu arm1176) ;;
    arm64) cp /usr/bin/qemu-aarch64-static "$r/qemu"; runner=(/qemu) ;;
  esac
  # shellcheck disable=SC2016 # expanded by the chroot's sh
  inroot "$r" /bin/sh -c 'set -a; . /etc/jailbird/jailbird.env; set +a; exec "$@"' boot "${runner[@]}" "${argv[@]}" 2>/dev/null |
    grep -m1 '^ssh-ed25519 '
}
# two_devices IMAGE ARCH NAME: flashes IMAGE twice, boots each twice; the keys
# must differ between devices and stay the same across one device's boots.
two_devices() {
  local image="$1" arch="$2" a b a2
  rm -rf "$work/$3-dev1" "$work/$3-dev2"
  cp -a "$image" "$work/$3-dev1"
  cp -a "$image" "$work/$3-dev2"
  a="$(first_boot "$work/$3-dev1" "$arch")" || why "device 1: no key at first boot"
  b="$(first_boot "$work/$3-dev2" "$arch")" || why "device 2: no key at first boot"
  a2="$(first_boot "$work/$3-dev1" "$arch")" || why "device 1: no key at second boot"
  [ -f "$work/$3-dev1/var/lib/jailbird/identity" ] || why "device 1: no /var/lib/jailbird/identity"
  [ "$a" = "$a2" ] || why "device 1: another key at the second boot"
  [ "$a" != "$b" ] || why "two devices from one image share the key ${a:0:60}..."
}
enabled() { # ROOT: deb-systemd-helper's enable link, so the first boot runs it
  local link="$1/etc/systemd/system/multi-user.target.wants/jailbird.service"
  case "$(readlink "$link")" in
    /usr/lib/systemd/system/jailbird.service | /lib/systemd/system/jailbird.service) ;;
    *) why "jailbird.service not enabled" ;;
  esac
}
unit_paths() { # ROOT
  local u="$1/usr/lib/systemd/system/jailbird.service"
  grep -qx 'ExecStart=/usr/bin/jailbird run' "$u" || why "ExecStart is not /usr/bin/jailbird run"
  ! grep -n /usr/local "$u" >&2 || why "the unit names /usr/local"
  # The rest is board/rpi-zero/jailbird.service as it is.
  diff <(grep -Ev '/usr/|/etc/systemd/' board/rpi-zero/jailbird.service) <(grep -Ev '/usr/|/etc/systemd/' "$u") >&2 ||
    why "the unit differs from board/rpi-zero/jailbird.service beyond its paths"
}
runs() { # ROOT ARCH
  local r="$1" runner=() out
  case "$2" in
    armhf) runner=(qemu-arm-static -cpu arm1176) ;;
    arm64) runner=(qemu-aarch64-static) ;;
  esac
  out="$("${runner[@]}" "$r/usr/bin/jailbird" --version 2>&1)" || why "jailbird --version: $out"
  [ "$(head -n 1 <<<"$out")" = "jailbird ${VERSION%-*}" ] || why "jailbird --version: $out"
}
removed_then_purged() { # ROOT (a booted device)
  local r="$1"
  dpkg_in "$r" --remove jailbird || why "dpkg --remove failed"
  absent "$r" /usr/bin/jailbird /usr/lib/systemd/system/jailbird.service || why "remove left the package's files"
  [ -f "$r/etc/jailbird/jailbird.env" ] || why "remove took the conffile"
  dpkg_in "$r" --purge jailbird || why "dpkg --purge failed"
  absent "$r" /etc/jailbird /var/lib/jailbird /var/lib/private/jailbird \
    /etc/systemd/system/multi-user.target.wants/jailbird.service /etc/systemd/system/jailbird.service ||
    why "purge left the above"
  ! inroot "$r" dpkg-query -W jailbird >/dev/null 2>&1 || why "dpkg still knows jailbird"
}

for arch in amd64 armhf arm64; do
  echo "== jailbird:$arch"
  img="$(fresh "jailbird-$arch")"
  [ "$arch" = amd64 ] || inroot "$img" dpkg --add-architecture "$arch"
  paths "$img" >"$work/before"
  dpkg_in "$img" -i "$DEBS/jailbird_${VERSION}_$arch.deb" || die "jailbird:$arch did not install"
  paths "$img" >"$work/after"
  check "jailbird:$arch installed" installed "$img" jailbird "$arch"
  check "jailbird:$arch /usr/bin/jailbird 0755 root" mode_owner "$img" /usr/bin/jailbird 755 root:root
  check "jailbird:$arch unit 0644 root" mode_owner "$img" /usr/lib/systemd/system/jailbird.service 644 root:root
  check "jailbird:$arch jailbird.env 0600 root" mode_owner "$img" /etc/jailbird/jailbird.env 600 root:root
  check "jailbird:$arch jailbird.env is a conffile" conffile_recorded "$img" jailbird /etc/jailbird/jailbird.env
  check "jailbird:$arch unit runs /usr/bin/jailbird, else as in board/rpi-zero" unit_paths "$img"
  check "jailbird:$arch unit enabled for the first boot" enabled "$img"
  check "jailbird:$arch binary runs" runs "$img" "$arch"
  check "jailbird:$arch install created only the package's files" only_new "$work/before" "$work/after" "$img" jailbird "$RECORDS"
  check "jailbird:$arch image holds no key after install" no_identity "$img"
  check "jailbird:$arch two devices from one image get different keys" two_devices "$img" "$arch" "$arch"
  check "jailbird:$arch image holds no key after the devices booted" no_identity "$img"
  check "jailbird:$arch remove, then purge" removed_then_purged "$work/$arch-dev1"
  rm -rf "$work/$arch-dev1" "$work/$arch-dev2"
  if [ "$arch" = amd64 ]; then
    echo "== the checks above can fail: an image with a key made at install time"
    bad="$work/bad-image"
    cp -a "$img" "$bad"
    first_boot "$bad" amd64 >/dev/null # what a postinst running `jailbird key` would leave
    paths "$bad" >"$work/bad-after"
    refute "a key in the image is found" no_identity "$bad"
    refute "a key in the image is more than the package's files" only_new "$work/before" "$work/bad-after" "$bad" jailbird "$RECORDS"
    refute "two devices from that image share a key" two_devices "$bad" amd64 bad
    rm -rf "$bad" "$work"/bad-dev*
  fi
  rm -rf "$img"
done

# ---- warden ------------------------------------------------------------------
echo "== warden:amd64"
warden_account() { # ROOT: as setup.sh makes it
  local pw
  pw="$(inroot "$1" getent passwd warden)" || why "no warden account"
  [ "$(cut -d: -f6,7 <<<"$pw")" = /var/lib/warden:/usr/sbin/nologin ] || why "warden: $pw"
  [ "$(cut -d: -f3 <<<"$pw")" -lt 1000 ] || why "warden is not a system account: $pw"
  inroot "$1" getent group warden >/dev/null || why "no warden group"
}
not_in_effect() { # ROOT: nothing reaches sshd, ssh.service or the kernel, no unit enabled
  absent "$1" /etc/ssh/sshd_config.d/50-warden.conf /etc/systemd/system/ssh.service.d/50-warden-fleet.conf \
    /etc/sysctl.d/50-warden-fleet.conf /usr/lib/sysctl.d/50-warden-fleet.conf \
    /usr/lib/systemd/system/ssh.service.d /usr/local/bin/warden /etc/systemd/system/warden-watch@.service || return 1
  ! grep -rl warden "$1/etc/systemd/system" "$1/etc/ssh" 2>/dev/null | grep . >&2 || why "warden enabled or wired into sshd"
}
placed() { # ROOT
  local f
  for f in setup.sh ssh-fleet.conf sysctl-fleet.conf; do
    cmp -s "board/jail-host/$f" "$1/usr/share/warden/$f" || why "/usr/share/warden/$f is not board/jail-host/$f"
  done
  grep -qx 'ExecStart=/usr/bin/warden watch --jail %i' "$1/usr/lib/systemd/system/warden-watch@.service" ||
    why "the watch unit does not run /usr/bin/warden"
}
# setup_agrees ROOT: setup.sh on the package's binary finds the package's
# account, directory and env file as it would make them, places sshd's limits
# and pid_max, and a second run changes nothing.
setup_agrees() {
  local r="$1" out
  out="$(inroot "$r" sh /usr/share/warden/setup.sh /usr/bin/warden jail-a 2>&1)" || why "setup.sh failed: $out"
  grep -q "account warden: present" <<<"$out" || why "setup.sh did not find the package's warden account: $out"
  ! grep -E "account warden: (created|home set|shell set)|/var/lib/warden: .*changed|warden.env: written" <<<"$out" >&2 ||
    why "setup.sh changed what the package made"
  grep -q "/usr/bin/warden: unchanged" <<<"$out" || why "setup.sh did not use /usr/bin/warden: $out"
  grep -q "sshd-config --jail jail-a --binary /usr/bin/warden" <<<"$out" || why "setup.sh's next steps name another binary"
  cmp -s "$r/usr/share/warden/ssh-fleet.conf" "$r/etc/systemd/system/ssh.service.d/50-warden-fleet.conf" ||
    why "setup.sh did not place sshd's limits"
  cmp -s "$r/usr/share/warden/sysctl-fleet.conf" "$r/etc/sysctl.d/50-warden-fleet.conf" || why "setup.sh did not place pid_max"
  absent "$r" /usr/local/bin/warden /etc/systemd/system/warden-watch@.service || why "setup.sh copied what the package has"
  inroot "$r" getent passwd tunuser >/dev/null || why "setup.sh made no tunuser"
  mode_owner "$r" /var/lib/warden 770 warden:warden || return 1
  out="$(inroot "$r" sh /usr/share/warden/setup.sh /usr/bin/warden jail-a 2>&1)" || why "setup.sh failed again: $out"
  ! grep -E ": (installed|created|written)|set to" <<<"$out" >&2 || why "a second setup.sh run changed something"
}
purged_keeps_registry() { # ROOT: with a registry, purge keeps it and says so
  local r="$1" out
  inroot "$r" sh -c ': > /var/lib/warden/registry.db'
  out="$(inroot "$r" dpkg --purge warden 2>&1)" || why "dpkg --purge failed: $out"
  grep -q "/var/lib/warden kept" <<<"$out" || why "purge did not say it kept the registry: $out"
  [ -f "$r/var/lib/warden/registry.db" ] || why "purge removed the registry"
  absent "$r" /etc/warden /usr/bin/warden /usr/lib/systemd/system/warden-watch@.service /usr/lib/sysusers.d/warden.conf \
    /usr/share/warden || why "purge left the above"
}
purged_empty() { # ROOT: without one, /var/lib/warden goes too
  dpkg_in "$1" -i "$DEBS/warden_${VERSION}_amd64.deb" || why "reinstall failed"
  rm -f "$1/var/lib/warden/registry.db"
  dpkg_in "$1" --purge warden || why "dpkg --purge failed"
  absent "$1" /var/lib/warden /etc/warden || why "purge left the above"
}
img="$(fresh warden)"
with_proc "$img"
paths "$img" >"$work/before"
dpkg_in "$img" -i "$DEBS/warden_${VERSION}_amd64.deb" || die "warden did not install"
paths "$img" >"$work/after"
check "warden installed" installed "$img" warden amd64
check "warden /usr/bin/warden 0755 root" mode_owner "$img" /usr/bin/warden 755 root:root
check "warden warden.env 0644 root" mode_owner "$img" /etc/warden/warden.env 644 root:root
check "warden warden.env is a conffile" conffile_recorded "$img" warden /etc/warden/warden.env
check "warden account as setup.sh makes it" warden_account "$img"
check "warden /var/lib/warden warden:warden 0770" mode_owner "$img" /var/lib/warden 770 warden:warden
warden_runs() { inroot "$1" /usr/bin/warden --version | grep -qx "warden ${VERSION%-*}" || why "warden --version"; }
check "warden binary runs" warden_runs "$img"
check "warden unit and jail-host files placed" placed "$img"
check "warden nothing in effect until configured" not_in_effect "$img"
check "warden install created only its files, the account and /var/lib/warden" only_new "$work/before" "$work/after" \
  "$img" warden '^/var/lib/dpkg(/|$)|^/var/log/dpkg\.log$|^/var/lib/warden$|^/etc/(passwd|group|shadow|gshadow)-?$'
check "warden setup.sh agrees with the package" setup_agrees "$img"
check "warden purge keeps a registry" purged_keeps_registry "$img"
check "warden purge removes an empty /var/lib/warden" purged_empty "$img"
umount "$img/proc"
mounted=()
rm -rf --one-file-system "$img"

echo "== sizes"
for deb in "${debs[@]}"; do
  printf '%s: %s bytes, Installed-Size %s KiB\n' "$(basename "$deb")" "$(stat -c %s "$deb")" \
    "$(dpkg-deb -f "$deb" Installed-Size)"
done
echo "== $(($(date +%s) - started)) s"
echo "debian: $passed passed, $failed failed"
[ "$failed" = 0 ]
