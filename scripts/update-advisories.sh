#!/usr/bin/env bash
# Refreshes the RustSec advisory database snapshot that scripts/audit.sh reads, for a
# maintainer on a machine that can clone rustsec/advisory-db (CI and the developers'
# machines cannot reach GitHub):
#
#   git clone https://github.com/rustsec/advisory-db /tmp/advisory-db
#   scripts/update-advisories.sh /tmp/advisory-db                  -> ../shared/advisory-db
#   scripts/update-advisories.sh /tmp/advisory-db target/adb       -> another directory
#
# SOURCE is a clone, work tree or bare, of the database; its committed HEAD is copied
# (local edits are not). The copy is the database's own layout, crates/<name>/RUSTSEC-*.md,
# so cargo-audit reads it with `--db DIR --no-fetch`: the whole crates collection
# (~1,200 advisories, ~1.3 MB), not only the crates in today's lock files, so a
# dependency added later is audited without a refresh. The std collection (rust/) is
# left out: cargo audit checks lock files, and lock files name no std.
#
# The snapshot lives in the steering repo's shared/ (CI gets a copy beside its clone),
# not in this repository: it is data copied from another project. DEST/README.md records
# the commit and its date; scripts/audit.sh prints both and warns when they are old.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
  echo "usage: scripts/update-advisories.sh ADVISORY_DB_CLONE [DEST (default ../shared/advisory-db)]" >&2
  exit 2
fi
src="$1"
dest="${2:-../shared/advisory-db}"

if ! commit="$(git -C "$src" rev-parse --verify 'HEAD^{commit}' 2>/dev/null)"; then
  echo "update-advisories: $src is not a git clone of rustsec/advisory-db" >&2
  exit 2
fi
if ! git -C "$src" cat-file -e "HEAD:crates" 2>/dev/null; then
  echo "update-advisories: $src has no crates/ at HEAD ($commit): not the RustSec advisory database" >&2
  exit 2
fi
date="$(git -C "$src" log -1 --format=%cI HEAD)"

# Build next to DEST and swap, so a failed copy never leaves half a database behind.
mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d "$dest.new.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
git -C "$src" archive --format=tar HEAD crates LICENSE.txt | tar -x -C "$tmp"
count="$(find "$tmp/crates" -name 'RUSTSEC-*.md' | wc -l)"
crates="$(find "$tmp/crates" -mindepth 1 -maxdepth 1 -type d | wc -l)"
if [ "$count" -lt 100 ]; then
  echo "update-advisories: only $count advisories at $commit; refusing to replace $dest" >&2
  exit 1
fi

cat >"$tmp/README.md" <<EOF
# RustSec advisory database snapshot

The crates collection of the RustSec advisory database (rustsec/advisory-db, CC0-1.0,
see LICENSE.txt), in the database's own layout, for jailbird's scripts/audit.sh
(\`cargo audit --db <this dir> --no-fetch\`). Written by jailbird's
scripts/update-advisories.sh; refresh it with that script, do not edit by hand.

commit: $commit
date: $date
advisories: $count
crates: $crates
copied: $(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF

rm -rf "$dest.old"
if [ -e "$dest" ]; then mv "$dest" "$dest.old"; fi
mv "$tmp" "$dest"
rm -rf "$dest.old"
trap - EXIT
echo "update-advisories: $dest <- $commit ($date): $count advisories for $crates crates"
