#!/usr/bin/env bash
# podman with the flags this machine needs, chosen by looking, never by
# changing the machine's own configuration:
# - cgroups in hybrid v1/v2 mode (crun refuses them): runc and cgroupfs;
# - a hard RLIMIT_NOFILE below podman's default container ulimit (1048576):
#   a containers.conf of ours (CONTAINERS_CONF, for these commands only) with
#   no default ulimits, so containers inherit the engine's.
# On an ordinary host it is plain podman.   scripts/podman.sh run --rm IMAGE ...
set -euo pipefail
flags=()
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" != cgroup2fs ]; then
  flags+=(--runtime runc --cgroup-manager cgroupfs)
fi
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt 1048576 ] && [ -z "${CONTAINERS_CONF:-}" ]; then
  conf="${TMPDIR:-/tmp}/jailbird-containers.conf"
  [ -f "$conf" ] || printf '[containers]\ndefault_ulimits = []\n' >"$conf"
  export CONTAINERS_CONF="$conf"
fi
exec podman "${flags[@]}" "$@"
