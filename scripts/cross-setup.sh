#!/usr/bin/env bash
# Installs the cross-build tools (idempotent): rust-src for -Zbuild-std, zig as
# C compiler and linker, qemu-user-static to run ARM and MIPS binaries.
set -euo pipefail
rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src
if ! python3 -m ziglang version >/dev/null 2>&1; then
  # A Debian system python refuses plain pip installs (PEP 668); zig is a self-contained wheel.
  python3 -m pip install --quiet ziglang==0.17.1 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages ziglang==0.17.1
fi
if ! command -v qemu-arm-static >/dev/null 2>&1 || ! command -v qemu-aarch64-static >/dev/null 2>&1 || ! command -v file >/dev/null 2>&1 || ! command -v readelf >/dev/null 2>&1; then
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends qemu-user-static binutils file >/dev/null
fi
