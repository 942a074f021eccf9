#!/usr/bin/env bash
# What board/container/test.sh needs, as root on Debian/Ubuntu (idempotent):
# podman (rootful) with runc, netavark and aardvark-dns (service names in the
# compose stack), debootstrap (the jail image's base), qemu-user-static with
# its binfmt entries (the ARM images run), and podman-compose from PyPI.
# Changes nothing of podman's own configuration: scripts/podman.sh picks
# the engine flags this machine needs at each call.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "container-setup: run as root" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive
pkgs=(podman runc netavark aardvark-dns debootstrap qemu-user-static curl)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi
command -v podman-compose >/dev/null || python3 -m pip install -q --disable-pip-version-check podman-compose==1.6.0
# qemu-user for the ARM images: binfmt_misc mounted and the two entries loaded
# (with F: the interpreter is opened now, so it works inside containers).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
    echo "container-setup: binfmt_misc cannot be mounted here: the ARM images are built, not run"
fi
if [ -e /proc/sys/fs/binfmt_misc/register ]; then
  for a in arm aarch64; do
    [ -e "/proc/sys/fs/binfmt_misc/qemu-$a" ] || /lib/systemd/systemd-binfmt "/usr/lib/binfmt.d/qemu-$a.conf" ||
      echo "container-setup: could not register qemu-$a"
  done
fi
echo "container-setup: $(podman --version), $(podman-compose --version 2>/dev/null | head -n 1)"
