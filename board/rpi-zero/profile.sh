# shellcheck shell=bash disable=SC2034  # variables for board/build.sh
# Raspberry Pi Zero / Zero W (ARMv6 + VFPv2, Raspberry Pi OS 32-bit or any
# systemd image). Sourced by board/build.sh; values already in the caller's
# environment win (the `:=` forms).
JAILBIRD_TARGET=arm-unknown-linux-musleabihf
# Default features: dlmalloc, streamlocal (-R /path.sock), local-forward (-L), proxy (--proxy).
# small-log: no debug/trace logging compiled in (22.7 KB; Cargo.toml).
JAILBIRD_CARGO_FEATURES=(--features small-log)
# The unit's StateDirectory=jailbird is /var/lib/jailbird.
: "${JAILBIRD_DEFAULT_STATE:=/var/lib/jailbird/identity}"
# Bake the jail in for an image that needs no /etc/jailbird/jailbird.env at all, e.g.:
#   JAILBIRD_DEFAULT_DESTINATION=tunuser@jail.example:8022
#   JAILBIRD_DEFAULT_REMOTE_FORWARD=2022:127.0.0.1:22
#   JAILBIRD_DEFAULT_KNOWN_HOSTS=/etc/jailbird/known_hosts
