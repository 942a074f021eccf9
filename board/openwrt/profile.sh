# shellcheck shell=bash disable=SC2034  # variables for board/build.sh
# OpenWrt routers, one static binary per OpenWrt package architecture
# (OPENWRT_ARCH, as in `opkg print-architecture`). Sourced by board/build.sh;
# values already in the caller's environment win (the `:=` forms).
case "${OPENWRT_ARCH:?set OPENWRT_ARCH, e.g. mips_24kc, mipsel_24kc, aarch64_cortex-a53, arm_cortex-a7_neon-vfpv4, x86_64}" in
  aarch64_*) JAILBIRD_TARGET=aarch64-unknown-linux-musl ;;
  # ARMv7 with VFPv4 + NEON (what the armv7 build's C code is compiled for).
  arm_cortex-a7_*|arm_cortex-a15_*|arm_cortex-a17_*) JAILBIRD_TARGET=armv7-unknown-linux-musleabihf ;;
  arm_arm1176jzf-s_vfp) JAILBIRD_TARGET=arm-unknown-linux-musleabihf ;;
  x86_64) JAILBIRD_TARGET=x86_64-unknown-linux-musl ;;
  # ath79 (most older routers) and ramips (MT7621/MT76x8): MIPS32r2, soft-float.
  # The 74Kc/1004Kc package archs run the same MIPS32r2 code.
  mips_24kc|mips_74kc) JAILBIRD_TARGET=mips-unknown-linux-musl ;;
  mipsel_24kc|mipsel_74kc|mipsel_1004kc) JAILBIRD_TARGET=mipsel-unknown-linux-musl ;;
  *) echo "openwrt: no jailbird build for $OPENWRT_ARCH (supported: aarch64_*, arm_cortex-a7/a15/a17_*, arm_arm1176jzf-s_vfp, x86_64, mips_24kc, mips_74kc, mipsel_24kc, mipsel_74kc, mipsel_1004kc)" >&2; return 2 ;;
esac
# small-log: no debug/trace logging compiled in (22.7 KB; Cargo.toml).
JAILBIRD_CARGO_FEATURES=(--features small-log)
# /var is tmpfs on OpenWrt: the identity lives under /etc, kept across
# sysupgrade by /lib/upgrade/keep.d/jailbird.
: "${JAILBIRD_DEFAULT_STATE:=/etc/jailbird/identity}"
