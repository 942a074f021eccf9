#!/usr/bin/env bash
# Builds the static binary for one OpenWrt package architecture and packs it:
#   board/openwrt/build.sh aarch64_cortex-a53 out/          # arm64 routers (e.g. MT7622/MT7981, Pi 3/4)
#   board/openwrt/build.sh arm_cortex-a7_neon-vfpv4 out/    # 32-bit ARM routers (IPQ40xx, MT7623)
#   board/openwrt/build.sh x86_64 out/
#   board/openwrt/build.sh mips_24kc out/                   # ath79 routers (most TP-Link/GL.iNet MIPS models)
#   board/openwrt/build.sh mipsel_24kc out/                 # ramips routers (MT7621, MT7628/MT7688)
# Any JAILBIRD_DEFAULT_* in the environment is baked in (see board/build.sh).
# Writes out/jailbird_<version>-<release>_<arch>.ipk; the binary is also left
# at target/board/openwrt/jailbird for the feed Makefile.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 2 ] || { echo "usage: $0 OPENWRT_ARCH OUTDIR" >&2; exit 2; }
OPENWRT_ARCH="$1" board/build.sh openwrt
board/openwrt/build-ipk.sh target/board/openwrt/jailbird "$1" "$2"
