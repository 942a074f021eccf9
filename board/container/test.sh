#!/usr/bin/env bash
# The images, run with a real engine (podman, rootful), as root:
#   board/container/test.sh
# 1. the jail image (board/jail-image/) refuses to start without keys, and says why;
# 2. the agent image (board/container/, the autossh container's drop-in) with
#    the autossh container's environment and its /id_rsa and /known_hosts
#    mounts holds a tunnel to the jail image: an ssh through the tunnel reaches
#    a stand-in for the device's own sshd; the mounted key is used as-is (no
#    file changed, no identity made); AUTOSSH_* named in one warning;
# 3. a jail host key persists in its volume across a new container;
# 4. an agent with a known_hosts that does not match the jail gets no tunnel;
# 5. the multi-arch index (linux/amd64, arm64, arm/v7, arm/v6): each image runs
#    (`jailbird info`) under qemu-user where binfmt is registered, and building
#    it again gives the same digests (byte-reproducible).
# Containers use the host's network namespace and listen on 127.0.0.1 only.
# Prints figures: image sizes, start-to-tunnel time. Ends "containers: N passed, N failed".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
die() { echo "board/container/test.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root (rootful podman)"
P="$root/scripts/podman.sh"
JAIL_IMAGE="${JAIL_IMAGE:-jailbird-jail:test}"
AGENT_IMAGE="${AGENT_IMAGE:-jailbird:test}"
MULTI="${MULTI_IMAGE:-jailbird:test-multi}"
DEADLINE_SECONDS=60

passed=0 failed=0
check() { # check WHAT COMMAND...: counts COMMAND's verdict
  local what="$1"
  shift
  if "$@"; then passed=$((passed + 1)); echo "ok: $what"; else failed=$((failed + 1)); echo "FAIL: $what" >&2; fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
# wait_log CONTAINER TEXT: until the container's log holds TEXT (deadline).
wait_log() {
  local t=$((SECONDS + DEADLINE_SECONDS))
  while [ $SECONDS -lt $t ]; do
    "$P" logs "$1" 2>&1 | grep -q -- "$2" && return 0
    "$P" container exists "$1" || return 1
    sleep 0.2
  done
  echo "  no '$2' in $1's log within ${DEADLINE_SECONDS}s:" >&2
  "$P" logs "$1" 2>&1 | tail -n 20 | sed 's/^/    /' >&2
  return 1
}

work="$(mktemp -d /tmp/jailbird-container-test.XXXXXX)"
chmod 0755 "$work"
names=()
cleanup() {
  local n
  for n in "${names[@]}"; do "$P" rm -f -t 2 "$n" >/dev/null 2>&1 || true; done
  if [ -f "$work/device.pid" ]; then kill "$(cat "$work/device.pid")" 2>/dev/null || true; fi
  "$P" volume rm -f "jbtest-keys-$$" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
run_bg() { # run_bg NAME ARGS...: a detached container, removed at the end
  local n="$1"
  shift
  names+=("$n")
  "$P" run -d --name "$n" --network host "$@" >/dev/null
}

echo "== images"
t0=$(date +%s)
board/jail-image/build.sh "$JAIL_IMAGE"
jail_build=$(($(date +%s) - t0))
if [ -n "${JAILBIRD_BIN:-}" ]; then
  board/container/build-image.sh "$AGENT_IMAGE"
else
  CONTAINER_ARCH=x86_64 board/container/build-image.sh "$AGENT_IMAGE"
fi

# ---- 1 -------------------------------------------------------------------------
refuses_without_keys() {
  local out rc=0
  out=$("$P" run --rm --network none "$JAIL_IMAGE" 2>&1) || rc=$?
  [ "$rc" = 64 ] || { echo "  exit $rc, expected 64" >&2; return 1; }
  grep -q "nothing to serve: set AUTHORIZED_KEYS" <<<"$out" || { echo "  said: $out" >&2; return 1; }
  ! grep -q "Server listening" <<<"$out"
}
check "the jail image refuses to start without keys, and says why" refuses_without_keys
refuses_bad_key() {
  local out rc=0
  out=$("$P" run --rm --network none -e AUTHORIZED_KEYS="ssh-ed25519 AAAAnotakey" "$JAIL_IMAGE" 2>&1) || rc=$?
  [ "$rc" = 64 ] && grep -q "AUTHORIZED_KEYS line 1: not a valid ssh-ed25519 key" <<<"$out"
}
check "a malformed AUTHORIZED_KEYS line is refused with its line number" refuses_bad_key

no_baked_keys() {
  local out
  out=$("$P" run --rm --network none --entrypoint /bin/sh "$JAIL_IMAGE" -c 'ls /etc/ssh/ssh_host_* /etc/ssh/keys/* 2>/dev/null; true')
  [ -z "$out" ] || { echo "  in the image: $out" >&2; return 1; }
}
check "the jail image carries no host key (each container makes its own)" no_baked_keys

# ---- 2 -------------------------------------------------------------------------
jail_port=$(free_port)
tunnel_port=$(free_port)
device_port=$(free_port)
ssh-keygen -q -t rsa -b 3072 -N '' -C autossh -f "$work/id_rsa"
ssh-keygen -q -t ed25519 -N '' -f "$work/device_host_key"
ssh-keygen -q -t ed25519 -N '' -C operator -f "$work/operator"
cat >"$work/device_sshd_config" <<CFG
ListenAddress 127.0.0.1:$device_port
HostKey $work/device_host_key
PidFile $work/device.pid
AuthorizedKeysFile $work/operator.pub
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
AllowUsers root
CFG
/usr/sbin/sshd -f "$work/device_sshd_config"
"$P" volume create "jbtest-keys-$$" >/dev/null
run_bg jbtest-jail-$$ -v "jbtest-keys-$$:/etc/ssh/keys" -e SSHD_PORT="$jail_port" -e SSHD_LISTEN_ADDRESS=127.0.0.1 \
  -e TUNNEL_PORT="$tunnel_port" -e AUTHORIZED_KEYS="$(cat "$work/id_rsa.pub")" "$JAIL_IMAGE"
check "the jail container starts" wait_log "jbtest-jail-$$" "Server listening on 127.0.0.1 port $jail_port"
check "the jail prints the command to test it" wait_log "jbtest-jail-$$" "To test: ssh -TN -R $tunnel_port:localhost:22 -p $jail_port tunuser@"
jail_fp=$("$P" exec "jbtest-jail-$$" ssh-keygen -lf /etc/ssh/keys/ssh_host_ed25519_key.pub | cut -d' ' -f2)
printf '[127.0.0.1]:%s %s\n' "$jail_port" "$("$P" exec "jbtest-jail-$$" cut -d' ' -f1,2 /etc/ssh/keys/ssh_host_ed25519_key.pub)" >"$work/known_hosts"
# The image runs as nobody (65534), and the key must be its own and 0600, as
# ssh insists: chown 65534 the file (documented in board/container/README.md).
chown 65534:65534 "$work/id_rsa"
chmod 0600 "$work/id_rsa"
sum_before=$(sha256sum "$work/id_rsa" "$work/known_hosts")
autossh_env=(-e SSH_REMOTE_USER=tunuser -e SSH_REMOTE_HOST=127.0.0.1 -e SSH_REMOTE_PORT="$jail_port"
  -e SSH_TUNNEL_PORT="$tunnel_port" -e SSH_TARGET_HOST=127.0.0.1 -e SSH_TARGET_PORT="$device_port"
  -e SSH_STRICT_HOST_IP_CHECK=false -e AUTOSSH_POLL=30 -e AUTOSSH_GATETIME=30 -e AUTOSSH_PORT=0)
t_start=$(now_ms)
run_bg jbtest-agent-$$ -v "$work/id_rsa:/id_rsa:ro" -v "$work/known_hosts:/known_hosts:ro" "${autossh_env[@]}" "$AGENT_IMAGE"
check "the agent container holds its tunnel (autossh's environment, /id_rsa and /known_hosts mounts)" \
  wait_log "jbtest-agent-$$" "tunnel up jail=127.0.0.1:$jail_port listen=localhost:$tunnel_port target=127.0.0.1:$device_port"
t_up=$(now_ms)
printf '[127.0.0.1]:%s %s\n' "$tunnel_port" "$(cut -d' ' -f1,2 "$work/device_host_key.pub")" >"$work/device_known_hosts"
through() {
  local out
  out=$(timeout 20 ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$work/device_known_hosts" \
    -i "$work/operator" -p "$tunnel_port" root@127.0.0.1 'echo through-the-jail-container') || return 1
  [ "$out" = through-the-jail-container ]
}
check "an ssh through the tunnel reaches the device's sshd" through
check "the agent used /id_rsa as-is (said so)" wait_log "jbtest-agent-$$" "using the mounted key /id_rsa as-is"
check "AUTOSSH_* named in one warning (AUTOSSH_PORT=0 is what jailbird does)" \
  wait_log "jbtest-agent-$$" "ignored (autossh's own.*AUTOSSH_GATETIME, AUTOSSH_POLL$"
mounts_unchanged() { [ "$(sha256sum "$work/id_rsa" "$work/known_hosts")" = "$sum_before" ]; }
check "the mounted key and known_hosts are unchanged" mounts_unchanged
no_identity() { # the state volume (/var/lib/jailbird) stays empty
  local v
  v=$("$P" inspect --format '{{range .Mounts}}{{if eq .Destination "/var/lib/jailbird"}}{{.Source}}{{end}}{{end}}' "jbtest-agent-$$")
  [ -n "$v" ] && [ -d "$v" ] && [ -z "$(ls -A "$v")" ]
}
check "no device identity was made in the container" no_identity

# ---- 3 -------------------------------------------------------------------------
"$P" rm -f -t 5 "jbtest-agent-$$" "jbtest-jail-$$" >/dev/null
run_bg jbtest-jail2-$$ -v "jbtest-keys-$$:/etc/ssh/keys" -e SSHD_PORT="$jail_port" -e SSHD_LISTEN_ADDRESS=127.0.0.1 \
  -e TUNNEL_PORT="$tunnel_port" -e AUTHORIZED_KEYS="$(cat "$work/id_rsa.pub")" "$JAIL_IMAGE"
check "a new jail container on the same volume keeps its host key" wait_log "jbtest-jail2-$$" "host key $jail_fp from /etc/ssh/keys"

# ---- 4 -------------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -f "$work/other"
printf '[127.0.0.1]:%s %s\n' "$jail_port" "$(cut -d' ' -f1,2 "$work/other.pub")" >"$work/known_hosts"
run_bg jbtest-agent2-$$ -v "$work/id_rsa:/id_rsa:ro" -v "$work/known_hosts:/known_hosts:ro" "${autossh_env[@]}" "$AGENT_IMAGE"
refused_host_key() { wait_log "jbtest-agent2-$$" "host key" && ! "$P" logs "jbtest-agent2-$$" 2>&1 | grep -q "tunnel up"; }
check "an agent whose known_hosts does not match the jail gets no tunnel" refused_host_key

# ---- 5 -------------------------------------------------------------------------
if [ "${CONTAINER_MULTI:-1}" = 1 ]; then
  echo "== multi-arch index $MULTI"
  board/container/build-image.sh --all "$MULTI" | tee "$work/multi1"
  # Each image by its digest in the index: its platform recorded, and it runs.
  runs() { # runs PLATFORM DIGEST
    local meta
    # podman 4.3 records no variant in the image: the index holds it (checked
    # against the binary by running it); os/architecture must agree.
    meta=$("$P" image inspect --format '{{.Os}}/{{.Architecture}}' "localhost/${MULTI%%:*}@$2")
    case $1 in "$meta" | "$meta"/*) ;; *) echo "  $2 says $meta, the index says $1" >&2; return 1 ;; esac
    "$P" run --rm --network none --entrypoint /jailbird "localhost/${MULTI%%:*}@$2" info 2>/dev/null | head -n 1 | grep -q '^jailbird '
  }
  while read -r plat digest _; do
    case $plat in
      linux/amd64) binfmt=yes ;;
      linux/arm64) binfmt=$([ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && echo yes || echo no) ;;
      *) binfmt=$([ -e /proc/sys/fs/binfmt_misc/qemu-arm ] && echo yes || echo no) ;;
    esac
    echo "  $plat image: $("$P" image inspect --format '{{.Size}}' "localhost/${MULTI%%:*}@$digest") bytes"
    if [ "$binfmt" = yes ]; then
      check "the $plat image runs (jailbird info; under qemu-user unless amd64)" runs "$plat" "$digest"
    else
      echo "  $plat: no qemu-user binfmt registered here: image built, not run"
    fi
  done <"$work/multi1"
  JAILBIRD_BIN_x86_64=target/board/container-x86_64/jailbird JAILBIRD_BIN_aarch64=target/board/container-aarch64/jailbird \
    JAILBIRD_BIN_armv7=target/board/container-armv7/jailbird JAILBIRD_BIN_armv6=target/board/container-armv6/jailbird \
    board/container/build-image.sh --all "$MULTI-again" >"$work/multi2"
  same() { diff <(awk '{print $1, $2}' "$work/multi1") <(awk '{print $1, $2}' "$work/multi2"); }
  check "building the index again gives the same digests" same
fi

# ---- 6 -------------------------------------------------------------------------
# The compose stack (board/compose/compose.yaml) with podman-compose. Debian's
# podman 4.3 has no health conditions (podman-compose ignores them and cannot
# order after a one-shot), so the services are started in the order the
# conditions give: db, then init to completion, then jail and api.
if [ "${CONTAINER_COMPOSE:-1}" = 1 ]; then
  echo "== compose stack"
  command -v podman-compose >/dev/null || die "podman-compose is missing (pip install podman-compose)"
  "$P" image exists localhost/jailbird-postgres:test || board/jail-image/build.sh --postgres jailbird-postgres:test
  cdir="$work/compose"
  mkdir -p "$cdir"
  cp board/compose/compose.yaml board/compose/secrets.sh "$cdir/"
  sh "$cdir/secrets.sh" >/dev/null
  c_jail=$(free_port) c_api=$(free_port)
  export COMPOSE_PROJECT_NAME="jbtest$$" POSTGRES_IMAGE=localhost/jailbird-postgres:test JAIL_IMAGE="$JAIL_IMAGE" \
    JAIL_SSH_PUBLISH="127.0.0.1:$c_jail" API_PUBLISH="127.0.0.1:$c_api" JAIL_PUBLIC_ADDRESS="127.0.0.1:$c_jail" \
    POOL_PORTS=30000-30099
  pc() { (cd "$cdir" && podman-compose --podman-path "$P" -p "$COMPOSE_PROJECT_NAME" "$@") 2>&1 | grep -v 'level=error\|syslog' || true; }
  compose_down() { pc down -v -t 2 >/dev/null; }
  trap 'compose_down; cleanup' EXIT
  t0=$(now_ms)
  pc up -d db >/dev/null
  db_ready() {
    local t=$((SECONDS + DEADLINE_SECONDS))
    until "$P" exec "${COMPOSE_PROJECT_NAME}_db_1" pg_isready -q -h 127.0.0.1; do
      [ $SECONDS -lt $t ] || return 1
      sleep 0.2
    done
  }
  check "compose: the database answers" db_ready
  pc run --rm init >"$work/init.log"
  check "compose: init readied the registry" grep -q "registry ready for jail" "$work/init.log"
  pc up -d --no-deps jail api >/dev/null
  check "compose: the jail's sshd listens" wait_log "${COMPOSE_PROJECT_NAME}_jail_1" "Server listening on 0.0.0.0 port 22"
  "$P" cp "${COMPOSE_PROJECT_NAME}_api_1:/tls/cert.pem" "$work/api.pem"
  api_up() {
    local t=$((SECONDS + DEADLINE_SECONDS))
    until curl -fsS --cacert "$work/api.pem" "https://localhost:$c_api/healthz" >/dev/null 2>&1; do
      [ $SECONDS -lt $t ] || return 1
      sleep 0.2
    done
  }
  check "compose: the API answers over TLS" api_up
  t_stack=$(now_ms)
  # The factory's step: an enrol-scope token, one POST.
  token=$("$P" exec -u warden "${COMPOSE_PROJECT_NAME}_api_1" /usr/local/bin/warden token create factory --scope enrol | head -n 1)
  "$root/target/release/jailbird" key --state "$work/device-identity" >"$work/device.pub" 2>/dev/null ||
    cargo run -q --release -p jailbird -- key --state "$work/device-identity" >"$work/device.pub"
  enrol() {
    curl -fsS --cacert "$work/api.pem" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d "{\"id\":\"box-1\",\"key\":\"$(cat "$work/device.pub")\",\"target\":\"127.0.0.1:$device_port\"}" \
      "https://localhost:$c_api/api/v1/devices" >"$work/enrolled.json"
  }
  check "compose: a device enrolled through the API" enrol
  dport=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$work/enrolled.json")
  jail_key=$("$P" exec "${COMPOSE_PROJECT_NAME}_jail_1" cut -d' ' -f1,2 /etc/ssh/keys/ssh_host_ed25519_key.pub)
  "$root/target/release/jailbird" run --state "$work/device-identity" --host-key "$jail_key" -p "$c_jail" \
    -R "$dport:127.0.0.1:$device_port" tunuser@127.0.0.1 2>"$work/device-agent.log" &
  echo $! >"$work/device-agent.pid"
  agent_up() {
    local t=$((SECONDS + DEADLINE_SECONDS))
    until grep -qs "tunnel up" "$work/device-agent.log"; do [ $SECONDS -lt $t ] || { cat "$work/device-agent.log" >&2; return 1; }; sleep 0.2; done
  }
  check "compose: the device holds its tunnel through the jail container (jail role, PostgreSQL)" agent_up
  seen_online() { # warden watch, on the jail role, marks it online
    local t=$((SECONDS + DEADLINE_SECONDS)) online
    while [ $SECONDS -lt $t ]; do
      online=$(curl -fsS --cacert "$work/api.pem" -H "Authorization: Bearer $token" "https://localhost:$c_api/api/v1/devices/box-1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("online") or "")')
      [ -n "$online" ] && return 0
      sleep 0.5
    done
    "$P" logs "${COMPOSE_PROJECT_NAME}_jail_1" 2>&1 | tail -n 15 | sed 's/^/    /' >&2
    return 1
  }
  check "compose: the API shows the device online (watch beside sshd)" seen_online
  kill "$(cat "$work/device-agent.pid")" 2>/dev/null || true
  jail_role_is_narrow() { # the jail's login cannot write devices (and can log in: it reads them)
    local out
    # shellcheck disable=SC2016 # expanded in the container
    out=$("$P" exec "${COMPOSE_PROJECT_NAME}_jail_1" sh -c \
      'export PGPASSFILE=/var/lib/warden/.pgpass; u=${WARDEN_DB#postgres://}; u=${u%%@*}; psql -h db -U "$u" -d warden -Atc "SELECT count(*) FROM devices"; psql -h db -U "$u" -d warden -c "DELETE FROM devices" 2>&1')
    if grep -qx 1 <<<"$out" && grep -q "permission denied for table devices" <<<"$out"; then return 0; fi
    echo "  $out" >&2
    return 1
  }
  check "compose: the jail's database role cannot delete devices" jail_role_is_narrow
  compose_secs=$(((t_stack - t0) / 1000))
fi

echo "== figures ($(date -u +%F), $(uname -m), $(podman --version))"
echo "  agent image (amd64):   $("$P" image inspect --format '{{.Size}}' "$AGENT_IMAGE") bytes"
echo "  jail image:            $("$P" image inspect --format '{{.Size}}' "$JAIL_IMAGE") bytes (built in ${jail_build} s)"
echo "  agent container start to tunnel up: $((t_up - t_start)) ms"
[ -z "${compose_secs:-}" ] || echo "  compose stack, start to API answering: ${compose_secs} s"
echo "containers: $passed passed, $failed failed"
[ "$failed" = 0 ]
