#!/usr/bin/env bash
# Builds one board's static binary from its profile, board/<board>/profile.sh
# (target triple, cargo features, compiled-in JAILBIRD_DEFAULT_* values), with
# scripts/build-target.sh (rust-src + zig; installs what it needs):
#   board/build.sh rpi-zero
#   board/build.sh aarch64
#   board/build.sh container
#   OPENWRT_ARCH=aarch64_cortex-a53 board/build.sh openwrt
# Set any JAILBIRD_DEFAULT_* (or JAILBIRD_MAX_CHANNELS, JAILBIRD_COPY_BUF_BYTES)
# in the environment to bake it in; the caller's values win over the profile's:
#   JAILBIRD_DEFAULT_DESTINATION=tunuser@jail.example:8022 \
#   JAILBIRD_DEFAULT_REMOTE_FORWARD=2022:127.0.0.1:22 board/build.sh rpi-zero
# Output: target/board/<board>/jailbird (stripped, static); `jailbird info` on
# the device prints what went in.
set -euo pipefail
cd "$(dirname "$0")/.."
board="${1:?usage: board/build.sh <board> [cargo args]   (boards: rpi-zero aarch64 container openwrt)}"
shift
profile="board/$board/profile.sh"
[ -f "$profile" ] || { echo "board/build.sh: no profile $profile" >&2; exit 2; }

JAILBIRD_TARGET=""
JAILBIRD_CARGO_FEATURES=()
# shellcheck source=/dev/null
. "$profile"
[ -n "$JAILBIRD_TARGET" ] || { echo "board/build.sh: $profile sets no JAILBIRD_TARGET" >&2; exit 2; }

# Hand every build-time value that is set to cargo (build.rs checks them all).
while IFS= read -r name; do
  export "${name?}"
done < <(compgen -v | grep -E '^JAILBIRD_(DEFAULT_[A-Z_]+|MAX_CHANNELS|COPY_BUF_BYTES)$' || true)

echo "== $board: $JAILBIRD_TARGET ${JAILBIRD_CARGO_FEATURES[*]}"
env | grep -E '^JAILBIRD_(DEFAULT_|MAX_CHANNELS|COPY_BUF_BYTES)' | sort | sed 's/^/   /' || true
scripts/build-target.sh "$JAILBIRD_TARGET" "${JAILBIRD_CARGO_FEATURES[@]}" "$@"
out="target/board/$board"
mkdir -p "$out"
cp "target/$JAILBIRD_TARGET/release/jailbird" "$out/jailbird"
echo "$out/jailbird: $(stat -c %s "$out/jailbird") bytes"
