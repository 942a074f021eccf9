#!/usr/bin/env bash
# The test command: sets the machine up (idempotent), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  scripts/test-setup.sh
else
  sudo scripts/test-setup.sh
fi
# The workspace: the agent and warden (warden's tests run the agent binary too).
# --no-fail-fast: every test binary runs, so one failure does not hide others.
cargo test --workspace --all-targets --no-fail-fast "$@"
