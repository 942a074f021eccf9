#!/usr/bin/env bash
# Unpacks a newer OpenSSH server than the host's (Debian bookworm-backports,
# 10.0 today) into a directory, never installing it: warden's tests use it
# where OpenSSH 9.8+ behaves differently (PerSourcePenalties). Fetched with
# `apt-get download` through a private apt state (signature-checked against
# the Debian archive keyring; the host's sources and package lists are left
# alone) and unpacked with `dpkg -x`.
#
#   scripts/openssh-backports.sh [DEST]    # default /var/cache/jailbird-test/openssh-backports
#
# Prints DEST/usr/sbin/sshd's version. Idempotent.
set -euo pipefail
dest="${1:-/var/cache/jailbird-test/openssh-backports}"
if [ -x "$dest/usr/sbin/sshd" ] && "$dest/usr/sbin/sshd" -V 2>&1 | grep -q '^OpenSSH_'; then
  "$dest/usr/sbin/sshd" -V 2>&1 | head -1
  exit 0
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || apt-get install -y -qq debian-archive-keyring >/dev/null
# The mirror the host's apt already uses, and its release's backports suite.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || { echo "openssh-backports: cannot tell the Debian release" >&2; exit 1; }
mirror=$(apt-cache policy | awk '$2 ~ /^https?:/ && $3 ~ /^'"$codename"'\/main$/ { print $2; exit }')
[ -n "$mirror" ] || { echo "openssh-backports: the host's apt has no Debian $codename main suite" >&2; exit 1; }
apt="$dest.apt"
rm -rf "$apt"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
: >"$apt/status"
echo "deb [signed-by=$keyring] $mirror $codename-backports main" >"$apt/sources.list"
opts=(-o Dir::State::Lists="$apt/lists" -o Dir::State::status="$apt/status" -o Dir::Cache="$apt/cache"
  -o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false)
apt-get -qq "${opts[@]}" update
(cd "$apt/debs" && apt-get -qq "${opts[@]}" download openssh-server openssh-client 2>&1 | { grep -v "unsandboxed" || true; })
rm -rf "$dest"
mkdir -p "$dest"
for deb in "$apt"/debs/*.deb; do dpkg -x "$deb" "$dest"; done
rm -rf "$apt"
"$dest/usr/sbin/sshd" -V 2>&1 | head -1
