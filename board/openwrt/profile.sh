# shellcheck shell=bash disable=SC2034  # variables for board/build.sh
# OpenWrt routers, one static binary per OpenWrt package architecture
# (OPENWRT_ARCH, as in `opkg print-architecture`). Sourced by board/build.sh;
# values already in the caller's environment win (the `:=` forms).
case "${OPENWRT_ARCH:?set OPENWRT_ARCH, e.g. aarch64_cortex-a53, arm_cortex-a7_neon-vfpv4, x86_64}" in
  aarch64_*) JAILBIRD_TARGET=aarch64-unknown-linux-musl ;;
  # ARMv7 with VFPv4 + NEON (what the armv7 build's C code is compiled for).
  arm_cortex-a7_*|arm_cortex-a15_*|arm_cortex-a17_*) JAILBIRD_TARGET=armv7-unknown-linux-musleabihf ;;
  arm_arm1176jzf-s_vfp) JAILBIRD_TARGET=arm-unknown-linux-musleabihf ;;
  x86_64) JAILBIRD_TARGET=x86_64-unknown-linux-musl ;;
  *) echo "openwrt: no jailbird build for $OPENWRT_ARCH (supported: aarch64_*, arm_cortex-a7/a15/a17_*, arm_arm1176jzf-s_vfp, x86_64; MIPS targets are Rust tier 3)" >&2; return 2 ;;
esac
JAILBIRD_CARGO_FEATURES=()
# /var is tmpfs on OpenWrt: the identity lives under /etc, kept across
# sysupgrade by /lib/upgrade/keep.d/jailbird.
: "${JAILBIRD_DEFAULT_STATE:=/etc/jailbird/identity}"
