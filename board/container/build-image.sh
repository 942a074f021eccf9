#!/usr/bin/env bash
# Builds the FROM-scratch agent image (board/container/Containerfile):
#   board/container/build-image.sh [TAG]                  # jailbird:latest, x86_64
#   CONTAINER_ARCH=aarch64 board/container/build-image.sh jailbird:arm64
#   board/container/build-image.sh --all [TAG]            # one multi-arch index:
#                                   linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6
# Each binary comes from board/build.sh container (static musl, + rsa) for its
# CONTAINER_ARCH, or from JAILBIRD_BIN (one arch) / JAILBIRD_BIN_<ARCH>
# (x86_64, aarch64, armv7, armv6) if set. Built without a daemon (podman or
# buildah; docker works for one arch) and byte-reproducible: the same binaries
# give the same image digests (file and creation times fixed by --timestamp).
# CONTAINER_ENGINE picks the engine (default: scripts/podman.sh, else docker).
set -euo pipefail
cd "$(dirname "$0")/../.."
all=0
if [ "${1:-}" = --all ]; then all=1; shift; fi
tag="${1:-jailbird:latest}"
engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
  if command -v podman >/dev/null 2>&1; then engine=scripts/podman.sh; else engine=docker; fi
fi
# 2024-01-01T00:00:00Z: every file and the image's creation time.
EPOCH=1704067200

platform_of() {
  case "$1" in
    x86_64) echo linux/amd64 ;;
    aarch64 | arm64) echo linux/arm64 ;;
    armv7) echo linux/arm/v7 ;;
    armv6) echo linux/arm/v6 ;;
    *) echo "build-image: CONTAINER_ARCH=$1: expected x86_64, aarch64, armv7 or armv6" >&2; exit 2 ;;
  esac
}

# binary_of ARCH: the static binary for ARCH, built if not given.
binary_of() {
  local arch="$1" var="JAILBIRD_BIN_$1" bin
  bin="${!var:-}"
  [ -z "$bin" ] && [ "$all" = 0 ] && bin="${JAILBIRD_BIN:-}"
  if [ -z "$bin" ]; then
    CONTAINER_ARCH="$arch" board/build.sh container --quiet >&2
    mkdir -p "target/board/container-$arch"
    cp target/board/container/jailbird "target/board/container-$arch/jailbird"
    bin="target/board/container-$arch/jailbird"
  fi
  file "$bin" 2>/dev/null | grep -q 'statically linked' || { echo "build-image: $bin is not a static binary" >&2; exit 2; }
  echo "$bin"
}

# build ARCH TAG-OR-MANIFEST-ARGS...
build_one() {
  local arch="$1" bin context
  shift
  bin="$(binary_of "$arch")"
  context="$(mktemp -d)"
  cp board/container/Containerfile "$context/Containerfile"
  install -m 0755 "$bin" "$context/jailbird"
  install -d -m 0700 "$context/state"
  touch -h -d "@$EPOCH" "$context"/* "$context/state"
  local ts=()
  [ "$(basename "$engine")" = docker ] || ts=(--timestamp "$EPOCH")
  "$engine" build --quiet "${ts[@]}" --platform "$(platform_of "$arch")" "$@" -f "$context/Containerfile" "$context" >/dev/null
  rm -rf "$context"
}

if [ "$all" = 0 ]; then
  arch="${CONTAINER_ARCH:-x86_64}"
  build_one "$arch" -t "$tag"
  echo "$tag ($(platform_of "$arch")): $("$engine" image inspect --format '{{.Digest}} {{.Size}} bytes' "$tag")"
  exit 0
fi
"$engine" manifest rm "$tag" >/dev/null 2>&1 || true
"$engine" manifest create "$tag" >/dev/null
for arch in x86_64 aarch64 armv7 armv6; do
  build_one "$arch" --manifest "$tag"
done
"$engine" manifest inspect "$tag" |
  python3 -c 'import json,sys; m=json.load(sys.stdin)
for e in m["manifests"]:
    p=e["platform"]; print("  %-14s %s %d bytes (manifest)" % (p["os"]+"/"+p["architecture"]+("/"+p["variant"] if p.get("variant") else ""), e["digest"], e["size"]))'
