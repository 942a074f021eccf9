#!/bin/bash
# The jail image's entrypoint (under tini, PID 1). Two modes:
# - single jail (seed 000's container): AUTHORIZED_KEYS (or AUTHORIZED_KEYS_FILE)
#   holds one or several public keys or `jailbird authorize` lines; account
#   tunuser may hold one reverse forward on TUNNEL_PORT (default 2022) and do
#   nothing else. Refuses to start without a key.
# - fleet jail: WARDEN_DB (and WARDEN_DB_PASSWORD_FILE for PostgreSQL) and
#   JAIL (this jail's name in the registry): warden's sshd drop-in, and
#   `warden watch` beside sshd; each restarted if it dies, both stopped together.
# Host keys live in /etc/ssh/keys (a volume): made once, never over an existing one.
# For the compose file (board/compose/), two more first arguments:
# - `init`: with an admin login, readies the registry for this jail: schema,
#   the jail role and its GRANTs (warden db-grants), pool, the jail's host key
#   (into the shared key volume) and its row, the API's TLS certificate. Again
#   at will: each step looks first.
# - `serve ARGS...`: `warden serve ARGS...` as the warden account.
set -euo pipefail
KEYS=/etc/ssh/keys
CONF=/etc/ssh/sshd_config.d/00-jail.conf
JAILDIR=/etc/ssh/jail
SSHD_PORT="${SSHD_PORT:-22}"
# SSHD_LISTEN_ADDRESS: one address sshd listens on (default: every one).
RESTART_SECONDS=2   # between a child's death and its restart
MAX_KEYS=64         # AUTHORIZED_KEYS lines taken at most

die() { echo "jail: $*" >&2; exit 64; }
say() { echo "jail: $*"; }

case $SSHD_PORT in '' | *[!0-9]*) die "SSHD_PORT=$SSHD_PORT: expected a port number" ;; esac
port_ok() { [ ${#1} -le 5 ] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
port_ok "$SSHD_PORT" || die "SSHD_PORT=$SSHD_PORT: expected 1-65535"
case ${SSHD_LISTEN_ADDRESS:-} in *[!0-9A-Fa-f.:]*) die "SSHD_LISTEN_ADDRESS=$SSHD_LISTEN_ADDRESS: expected an IPv4 or IPv6 address" ;; esac

# pgpass USER-HOME-FILE: libpq's password file from WARDEN_DB_PASSWORD_FILE.
pgpass() {
  [ -n "${WARDEN_DB_PASSWORD_FILE:-}" ] || return 0
  [ -r "$WARDEN_DB_PASSWORD_FILE" ] || die "WARDEN_DB_PASSWORD_FILE=$WARDEN_DB_PASSWORD_FILE: cannot read it"
  printf '*:*:*:*:%s\n' "$(head -n 1 "$WARDEN_DB_PASSWORD_FILE" | sed 's/[\\:]/\\&/g')" >"$1"
  chmod 0600 "$1"
}
name_ok() { case $1 in '' | -* | *[!A-Za-z0-9._-]*) return 1 ;; esac; }

if [ "${1:-}" = serve ]; then
  shift
  [ -n "${WARDEN_DB:-}" ] || die "serve: set WARDEN_DB"
  pgpass /var/lib/warden/.pgpass
  [ ! -e /var/lib/warden/.pgpass ] || chown warden:warden /var/lib/warden/.pgpass
  exec runuser -u warden -- /usr/local/bin/warden serve "$@"
fi

if [ "${1:-}" = init ]; then
  : "${WARDEN_DB:?init: set WARDEN_DB (an admin login)}"
  jail="${JAIL:-}" pool="${POOL:-fleet}" ports="${POOL_PORTS:-10000-10999}" address="${JAIL_ADDRESS:-}"
  role="${JAIL_ROLE:-warden_jail}"
  name_ok "$jail" || die "init: JAIL=$jail: the jail's name (A-Z a-z 0-9 . _ -)"
  name_ok "$pool" || die "init: POOL=$pool: a pool name (A-Z a-z 0-9 . _ -)"
  case $role in '' | *[!a-z0-9_]*) die "init: JAIL_ROLE=$role: a PostgreSQL role name (a-z 0-9 _)" ;; esac
  [ -n "$address" ] || die "init: JAIL_ADDRESS: HOST:PORT devices dial to reach this jail"
  export PGPASSFILE=/run/init.pgpass
  pgpass "$PGPASSFILE"
  export WARDEN_DB
  for n in $(seq 1 60); do
    /usr/local/bin/warden pool ls >/dev/null 2>/tmp/init.err && break
    [ "$n" = 60 ] && { cat /tmp/init.err >&2; die "init: the registry did not answer in 60 tries"; }
    sleep 1
  done
  /usr/local/bin/warden pool ls | awk 'NR > 1 { print $1 }' | grep -qx "$pool" ||
    /usr/local/bin/warden pool add "$pool" --ports "$ports"
  install -d -m 0755 "$KEYS"
  if [ ! -e "$KEYS/ssh_host_ed25519_key" ]; then
    ssh-keygen -q -t ed25519 -N '' -C "jail@$jail" -f "$KEYS/ssh_host_ed25519_key"
    say "init: made jail $jail's host key $(ssh-keygen -lf "$KEYS/ssh_host_ed25519_key.pub" | cut -d' ' -f2)"
  fi
  /usr/local/bin/warden jail ls | awk 'NR > 1 { print $1 }' | grep -qx "$jail" ||
    /usr/local/bin/warden jail add "$jail" --pool "$pool" --address "$address" \
      --host-key "$(cut -d' ' -f1,2 "$KEYS/ssh_host_ed25519_key.pub")"
  if [ -n "${JAIL_DB_PASSWORD_FILE:-}" ]; then
    # libpq from the URL: postgres://USER@HOST[:PORT]/DB[?...]
    u=${WARDEN_DB#postgres://}; u=${u%%\?*}
    dbuser=${u%%@*} hostport=${u#*@}; hostport=${hostport%%/*} dbname=${u#*/}
    psql_() { psql -v ON_ERROR_STOP=1 -q -h "${hostport%%:*}" -p "$( [ "${hostport#*:}" != "$hostport" ] && echo "${hostport#*:}" || echo 5432)" -U "$dbuser" -d "$dbname" "$@"; }
    psql_ -v role="$role" -v pw="$(head -n 1 "$JAIL_DB_PASSWORD_FILE")" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'pw') \gexec
SQL
    /usr/local/bin/warden db-grants --role "$role" --for jail | psql_
    say "init: role $role holds the jail's GRANTs only"
  fi
  if [ -n "${API_TLS_DIR:-}" ] && [ ! -e "$API_TLS_DIR/cert.pem" ]; then
    cn="${API_NAME:-localhost}"
    name_ok "$cn" || die "init: API_NAME=$cn: a host name"
    openssl req -x509 -newkey ed25519 -nodes -days 825 -subj "/CN=$cn" \
      -addext "subjectAltName=DNS:$cn,DNS:localhost,IP:127.0.0.1" \
      -keyout "$API_TLS_DIR/key.pem" -out "$API_TLS_DIR/cert.pem" 2>/dev/null
    chown warden:warden "$API_TLS_DIR/key.pem"
    chmod 0600 "$API_TLS_DIR/key.pem"
    say "init: made the API's certificate for $cn in $API_TLS_DIR (replace it with your own)"
  fi
  say "init: registry ready for jail $jail (pool $pool)"
  exit 0
fi

if [ -z "${WARDEN_DB:-}${AUTHORIZED_KEYS:-}${AUTHORIZED_KEYS_FILE:-}" ]; then
  die "nothing to serve: set AUTHORIZED_KEYS (one or more public keys: a single jail for them) or WARDEN_DB and JAIL (a fleet jail of that registry). Refusing to start an sshd that admits no one."
fi

# ---- host keys: made once into the volume ------------------------------------
install -d -m 0755 "$KEYS" /run/sshd
if [ ! -e "$KEYS/ssh_host_ed25519_key" ]; then
  ssh-keygen -q -t ed25519 -N '' -C "jail@$(hostname)" -f "$KEYS/ssh_host_ed25519_key.new"
  # No overwrite: a key another start made meanwhile wins.
  ln "$KEYS/ssh_host_ed25519_key.new" "$KEYS/ssh_host_ed25519_key" 2>/dev/null || true
  ln "$KEYS/ssh_host_ed25519_key.new.pub" "$KEYS/ssh_host_ed25519_key.pub" 2>/dev/null || true
  rm -f "$KEYS/ssh_host_ed25519_key.new" "$KEYS/ssh_host_ed25519_key.new.pub"
  say "made host key $(ssh-keygen -lf "$KEYS/ssh_host_ed25519_key.pub" | cut -d' ' -f2) in $KEYS (a volume: keep it)"
else
  say "host key $(ssh-keygen -lf "$KEYS/ssh_host_ed25519_key.pub" | cut -d' ' -f2) from $KEYS"
fi
hostkey_pub=$(cut -d' ' -f1,2 "$KEYS/ssh_host_ed25519_key.pub")

common() {
  cat <<CFG
# Written by the jail image's entrypoint at each start.
Port $SSHD_PORT
${SSHD_LISTEN_ADDRESS:+ListenAddress $SSHD_LISTEN_ADDRESS}
HostKey $KEYS/ssh_host_ed25519_key
PidFile /run/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
PermitUserRC no
PrintMotd no
CFG
}

# ---- single jail -------------------------------------------------------------
single() {
  local keys port listen n=0 line word prev="" out
  keys="${AUTHORIZED_KEYS:-}"
  if [ -n "${AUTHORIZED_KEYS_FILE:-}" ]; then
    [ -r "$AUTHORIZED_KEYS_FILE" ] || die "AUTHORIZED_KEYS_FILE=$AUTHORIZED_KEYS_FILE: cannot read it"
    keys="$keys"$'\n'"$(head -c 65536 "$AUTHORIZED_KEYS_FILE")"
  fi
  port="${TUNNEL_PORT:-2022}"
  case $port in '' | *[!0-9]*) die "TUNNEL_PORT=$port: expected a port number" ;; esac
  port_ok "$port" || die "TUNNEL_PORT=$port: expected 1-65535"
  # TUNNEL_LISTEN=all publishes the tunnel port on the container's interfaces
  # (for `-p HOSTPORT:$port`): anyone reaching that port reaches the device.
  case "${TUNNEL_LISTEN:-localhost}" in
    localhost) listen=localhost ;;
    all) listen='*' ;;
    *) die "TUNNEL_LISTEN=${TUNNEL_LISTEN}: expected localhost or all" ;;
  esac
  install -d -m 0755 "$JAILDIR"
  out="$JAILDIR/authorized_keys.new"
  : >"$out"
  while IFS= read -r line; do
    line="${line%$'\r'}"
    case $line in '' | '#'*) continue ;; esac
    # The key is the word after its type; options on the line (a `jailbird
    # authorize` line's) are dropped: this image writes its own.
    local type="" b64=""
    prev=""
    for word in $line; do
      case $prev in
        ssh-ed25519 | ssh-rsa | ecdsa-sha2-nistp256 | ecdsa-sha2-nistp384 | ecdsa-sha2-nistp521 | \
          sk-ssh-ed25519@openssh.com | sk-ecdsa-sha2-nistp256@openssh.com)
          type=$prev b64=$word
          break ;;
      esac
      prev=${word##*,}
    done
    [ -n "$type" ] || die "AUTHORIZED_KEYS line $((n + 1)): no public key in it (want 'ssh-ed25519 AAAA...' or a jailbird authorize line)"
    case $b64 in *[!A-Za-z0-9+/=]*) die "AUTHORIZED_KEYS line $((n + 1)): $type key is not base64" ;; esac
    ssh-keygen -l -f /dev/stdin <<<"$type $b64" >/dev/null 2>&1 ||
      die "AUTHORIZED_KEYS line $((n + 1)): not a valid $type key"
    n=$((n + 1))
    [ "$n" -le "$MAX_KEYS" ] || die "AUTHORIZED_KEYS: more than $MAX_KEYS keys"
    printf 'restrict,port-forwarding,permitlisten="%s:%s",permitopen="255.255.255.255:9",command="/bin/false" %s %s tunnel-%s\n' \
      "$listen" "$port" "$type" "$b64" "$n" >>"$out"
  done <<<"$keys"
  [ "$n" -gt 0 ] || die "no keys: set AUTHORIZED_KEYS to one or more public keys (or AUTHORIZED_KEYS_FILE to a file of them); without one this jail would be of no use, and it does not start"
  chmod 0644 "$out"
  mv -f "$out" "$JAILDIR/authorized_keys"
  {
    common
    echo "AllowUsers tunuser"
    echo "AuthorizedKeysFile $JAILDIR/authorized_keys"
    echo "AllowTcpForwarding remote"
    echo "AllowStreamLocalForwarding no"
    echo "PermitTTY no"
    echo "ForceCommand /bin/false"
    if [ "$listen" = localhost ]; then echo "GatewayPorts no"; else echo "GatewayPorts yes"; fi
  } >"$CONF"
  /usr/sbin/sshd -t || die "sshd refused the configuration above"
  say "$n key(s) may hold port $port ($([ "$listen" = localhost ] && echo "on the container's loopback" || echo "published on every interface: TUNNEL_LISTEN=all"))"
  say "running. To test: ssh -TN -R $port:localhost:22 -p $SSHD_PORT tunuser@$(hostname -i 2>/dev/null | cut -d' ' -f1)"
  say "or: jailbird run -R $port:127.0.0.1:22 -p $SSHD_PORT --host-key \"$hostkey_pub\" tunuser@$(hostname -i 2>/dev/null | cut -d' ' -f1)"
  exec /usr/sbin/sshd -D -e
}

# ---- fleet jail --------------------------------------------------------------
fleet() {
  local jail="${JAIL:-}"
  case $jail in '' | -* | *[!A-Za-z0-9._-]*) die "JAIL=$jail: this jail's name in the registry (A-Z a-z 0-9 . _ -)" ;; esac
  # libpq's password file, in the home of the account sshd runs lookups as.
  pgpass /var/lib/warden/.pgpass
  [ ! -e /var/lib/warden/.pgpass ] || chown warden:warden /var/lib/warden/.pgpass
  printf 'WARDEN_DB=%s\n' "$WARDEN_DB" >/etc/warden/warden.env
  export WARDEN_DB
  # The drop-in from the registry (checked by warden as it renders).
  local n
  for n in $(seq 1 30); do
    if runuser -u warden -- /usr/local/bin/warden sshd-config --jail "$jail" --binary /usr/local/bin/warden >"$CONF.warden" 2>/tmp/sshd-config.err; then
      break
    fi
    [ "$n" = 30 ] && { cat /tmp/sshd-config.err >&2; die "warden sshd-config --jail $jail failed 30 times"; }
    say "waiting for the registry: $(head -n 1 /tmp/sshd-config.err)"
    sleep 1
  done
  { common; cat "$CONF.warden"; } >"$CONF"
  rm -f "$CONF.warden"
  /usr/sbin/sshd -t || die "sshd refused warden's drop-in"
  say "jail $jail: host key $hostkey_pub"
  local sshd_pid="" watch_pid="" stopping=0 pid
  start_sshd() { /usr/sbin/sshd -D -e & sshd_pid=$!; }
  # As its systemd unit runs it: the warden account with exactly the
  # capabilities watch needs, ambient (the container must grant SYS_PTRACE
  # and DAC_READ_SEARCH: compose.yaml's cap_add).
  start_watch() {
    setpriv --reuid warden --regid warden --init-groups --inh-caps -all,+sys_ptrace,+dac_read_search,+kill \
      --ambient-caps -all,+sys_ptrace,+dac_read_search,+kill --bounding-set -all,+sys_ptrace,+dac_read_search,+kill \
      env HOME=/var/lib/warden USER=warden LOGNAME=warden /usr/local/bin/warden watch --jail "$jail" --sshd-pid-file /run/sshd.pid &
    watch_pid=$!
  }
  stop() {
    stopping=1
    kill -TERM "$sshd_pid" "$watch_pid" 2>/dev/null || true
  }
  trap stop TERM INT
  start_sshd
  start_watch
  while :; do
    pid=""
    wait -n -p pid "$sshd_pid" "$watch_pid" || true
    [ "$stopping" = 1 ] && break
    [ -n "$pid" ] || continue
    sleep "$RESTART_SECONDS"
    [ "$stopping" = 1 ] && break
    if [ "$pid" = "$sshd_pid" ]; then say "sshd ended: restarting it"; start_sshd; fi
    if [ "$pid" = "$watch_pid" ]; then say "warden watch ended: restarting it"; start_watch; fi
  done
  wait || true
  say "stopped"
}

if [ -n "${WARDEN_DB:-}" ]; then
  fleet
else
  single
fi
