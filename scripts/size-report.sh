#!/usr/bin/env bash
# Prints the stripped size of each built target's binary (budget: 1.0 MB for the Pi Zero, issue 14).
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
