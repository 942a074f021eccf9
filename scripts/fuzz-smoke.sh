#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a short while (CI smoke test):
#
#   scripts/fuzz-smoke.sh                      all targets, FUZZ_SECONDS (default 30) each
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh     longer runs
#   scripts/fuzz-smoke.sh known_hosts          only the targets named
#
# Installs cargo-fuzz (cargo install --locked) and a nightly toolchain if they
# are missing. Each target starts from a throw-away copy of its seed corpus
# (fuzz/seeds/<target>/) and its dictionary (fuzz/dicts/<target>.dict), so the
# committed seeds never change. A crash, a panic, a timeout (an input running
# longer than FUZZ_TIMEOUT seconds, default 10) or running out of memory fails
# the script, after the remaining targets have run; the failing input is left
# in fuzz/artifacts/<target>/ and the libFuzzer output in the log.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
timeout="${FUZZ_TIMEOUT:-10}"
for v in "$seconds" "$timeout"; do
  case "$v" in
    ''|*[!0-9]*|0) echo "fuzz-smoke: FUZZ_SECONDS and FUZZ_TIMEOUT must be positive whole seconds" >&2; exit 2 ;;
  esac
done

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
# grep without -q reads all of its input, so rustup never sees a closed pipe
# (which pipefail would turn into "nightly missing").
if ! rustup toolchain list | grep nightly >/dev/null || ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz-smoke: no fuzz targets found" >&2; exit 2; }

echo "fuzz-smoke: building ${targets[*]}"
(cd fuzz && cargo +nightly fuzz build)

work="$(mktemp -d "${TMPDIR:-/tmp}/jailbird-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=()
for t in "${targets[@]}"; do
  corpus="$work/corpus-$t"
  mkdir -p "$corpus"
  if [ -d "fuzz/seeds/$t" ]; then
    cp -R "fuzz/seeds/$t/." "$corpus/"
  fi
  opts=(-max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1)
  if [ -f "fuzz/dicts/$t.dict" ]; then
    opts+=(-dict="dicts/$t.dict")
  fi
  log="$work/$t.log"
  echo "fuzz-smoke: $t for ${seconds}s ($(find "$corpus" -type f | wc -l) seeds)"
  start=$SECONDS
  if (cd fuzz && cargo +nightly fuzz run "$t" "$corpus" -- "${opts[@]}") >"$log" 2>&1; then
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    echo "fuzz-smoke: $t ok: ${execs:-?} executions in $((SECONDS - start))s, corpus $(find "$corpus" -type f | wc -l) inputs"
  else
    echo "fuzz-smoke: $t FAILED; libFuzzer output:" >&2
    tail -n 60 "$log" >&2
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz-smoke: failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz-smoke: all ${#targets[@]} targets ran ${seconds}s without a failure"
