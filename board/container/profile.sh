# shellcheck shell=bash disable=SC2034  # variables for board/build.sh
# The FROM-scratch container (board/container/Containerfile). Sourced by
# board/build.sh; values already in the caller's environment win.
# CONTAINER_ARCH=aarch64 builds the arm64 image's binary.
case "${CONTAINER_ARCH:-x86_64}" in
  x86_64) JAILBIRD_TARGET=x86_64-unknown-linux-musl ;;
  aarch64|arm64) JAILBIRD_TARGET=aarch64-unknown-linux-musl ;;
  armv7|arm/v7) JAILBIRD_TARGET=armv7-unknown-linux-musleabihf ;;
  armv6|arm/v6|arm) JAILBIRD_TARGET=arm-unknown-linux-musleabihf ;;
  *) echo "container: CONTAINER_ARCH=$CONTAINER_ARCH: expected x86_64, aarch64, armv7 or armv6" >&2; return 2 ;;
esac
# + rsa: the autossh container's users mount RSA keys (`ssh-keygen -t rsa`) as
# SSH_KEY_FILE, and RSA host keys are common on the jails they reach.
JAILBIRD_CARGO_FEATURES=(--features rsa)
# The image's volume.
: "${JAILBIRD_DEFAULT_STATE:=/var/lib/jailbird/identity}"
# The autossh container's mounts, used as-is when present and nothing else is
# named: the key it already authorizes (read-only is fine) and its known_hosts.
: "${JAILBIRD_DEFAULT_IDENTITY_MOUNT:=/id_rsa}"
: "${JAILBIRD_DEFAULT_KNOWN_HOSTS_MOUNT:=/known_hosts}"
