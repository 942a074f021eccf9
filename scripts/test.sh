#!/usr/bin/env bash
# The test command: sets the machine up (idempotent), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  scripts/test-setup.sh
else
  sudo scripts/test-setup.sh
fi
cargo test --all-targets "$@"
