#!/usr/bin/env bash
# The fleet demo: a warden registry (SQLite), two stock OpenSSH jails made
# from `warden sshd-config`, three jailbird devices running from the files
# `warden device-config` wrote, `warden ls` showing them online, an ssh to one
# device by its port, then jail-a killed and the devices back on jail-b at the
# same ports. Everything on loopback. Run as root (or with sudo).
#
# JAILBIRD_DEMO_HOLD=0 ends the demo at the end instead of holding (CI uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then exec sudo -E "$0" "$@"; fi
scripts/test-setup.sh
# Two builds, not one: built together, cargo would unify the two crates'
# dependency features and the agent would not be the byte-identical binary a
# device runs.
cargo build --release --quiet -p jailbird
cargo build --release --quiet -p warden
jailbird="$PWD/target/release/jailbird"

demo=$(mktemp -d /tmp/warden-demo.XXXXXX)
chmod 0755 "$demo"
# sshd runs `warden authorized-keys` only from a root-owned path no one else
# can write (not /tmp): install the binary as a jail host would.
bindir="/run/warden-demo.$$"
install -d -m 0755 "$bindir"
install -m 0755 target/release/warden "$bindir/warden"
warden="$bindir/warden"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$demo" "$bindir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for FILE TEXT [COUNT]: until FILE holds TEXT COUNT times (30 s deadline)
  for _ in $(seq 1 300); do
    [ "$(grep -c "$2" "$1" 2>/dev/null || true)" -ge "${3:-1}" ] && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:"; cat "$1"; exit 1
}
tunuser="${JAILBIRD_TEST_JAIL_USER:-jbtunnel}"

echo "== 1. the registry: one SQLite file in a directory owned by the command user"
install -d -o warden -g warden -m 0750 "$demo/registry"
export WARDEN_DB="sqlite://$demo/registry/registry.db"
lo=$((21000 + $$ % 400 * 10))
"$warden" pool add demo --ports "$lo-$((lo + 9))"

echo "== 2. two jails: a plain sshd_config (ListenAddress, HostKey) + warden's drop-in"
declare -A jail_port jail_pid
for j in jail-a jail-b; do
  port=$(free_port)
  jail_port[$j]=$port
  mkdir -p "$demo/$j"
  ssh-keygen -q -t ed25519 -N '' -f "$demo/$j/host_key"
  "$warden" jail add "$j" --address "127.0.0.1:$port" --host-key "$(cat "$demo/$j/host_key.pub")" --pool demo --user "$tunuser" --operator-user jbop --claim-user jbclaim
  "$warden" sshd-config --jail "$j" --operator-user jbop > "$demo/$j/warden.conf"
  printf 'Include %s\nListenAddress 127.0.0.1:%s\nHostKey %s\nPidFile %s\nUsePAM no\n' \
    "$demo/$j/warden.conf" "$port" "$demo/$j/host_key" "$demo/$j/sshd.pid" > "$demo/$j/sshd_config"
  /usr/sbin/sshd -D -e -f "$demo/$j/sshd_config" 2>"$demo/$j/sshd.log" &
  jail_pid[$j]=$!
  pids+=($!)
  wait_for "$demo/$j/sshd.log" "Server listening"
done
"$warden" jail ls

echo "== 3. the operator CA, and a stand-in for the devices' own sshd (trusting it for the devices' ids)"
"$warden" ca init --ca "$demo/operator_ca"
device_port=$(free_port)
ssh-keygen -q -t ed25519 -N '' -f "$demo/device_host_key"
ssh-keygen -q -t ed25519 -N '' -C operator -f "$demo/operator"
cat > "$demo/device_sshd_config" <<CFG
ListenAddress 127.0.0.1:$device_port
HostKey $demo/device_host_key
PidFile none
AuthorizedKeysFile $demo/operator.pub
TrustedUserCAKeys $demo/operator_ca.pub
AuthorizedPrincipalsFile $demo/principals
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
AllowUsers root
CFG
/usr/sbin/sshd -D -e -f "$demo/device_sshd_config" 2>"$demo/device.log" &
pids+=($!)
wait_for "$demo/device.log" "Server listening"

echo "== 4. three devices: each makes its key, the factory enrols it through the API (POST /api/v1/devices) and writes its config"
devices=(234DNJE4 7QK2M9PX X9R4T1LB)
macs=(92:be:bf:83:6e:b3 92-BE-BF-83-6E-B4 92bebf836eb5)
# The factory holds an enrol-scope API token, not a database login: warden
# serve (plain HTTP on loopback here; TLS with --tls-cert/--tls-key elsewhere).
api_port=$(free_port)
"$warden" serve --listen "127.0.0.1:$api_port" 2>"$demo/serve.log" &
pids+=($!)
wait_for "$demo/serve.log" "serving the API on"
factory_token=$("$warden" token create factory --scope enrol | head -n 1)
for i in 0 1 2; do
  d=${devices[$i]}
  mkdir -p "$demo/$d"
  key=$("$jailbird" key --state "$demo/$d/identity")
  curl -fsS -H "Authorization: Bearer $factory_token" -H 'Content-Type: application/json' \
    -d "{\"id\":\"$d\",\"key\":\"$key\",\"mac\":\"${macs[$i]}\",\"target\":\"127.0.0.1:$device_port\",\"labels\":{\"site\":\"demo\"}}" \
    "http://127.0.0.1:$api_port/api/v1/devices" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("enrolled through the API:", d["id"], "port", d["port"])'
  "$warden" device-config "$d" --out "$demo/$d" --known-hosts-path "$demo/$d/known_hosts" --operator-ca "$demo/operator_ca"
  # One stand-in sshd plays all three devices: it takes each one's principal.
  cat "$demo/$d/warden_principals" >> "$demo/principals"
done
echo "-- $demo/234DNJE4/jailbird.env:"
grep -v '^#' "$demo/234DNJE4/jailbird.env"

echo "== 5. each device runs jailbird from exactly those two files"
for d in "${devices[@]}"; do
  # shellcheck source=/dev/null
  (set -a; . "$demo/$d/jailbird.env"; set +a
   exec env JAILBIRD_STATE="$demo/$d/identity" "$jailbird" run) 2>"$demo/$d/agent.log" &
  pids+=($!)
done
for d in "${devices[@]}"; do wait_for "$demo/$d/agent.log" "tunnel up"; done
for j in jail-a jail-b; do "$warden" watch --jail "$j" --ticks 1 --sshd-pid-file "$demo/$j/sshd.pid"; done
"$warden" ls

echo "== 6. the operator reaches 234DNJE4 through its port on the jail"
port=$("$warden" show 234DNJE4 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
  -i "$demo/operator" -p "$port" root@127.0.0.1 'echo "hello from 234DNJE4 (port '"$port"') through the jail"'

echo "== 6b. operator alice: warden connect by id (a 15-minute grant, a certificate for 234DNJE4 only, ssh through the jail holding it)"
ssh-keygen -q -t ed25519 -N '' -C alice -f "$demo/alice"
"$warden" operator add alice --key "$(cat "$demo/alice.pub")"
export WARDEN_IDENTITY="$demo/alice" WARDEN_OPERATOR_CA="$demo/operator_ca" WARDEN_CERT_DIR="$demo/certs"
"$warden" connect --mac 92:be:bf:83:6e:b3 --for 15m --reason "fleet demo" --print
"$warden" connect 234DNJE4 --for 15m --reason "fleet demo" -- \
  -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
  -l root 'echo "hello from 234DNJE4, reached by alice with her certificate (no key of hers on the device)"'
"$warden" audit --operator alice

echo "== 7. jail-a dies: the devices come back on jail-b, same ports, no re-enrolment"
# The listener and every session process under it (they are not in its process group).
tree() { echo "$1"; for c in $(pgrep -P "$1" || true); do tree "$c"; done; }
# shellcheck disable=SC2046
kill -9 $(tree "${jail_pid[jail-a]}")
for d in "${devices[@]}"; do wait_for "$demo/$d/agent.log" "tunnel up jail=127.0.0.1:${jail_port[jail-b]}"; done
for j in jail-a jail-b; do "$warden" watch --jail "$j" --ticks 1 --sshd-pid-file "$demo/$j/sshd.pid" 2>/dev/null || true; done
"$warden" ls
ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
  -i "$demo/operator" -p "$port" root@127.0.0.1 'echo "hello again from 234DNJE4 (port '"$port"'), now through jail-b"'

if [ "${JAILBIRD_DEMO_HOLD:-1}" = 0 ]; then exit 0; fi
echo "== holding; try: WARDEN_DB=$WARDEN_DB $warden ls   (Ctrl-C stops)"
wait
