#!/usr/bin/env bash
# Emulated Pi Zero, like for like: the ARMv6 jailbird (board/build.sh rpi-zero)
# against Debian armel's OpenSSH client and dropbear's dbclient, each under
# `qemu-arm-static -cpu arm1176` (an ARM1176 CPU model: an ARMv7 instruction dies
# with SIGILL), through the same x86_64 OpenSSH jail on loopback, one cipher
# forced on every client per row. benches/tunnel_bench.py does the measuring;
# this script only makes the ARM side:
#   - target/board/rpi-zero/jailbird, built if missing (or $JAILBIRD_ARMV6_BIN);
#   - a sysroot, target/armv6-bench/sysroot, with openssh-client, dropbear-bin
#     and the libraries they link, fetched with `apt-get download` for armel
#     from the Debian mirror the host's apt already uses, through a private apt
#     state under target/armv6-bench/apt (the host's dpkg architectures and
#     package lists are left alone) and unpacked with `dpkg -x`: nothing is
#     installed on the host. Debian armel is ARMv5TE soft-float; OpenSSL's ARMv4
#     assembly and libtomcrypt's C run on an ARMv6 as on a Pi Zero.
# Run as root (the jail logs in `jbtunnel`; scripts/test-setup.sh makes it):
#   benches/armv6_bench.sh                      # ChaCha20 and AES-256-GCM, 64 MiB x 3
#   benches/armv6_bench.sh --mib 8 --runs 1     # any tunnel_bench.py option wins
# Prints tunnel_bench.py's table: MB/s and CPU seconds per MiB (emulated: qemu's
# own translation counts too, on every side alike) for the agent and for the
# jail's sshd serving it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/armv6-bench
sysroot="$PWD/$out/sysroot"
bin="${JAILBIRD_ARMV6_BIN:-target/board/rpi-zero/jailbird}"

command -v qemu-arm-static >/dev/null 2>&1 || scripts/cross-setup.sh
qemu=(qemu-arm-static -cpu arm1176)
[ -x "$bin" ] || board/build.sh rpi-zero --quiet

make_sysroot() {
  local apt="$PWD/$out/apt" keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -r "$keyring" ] || apt-get install -y -qq debian-archive-keyring >/dev/null
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$out/debs"
  : >"$apt/status"
  # The Debian suites the host's apt is configured with (main), as armel sources.
  apt-cache policy | awk -v k="$keyring" '
    $2 ~ /^(https?|file):/ && $3 ~ /\/main$/ && $5 == "Packages" { uri = $2; suite = $3; sub(/\/main$/, "", suite); next }
    uri != "" && /o=Debian/ { print "deb [signed-by=" k "] " uri " " suite " main" }
    { uri = "" }' | sort -u >"$apt/sources.list"
  [ -s "$apt/sources.list" ] || { echo "armv6_bench: the host's apt has no Debian main suite to fetch armel packages from" >&2; exit 1; }
  local opts=(-o APT::Architecture=armel -o APT::Architectures::=armel
    -o Dir::State::Lists="$apt/lists" -o Dir::State::status="$apt/status" -o Dir::Cache="$apt/cache"
    -o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false)
  apt-get -qq "${opts[@]}" update
  # The two clients and every library in their dependency closure (no maintainer tools).
  local pkgs
  pkgs=$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
           --no-replaces --no-enhances --no-pre-depends openssh-client dropbear-bin \
         | grep -E '^(lib[^ ]*|zlib1g|openssh-client|dropbear-bin)$' | sort -u)
  rm -f "$out"/debs/*.deb
  # shellcheck disable=SC2086  # one word per package
  (cd "$out/debs"; apt-get -qq "${opts[@]}" download $pkgs 2>&1 | { grep -v "unsandboxed" || true; })
  rm -rf "$sysroot"
  mkdir -p "$sysroot"
  for deb in "$out"/debs/*.deb; do dpkg -x "$deb" "$sysroot"; done
  # One library directory (merged /usr): glibc's loader under qemu -L finds them all there.
  if [ -d "$sysroot/lib" ] && [ ! -L "$sysroot/lib" ]; then
    cp -a "$sysroot/lib/." "$sysroot/usr/lib/"
    rm -rf "${sysroot:?}/lib"
    ln -s usr/lib "$sysroot/lib"
  fi
  # The clients and every library they link must be there.
  local missing=""
  for b in ssh dbclient dropbearkey; do [ -x "$sysroot/usr/bin/$b" ] || missing+=" usr/bin/$b"; done
  for lib in $(readelf -d "$sysroot"/usr/bin/{ssh,dbclient,dropbearkey} | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort -u); do
    [ -e "$sysroot/usr/lib/arm-linux-gnueabi/$lib" ] || [ -e "$sysroot/usr/lib/$lib" ] || missing+=" $lib"
  done
  [ -z "$missing" ] || { echo "armv6_bench: missing from the sysroot:$missing" >&2; exit 1; }
  (cd "$out/debs" && ls) >"$out/packages.txt"
}

if ! "${qemu[@]}" -L "$sysroot" "$sysroot/usr/bin/ssh" -V >/dev/null 2>&1; then
  echo "== armel sysroot in $out/sysroot (apt-get download + dpkg -x, not installed)"
  make_sysroot
fi
ssh_cmd="${qemu[*]} -L $sysroot $sysroot/usr/bin/ssh"
db_cmd="${qemu[*]} -L $sysroot $sysroot/usr/bin/dbclient"
dbkey_cmd="${qemu[*]} -L $sysroot $sysroot/usr/bin/dropbearkey"
echo "== $bin vs armel $(grep -E '^(openssh-client|dropbear-bin|libssl3)_' "$out/packages.txt" 2>/dev/null | tr '\n' ' ')"
exec python3 benches/tunnel_bench.py --bin "$bin" --runner "${qemu[*]}" \
  --ssh-cmd "$ssh_cmd" --dbclient-cmd "$db_cmd" --dropbearkey-cmd "$dbkey_cmd" \
  --per MiB --no-footprint --mib 64 --runs 3 \
  --ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com \
  --label "emulated ARMv6 (qemu-user, -cpu arm1176): every client an ARM binary, the jail x86_64 sshd; sysroot: Debian armel" \
  "$@"
