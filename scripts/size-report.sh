#!/usr/bin/env bash
# Prints the stripped size of each built target's binary (budget: 1.0 MB for
# the Pi Zero, issue 14), then every package built in this tree: the .deb files
# board/debian/build.sh writes (target/deb/) and the .ipk files CI writes
# (target/board/ipk/). The size table in docs/boards.md is this output.
#   scripts/size-report.sh [triple ...]     (default: all six targets)
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(arm-unknown-linux-musleabihf armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl x86_64-unknown-linux-musl mips-unknown-linux-musl mipsel-unknown-linux-musl)
printf '| target | stripped bytes | MB |\n|---|---:|---:|\n'
for t in "${targets[@]}"; do
  bin="target/$t/release/jailbird"
  [ -f "$bin" ] || { printf '| %s | not built | |\n' "$t"; continue; }
  bytes=$(stat -c %s "$bin")
  printf '| %s | %s | %s |\n' "$t" "$bytes" "$(python3 -c "print(f'{$bytes/1e6:.2f}')")"
done
shopt -s nullglob
packages=(target/deb/*.deb target/board/ipk/*.ipk)
[ "${#packages[@]}" -gt 0 ] || exit 0
printf '\n| package | bytes | Installed-Size KiB |\n|---|---:|---:|\n'
for p in "${packages[@]}"; do
  # Both formats carry a control file with Installed-Size (KiB for .deb, bytes for .ipk).
  if [ "${p%.deb}" != "$p" ]; then
    kib=$(dpkg-deb --field "$p" Installed-Size)
  else
    kib=$(( ($(tar -xzOf <(ar p "$p" control.tar.gz) ./control | sed -n 's/^Installed-Size: //p') + 1023) / 1024 ))
  fi
  printf '| %s | %s | %s |\n' "$(basename "$p")" "$(stat -c %s "$p")" "$kib"
done
