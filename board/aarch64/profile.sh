# shellcheck shell=bash disable=SC2034  # variables for board/build.sh
# Generic 64-bit ARM: Raspberry Pi 3/4/5 with a 64-bit OS, arm64 SBCs and
# routers. Sourced by board/build.sh; values already in the caller's
# environment win (the `:=` forms).
JAILBIRD_TARGET=aarch64-unknown-linux-musl
# Default features: dlmalloc, streamlocal (-R /path.sock), local-forward (-L), proxy (--proxy).
JAILBIRD_CARGO_FEATURES=()
: "${JAILBIRD_DEFAULT_STATE:=/var/lib/jailbird/identity}"
