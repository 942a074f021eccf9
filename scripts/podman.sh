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
# - Debian bookworm's podman 4.3 picks CNI, whose networks have no DNS (the
#   compose file's services find each other by name): netavark with
#   aardvark-dns, where installed.
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt 1048576 ] && [ -z "${CONTAINERS_CONF:-}" ]; then
  conf="${TMPDIR:-/tmp}/jailbird-containers.conf"
  {
    printf '[containers]\ndefault_ulimits = []\n'
    if [ -x /usr/lib/podman/netavark ] && [ -x /usr/lib/podman/aardvark-dns ]; then
      printf '[network]\nnetwork_backend = "netavark"\n'
    fi
  } >"$conf.$$"
  mv -f "$conf.$$" "$conf"
  export CONTAINERS_CONF="$conf"
fi
exec podman "${flags[@]}" "$@"
