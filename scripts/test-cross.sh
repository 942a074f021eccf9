#!/usr/bin/env bash
# Builds each cross target and proves the binary works, not just that it links:
# under qemu-user (the Pi Zero build on an ARM1176 CPU model, where any ARMv7
# instruction dies with SIGILL; the MIPS builds on a 24Kc) it creates its key,
# holds `run -R` through a real OpenSSH jail on loopback, carries data intact to
# an echo target, and reads a state file the host (x86_64) build wrote, and the
# host reads its own: the same tests as for the host binary, pointed at the
# emulated one (tests/emulated.rs). The unit tests also run under qemu on
# ARMv6 and on big-endian MIPS.
# Ends with the size table.
#   scripts/test-cross.sh [triple ...]     (default: all six targets)
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(arm-unknown-linux-musleabihf armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl x86_64-unknown-linux-musl mips-unknown-linux-musl mipsel-unknown-linux-musl)
scripts/cross-setup.sh
if [ "$(id -u)" = 0 ]; then scripts/test-setup.sh; else sudo scripts/test-setup.sh; fi

runner_for() {
  case "$1" in
    arm-unknown-linux-musleabihf) echo "qemu-arm-static -cpu arm1176" ;;
    armv7-unknown-linux-musleabihf) echo "qemu-arm-static -cpu cortex-a7" ;;
    aarch64-unknown-linux-musl) echo "qemu-aarch64-static" ;;
    mips-unknown-linux-musl) echo "qemu-mips-static -cpu 24Kc" ;;
    mipsel-unknown-linux-musl) echo "qemu-mipsel-static -cpu 24Kc" ;;
    *) echo "" ;;
  esac
}

for t in "${targets[@]}"; do
  echo "== build $t"
  scripts/build-target.sh "$t" --quiet
  bin="target/$t/release/jailbird"
  file "$bin" 2>/dev/null | grep -q "statically linked" || { echo "$bin is not statically linked"; file "$bin"; exit 1; }
  if [ "$t" = arm-unknown-linux-musleabihf ]; then
    # The ELF attributes must say ARMv6 with VFPv2: not one ARMv7 object.
    attrs=$(readelf -A "$bin")
    echo "$attrs" | grep -q "Tag_CPU_arch: v6" || { echo "$bin: not ARMv6"; echo "$attrs"; exit 1; }
    echo "$attrs" | grep -q "Tag_FP_arch: VFPv2" || { echo "$bin: not VFPv2"; echo "$attrs"; exit 1; }
  fi
  case "$t" in
    mips*-unknown-linux-musl)
      # MIPS32r2, soft-float (the 24Kc routers have no FPU), and the byte order the name says.
      order=MSB; [ "$t" = mips-unknown-linux-musl ] || order=LSB
      file "$bin" | grep -q "32-bit $order executable, MIPS, MIPS32 rel2" || { echo "$bin: not $order MIPS32r2"; file "$bin"; exit 1; }
      readelf -A "$bin" | grep -q "FP ABI: Soft float" || { echo "$bin: not soft-float"; readelf -A "$bin"; exit 1; }
      ;;
  esac
  echo "== end-to-end $t under '$(runner_for "$t")'"
  JAILBIRD_TEST_BIN="$PWD/$bin" JAILBIRD_TEST_RUNNER="$(runner_for "$t")" \
    cargo test --quiet --test emulated
done

# Unit tests on the smallest CPU (ARMv6) and on the one big-endian target.
for t in arm-unknown-linux-musleabihf mips-unknown-linux-musl; do
  if printf '%s\n' "${targets[@]}" | grep -qx "$t"; then
    echo "== unit tests on $t under $(runner_for "$t")"
    RUSTC_BOOTSTRAP=1 cargo test --quiet --locked --lib --target "$t" -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size
  fi
done
scripts/size-report.sh "${targets[@]}"
