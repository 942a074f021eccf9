#!/usr/bin/env bash
# Builds a static release binary for one target on a fresh Debian/Ubuntu machine:
#   scripts/build-target.sh arm-unknown-linux-musleabihf     # Pi Zero (ARMv6 + VFPv2)
#   scripts/build-target.sh armv7-unknown-linux-musleabihf
#   scripts/build-target.sh aarch64-unknown-linux-musl
#   scripts/build-target.sh x86_64-unknown-linux-musl
# Output: target/<triple>/release/jailbird. Extra arguments go to cargo
# (e.g. --features rsa). Installs rust-src, zig (PyPI ziglang) and qemu-user-static.
set -euo pipefail
cd "$(dirname "$0")/.."
triple="${1:?usage: scripts/build-target.sh <target triple> [cargo args]}"
shift
case "$triple" in
  arm-unknown-linux-musleabihf|armv7-unknown-linux-musleabihf|aarch64-unknown-linux-musl|x86_64-unknown-linux-musl) ;;
  *) echo "build-target: unsupported target $triple" >&2; exit 2 ;;
esac
scripts/cross-setup.sh
RUSTC_BOOTSTRAP=1 cargo build --release --locked --target "$triple" \
  -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size "$@"
ls -l "target/$triple/release/jailbird"
