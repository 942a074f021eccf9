#!/usr/bin/env bash
# Builds the FROM-scratch image (board/container/Containerfile):
#   board/container/build-image.sh [TAG]                      # jailbird:latest, x86_64
#   CONTAINER_ARCH=aarch64 board/container/build-image.sh jailbird:arm64
# The binary comes from board/build.sh container (static musl, + rsa), or from
# JAILBIRD_BIN if set. The build context is a temporary directory holding only
# the binary and the Containerfile. CONTAINER_ENGINE picks docker or podman.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-jailbird:latest}"
engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
  if command -v docker >/dev/null 2>&1; then engine=docker; else engine=podman; fi
fi
case "${CONTAINER_ARCH:-x86_64}" in
  x86_64) platform=linux/amd64 ;;
  aarch64|arm64) platform=linux/arm64 ;;
  *) echo "build-image: CONTAINER_ARCH=$CONTAINER_ARCH: expected x86_64 or aarch64" >&2; exit 2 ;;
esac
bin="${JAILBIRD_BIN:-}"
if [ -z "$bin" ]; then
  board/build.sh container
  bin=target/board/container/jailbird
fi
file "$bin" 2>/dev/null | grep -q 'statically linked' || { echo "build-image: $bin is not a static binary" >&2; exit 2; }
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp board/container/Containerfile "$context/Containerfile"
install -m 0755 "$bin" "$context/jailbird"
install -d -m 0700 "$context/state"
"$engine" build --platform "$platform" -t "$tag" -f "$context/Containerfile" "$context"
