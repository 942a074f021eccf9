#!/usr/bin/env bash
# Builds jailbird and holds a tunnel.
#
#   scripts/run.sh                      local demo: a loopback OpenSSH jail locked down as
#                                       in the README, a stand-in "device sshd", jailbird
#                                       holding -R through the jail, and a real `ssh`
#                                       through the tunnel. Ctrl-C stops it.
#   scripts/run.sh [jailbird run args]  your own jail, e.g.
#                                       scripts/run.sh --known-hosts kh -R 2022:127.0.0.1:22 tunuser@jail:8022
#
# JAILBIRD_DEMO_HOLD=0 ends the demo once the ssh through the tunnel has worked (CI uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then scripts/test-setup.sh; else sudo scripts/test-setup.sh; fi
cargo build --release --quiet
bin="$PWD/target/release/jailbird"
if [ "$#" -gt 0 ]; then
  exec "$bin" run "$@"
fi

demo=$(mktemp -d /tmp/jailbird-demo.XXXXXX)
chmod 0755 "$demo"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$demo"
}
trap cleanup EXIT
trap 'exit 0' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if [ "$(id -u)" = 0 ]; then jail_user="${JAILBIRD_TEST_JAIL_USER:-jbtunnel}"; device_user=root; else jail_user=$(id -un); device_user=$(id -un); fi
jail_port=$(free_port); listen=$(free_port); device_port=$(free_port)

echo "== 1. the device identity (created on first use, mode 0600)"
"$bin" key --state "$demo/identity"
echo "== 2. its authorized_keys line for the jail: forward to port $listen, nothing else"
"$bin" authorize --state "$demo/identity" --listen "$listen" | tee "$demo/authorized_keys"

echo "== 3. a jail sshd on 127.0.0.1:$jail_port (key-only, PermitListen $listen, ForceCommand /bin/false, PermitTTY no)"
ssh-keygen -q -t ed25519 -N '' -f "$demo/jail_host_key"
cat > "$demo/jail_sshd_config" <<CFG
ListenAddress 127.0.0.1:$jail_port
HostKey $demo/jail_host_key
PidFile none
AuthorizedKeysFile $demo/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $jail_user
AllowTcpForwarding remote
GatewayPorts no
PermitListen $listen
PermitOpen none
X11Forwarding no
AllowAgentForwarding no
PermitTTY no
ForceCommand /bin/false
ClientAliveInterval 15
ClientAliveCountMax 3
CFG
/usr/sbin/sshd -D -e -f "$demo/jail_sshd_config" 2>"$demo/jail.log" &
pids+=($!)
echo "[127.0.0.1]:$jail_port $(cat "$demo/jail_host_key.pub")" > "$demo/known_hosts"

echo "== 4. a stand-in for the device's own sshd on 127.0.0.1:$device_port"
ssh-keygen -q -t ed25519 -N '' -f "$demo/device_host_key"
ssh-keygen -q -t ed25519 -N '' -C operator -f "$demo/operator"
cp "$demo/operator.pub" "$demo/device_authorized_keys"
cat > "$demo/device_sshd_config" <<CFG
ListenAddress 127.0.0.1:$device_port
HostKey $demo/device_host_key
PidFile none
AuthorizedKeysFile $demo/device_authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
AllowUsers $device_user
CFG
/usr/sbin/sshd -D -e -f "$demo/device_sshd_config" 2>"$demo/device.log" &
pids+=($!)

echo "== 5. jailbird run -R $listen:127.0.0.1:$device_port $jail_user@127.0.0.1:$jail_port"
"$bin" run --state "$demo/identity" --known-hosts "$demo/known_hosts" \
  -R "$listen:127.0.0.1:$device_port" "$jail_user@127.0.0.1:$jail_port" 2> >(tee "$demo/agent.log" >&2) &
pids+=($!)
for _ in $(seq 1 300); do grep -q "tunnel up" "$demo/agent.log" 2>/dev/null && break; sleep 0.1; done
grep -q "tunnel up" "$demo/agent.log" || { echo "the tunnel did not come up; jail log:"; cat "$demo/jail.log"; exit 1; }

echo "== 6. the operator, on the jail host, reaches the device through the tunnel"
ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
  -i "$demo/operator" -p "$listen" "$device_user@127.0.0.1" 'echo "hello from $(hostname) through the jail"'

if [ "${JAILBIRD_DEMO_HOLD:-1}" = 0 ]; then exit 0; fi
echo "== holding the tunnel; try: ssh -i $demo/operator -p $listen $device_user@127.0.0.1   (Ctrl-C stops)"
wait "${pids[2]}"
