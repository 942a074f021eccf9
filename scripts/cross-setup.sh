#!/usr/bin/env bash
# Installs the cross-build tools (idempotent): rust-src for -Zbuild-std, zig as
# C compiler and linker, qemu-user-static to run ARM binaries.
set -euo pipefail
rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src
python3 -m ziglang version >/dev/null 2>&1 || pip install --quiet ziglang==0.17.1
if ! command -v qemu-arm-static >/dev/null 2>&1 || ! command -v qemu-aarch64-static >/dev/null 2>&1 || ! command -v file >/dev/null 2>&1 || ! command -v readelf >/dev/null 2>&1; then
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends qemu-user-static binutils file >/dev/null
fi
