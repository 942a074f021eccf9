#!/bin/bash
# A stand-in for the official postgres image's entrypoint, for machines that
# reach Debian's mirror but no image registry (board/jail-image/build.sh
# --postgres): the same variables (POSTGRES_USER, POSTGRES_PASSWORD_FILE or
# POSTGRES_PASSWORD, POSTGRES_DB, PGDATA), initdb on an empty data directory,
# scram-sha-256 for every network login, listening on every address.
set -euo pipefail
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
bins=(/usr/lib/postgresql/*/bin)
bin="${bins[-1]}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
case $user$db in *[!A-Za-z0-9_]*) echo "postgres: POSTGRES_USER/POSTGRES_DB: letters, digits and _ only" >&2; exit 64 ;; esac
pw="${POSTGRES_PASSWORD:-}"
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then pw=$(head -n 1 "$POSTGRES_PASSWORD_FILE"); fi
[ -n "$pw" ] || { echo "postgres: set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD)" >&2; exit 64; }
install -d -o postgres -g postgres -m 0700 "$PGDATA" /run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\n' "$pw" >/run/postgresql/.pw
  chown postgres /run/postgresql/.pw
  runuser -u postgres -- "$bin/initdb" -D "$PGDATA" --username="$user" --pwfile=/run/postgresql/.pw \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  rm -f /run/postgresql/.pw
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    runuser -u postgres -- "$bin/postgres" --single -D "$PGDATA" postgres <<<"CREATE DATABASE $db OWNER $user;" >/dev/null
  fi
  echo "postgres: initialised $PGDATA (user $user, database $db)"
fi
exec runuser -u postgres -- "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/run/postgresql
