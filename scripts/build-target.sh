#!/usr/bin/env bash
# Builds a static release binary for one target on a fresh Debian/Ubuntu machine:
#   scripts/build-target.sh arm-unknown-linux-musleabihf     # Pi Zero (ARMv6 + VFPv2)
#   scripts/build-target.sh armv7-unknown-linux-musleabihf
#   scripts/build-target.sh aarch64-unknown-linux-musl
#   scripts/build-target.sh x86_64-unknown-linux-musl
#   scripts/build-target.sh mips-unknown-linux-musl           # ath79 routers (mips_24kc), big-endian
#   scripts/build-target.sh mipsel-unknown-linux-musl         # ramips routers (mipsel_24kc)
# The MIPS targets are tier 3 (no prebuilt std anywhere): -Zbuild-std makes
# std here as for the others; .cargo/config.toml adds +crt-static, which
# their target specs do not default to.
# Output: target/<triple>/release/jailbird. Extra arguments go to cargo
# (e.g. --features rsa). Installs rust-src, zig (PyPI ziglang) and qemu-user-static.
set -euo pipefail
cd "$(dirname "$0")/.."
triple="${1:?usage: scripts/build-target.sh <target triple> [cargo args]}"
shift
case "$triple" in
  arm-unknown-linux-musleabihf|armv7-unknown-linux-musleabihf|aarch64-unknown-linux-musl|x86_64-unknown-linux-musl|mips-unknown-linux-musl|mipsel-unknown-linux-musl) ;;
  *) echo "build-target: unsupported target $triple" >&2; exit 2 ;;
esac
scripts/cross-setup.sh
RUSTC_BOOTSTRAP=1 cargo build --release --locked --target "$triple" \
  -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size "$@"
ls -l "target/$triple/release/jailbird"
