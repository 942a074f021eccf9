#!/usr/bin/env bash
# Builds the jail image (board/jail-image/Containerfile), as root:
#   board/jail-image/build.sh [TAG]          # jailbird-jail:latest
# 1. a Debian bookworm minbase root with OpenSSH's server, tini, openssl and
#    the PostgreSQL client (debootstrap from Debian's mirror, cached in
#    /var/cache/jailbird-test/; the only network use), trimmed of docs,
#    locales, apt's lists and — above all — the host keys openssh-server's
#    postinst made: every container makes its own, once, into its volume;
# 2. imported as the base image (a tar with sorted names and fixed times);
# 3. the Containerfile adds warden (target/release/warden, built if missing,
#    or WARDEN_BIN), the jail host's setup.sh and the entrypoint.
#   board/jail-image/build.sh --postgres TAG  # a stand-in for the official
#                    postgres image (the same variables), from Debian's packages
# CONTAINER_ENGINE picks the engine (default scripts/podman.sh, which adds the
# flags this machine needs); PODMAN_FLAGS adds more.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
die() { echo "board/jail-image/build.sh: $*" >&2; exit 2; }
postgres=0
if [ "${1:-}" = --postgres ]; then postgres=1; shift; fi
tag="${1:-jailbird-jail:latest}"
engine="${CONTAINER_ENGINE:-$root/scripts/podman.sh}"
# shellcheck disable=SC2206 # flags are words by design
eng=("$engine" ${PODMAN_FLAGS:-})
[ "$(id -u)" = 0 ] || die "run as root: debootstrap and the image import need it"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
INCLUDE=openssh-server,tini,openssl,postgresql-client,procps
# --postgres: the stand-in for the official postgres image (Containerfile.postgres).
[ "$postgres" = 0 ] || INCLUDE=tini,postgresql
CACHE=/var/cache/jailbird-test
BASE="$CACHE/jail-$SUITE-$(printf '%s' "$MIRROR $INCLUDE" | md5sum | cut -c1-8)"
BASE_TAG="localhost/jailbird-jail-base:$SUITE-$(basename "$BASE" | tail -c 9)"

if [ ! -f "$BASE.tar" ]; then
  command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
  echo "== debootstrap --variant=minbase $SUITE ($INCLUDE), once; cached in $BASE.tar"
  t0=$(date +%s)
  rm -rf "$BASE.tmp"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$BASE.tmp" "$MIRROR" >"$CACHE/jail-debootstrap.log" 2>&1 ||
    { tail -n 20 "$CACHE/jail-debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/jail-debootstrap.log)"; }
  r="$BASE.tmp"
  # The host keys openssh-server's postinst generated: baked into an image,
  # every container of it would share them.
  rm -f "$r"/etc/ssh/ssh_host_*
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* \
    "$r"/usr/share/locale/* "$r"/usr/share/man/* "$r"/usr/share/doc/* "$r"/usr/share/info/* \
    "$r"/var/log/* "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old "$r"/etc/machine-id
  # Reproducible tar: sorted names, one time, numeric owners.
  tar --sort=name --mtime='2024-01-01 00:00:00Z' --numeric-owner --xattrs-include='security.capability' \
    -C "$r" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -cf "$BASE.tar.tmp" .
  mv "$BASE.tar.tmp" "$BASE.tar"
  rm -rf "$r"
  echo "   $(($(date +%s) - t0)) s"
fi
if ! "${eng[@]}" image exists "$BASE_TAG" 2>/dev/null; then
  echo "== import $BASE.tar as $BASE_TAG"
  "${eng[@]}" import --quiet "$BASE.tar" "$BASE_TAG" >/dev/null
fi

if [ "$postgres" = 1 ]; then
  context="$(mktemp -d)"
  trap 'rm -rf "$context"' EXIT
  cp "$here/Containerfile.postgres" "$here/pg-entrypoint.sh" "$context/"
  echo "== build $tag"
  "${eng[@]}" build --quiet --build-arg "BASE=$BASE_TAG" -t "$tag" -f "$context/Containerfile.postgres" "$context" >/dev/null
  exit 0
fi
bin="${WARDEN_BIN:-target/release/warden}"
[ -n "${WARDEN_BIN:-}" ] || [ -x "$bin" ] || cargo build --release --locked --quiet -p warden
[ -x "$bin" ] || die "$bin: no warden binary"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$here/Containerfile" "$here/entrypoint.sh" "$context/"
cp board/jail-host/setup.sh board/jail-host/ssh-fleet.conf board/jail-host/sysctl-fleet.conf \
  board/jail-host/warden-watch@.service board/jail-host/warden.env "$context/"
install -m 0755 "$bin" "$context/warden"
echo "== build $tag"
"${eng[@]}" build --quiet --build-arg "BASE=$BASE_TAG" -t "$tag" -f "$context/Containerfile" "$context" >/dev/null
"${eng[@]}" image inspect --format '{{.Size}}' "$tag" | awk -v t="$tag" '{ printf "   %s: %.1f MB\n", t, $1 / 1e6 }'
