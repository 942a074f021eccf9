#!/usr/bin/env bash
# Audits every lock file against the RustSec advisory database with cargo-audit:
#
#   scripts/audit.sh                        database in ../shared/advisory-db (CI's copy of shared/)
#   ADVISORY_DB=DIR scripts/audit.sh        another copy (scripts/update-advisories.sh makes one)
#
# Needs cargo-audit (.ci/run: cargo install --locked --no-default-features cargo-audit@0.22.2).
# Nothing is fetched: the database is a pinned snapshot (CI cannot reach GitHub), the
# yanked check is off (it would need the live crates.io index).
#
# In this order, each with `--deny warnings` (unmaintained and unsound advisories fail too):
#  1. A self-check: a generated lock file with russh 0.60.2, which has a published
#     advisory (RUSTSEC-2026-0154, fixed in 0.60.3), must be reported, and the whole
#     snapshot must load. An empty, partial or unread database, or a tool that skips
#     registry packages, fails here.
#  2. Cargo.lock (the agent and warden) and fuzz/Cargo.lock.
#  3. The vendored crates (vendor/**: russh 0.65.1 with jailbird's patch). cargo-audit
#     skips a package without a registry source, and [patch.crates-io] makes russh a
#     path package, so a lock file is generated that names each vendored crate at its
#     version from the crates.io source: the advisories for that upstream version apply.
#     A crate of our own under vendor/ (`publish = false`: russh-chachapoly) has no
#     upstream version; it counts as ours, its dependencies audited in Cargo.lock.
#     A path package that is neither ours nor under vendor/ fails the script.
# Any advisory that matches fails the script with cargo-audit's report, unless
# .cargo/audit.toml ignores its id (with a reason there).
set -euo pipefail
cd "$(dirname "$0")/.."

db="${ADVISORY_DB:-../shared/advisory-db}"
readonly registry='registry+https://github.com/rust-lang/crates.io-index'
# A known-vulnerable version and the advisory the self-check expects for it.
readonly canary_crate=russh canary_version=0.60.2 canary_id=RUSTSEC-2026-0154
readonly stale_days=90

if [ ! -d "$db/crates" ]; then
  echo "audit: no advisory database at $db (no crates/ in it): the steering repo keeps" >&2
  echo "       the snapshot in shared/advisory-db; scripts/update-advisories.sh makes one" >&2
  exit 2
fi
if ! cargo audit --version >/dev/null 2>&1; then
  echo "audit: cargo-audit missing: cargo install --locked --no-default-features cargo-audit@0.22.2" >&2
  exit 2
fi

commit="$(sed -n 's/^commit: //p' "$db/README.md" 2>/dev/null || true)"
date="$(sed -n 's/^date: //p' "$db/README.md" 2>/dev/null || true)"
echo "audit: cargo-audit $(cargo audit --version | awk '{print $NF}'), database $db at ${commit:-unknown commit} of ${date:-unknown date}"
if [ -n "$date" ] && then_s="$(date -d "$date" +%s 2>/dev/null)"; then
  age=$(( ($(date +%s) - then_s) / 86400 ))
  if [ "$age" -gt "$stale_days" ]; then
    echo "audit: WARNING: the advisory snapshot is $age days old (over $stale_days): refresh it (scripts/update-advisories.sh)"
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# "name version source" for each [[package]] of a lock file (source "-" when none).
packages() {
  awk '/^\[\[package\]\]/ { if (n != "") print n, v, (s == "" ? "-" : s); n = v = s = "" }
       /^name = /    { n = $3 } /^version = / { v = $3 } /^source = / { s = $3 }
       END { if (n != "") print n, v, (s == "" ? "-" : s) }' "$1" | tr -d '"'
}

# The value of KEY in the [package] table of a Cargo.toml.
manifest_value() {
  awk -v key="$2" '/^\[/ { in_pkg = ($0 == "[package]") }
       in_pkg && $1 == key && $2 == "=" { gsub(/"/, "", $3); print $3; exit }' "$1"
}

# A lock file naming crates.io packages: lockfile OUT NAME VERSION [NAME VERSION]...
lockfile() {
  local out="$1"
  shift
  echo "version = 4" >"$out"
  while [ "$#" -gt 0 ]; do
    printf '\n[[package]]\nname = "%s"\nversion = "%s"\nsource = "%s"\n' "$1" "$2" "$registry" >>"$out"
    shift 2
  done
}

run_audit() {
  cargo audit --db "$db" --no-fetch --no-yanked --deny warnings --file "$1" 2>&1
}

# 1. The self-check: nothing below means anything if it fails.
lockfile "$work/canary.lock" "$canary_crate" "$canary_version"
if run_audit "$work/canary.lock" >"$work/canary.out" 2>&1 || ! grep -q "$canary_id" "$work/canary.out"; then
  cat "$work/canary.out" >&2
  echo "audit: self-check FAILED: $canary_crate $canary_version was not reported as $canary_id;" >&2
  echo "       the database at $db is empty, partial or not read" >&2
  exit 1
fi
# The whole database was read, not only the canary's crate: as many advisories as the
# snapshot's README counted (scripts/update-advisories.sh), or at least a floor where a
# copy has no count (the crates collection held 1,205 advisories in August 2026).
loaded="$(sed -n 's/.*Loaded \([0-9][0-9]*\) security advisories.*/\1/p' "$work/canary.out")"
expected="$(sed -n 's/^advisories: //p' "$db/README.md" 2>/dev/null || true)"
expected="${expected:-1000}"
if [ -z "$loaded" ] || [ "$loaded" -lt "$expected" ]; then
  cat "$work/canary.out" >&2
  echo "audit: self-check FAILED: ${loaded:-no} advisories loaded from $db, expected at least $expected" >&2
  exit 1
fi
echo "audit: self-check ok: $loaded advisories loaded; $canary_crate $canary_version is reported ($canary_id)"

# 2. and 3.: the lock files, and the vendored crates at their upstream versions.
# A crate under vendor/ is either an upstream crate with our patch (audited at its
# upstream version) or a crate of our own kept beside it (`publish = false`, e.g.
# vendor/russh/chachapoly): that one has no upstream to audit, and its dependencies
# are in Cargo.lock like any of ours.
vendored=()
vendor_ours=""
while read -r manifest; do
  name="$(manifest_value "$manifest" name)"
  if [ "$(manifest_value "$manifest" publish)" = false ]; then
    vendor_ours+=" $name"
  else
    vendored+=("$name" "$(manifest_value "$manifest" version)")
  fi
done < <(find vendor -name target -prune -o -name Cargo.toml -print 2>/dev/null | sort)
locks=(Cargo.lock)
if [ -e fuzz/Cargo.lock ]; then locks+=(fuzz/Cargo.lock); fi

# Every package without a registry source must be one of ours or a vendored crate.
ours=" $(find . \( -name target -o -name vendor -o -name .git \) -prune -o -name Cargo.toml -print |
  while read -r m; do manifest_value "$m" name; done | tr '\n' ' ')$vendor_ours "
vendored_names=" $(for ((i = 0; i < ${#vendored[@]}; i += 2)); do printf '%s ' "${vendored[i]}"; done)"
unaudited=0
for lock in "${locks[@]}"; do
  while read -r name version source; do
    [ "$source" = - ] || continue
    case "$ours$vendored_names" in
      *" $name "*) ;;
      *) echo "audit: $lock: $name $version is a path package that is neither ours nor under vendor/: not audited" >&2
         unaudited=1 ;;
    esac
  done < <(packages "$lock")
done

failed=()
for lock in "${locks[@]}"; do
  echo "== audit $lock"
  run_audit "$lock" || failed+=("$lock")
done
if [ "${#vendored[@]}" -gt 0 ]; then
  lockfile "$work/vendored.lock" "${vendored[@]}"
  label="vendored:"
  for ((i = 0; i < ${#vendored[@]}; i += 2)); do label+=" ${vendored[i]} ${vendored[i + 1]}"; done
  echo "== audit $label (as published on crates.io)"
  run_audit "$work/vendored.lock" || failed+=("$label")
fi

if [ "${#failed[@]}" -gt 0 ] || [ "$unaudited" -ne 0 ]; then
  if [ "${#failed[@]}" -gt 0 ]; then
    printf 'audit: FAILED: %s\n' "${failed[@]}" >&2
    echo "audit: upgrade; an advisory that cannot apply goes into .cargo/audit.toml's ignore list, with the reason" >&2
  fi
  if [ "$unaudited" -ne 0 ]; then
    echo "audit: FAILED: a path package above is not audited: vendor it under vendor/ or depend on the registry" >&2
  fi
  exit 1
fi
echo "audit: ok: ${locks[*]} and $(( ${#vendored[@]} / 2 )) vendored crate(s), no advisory applies"
