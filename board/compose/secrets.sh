#!/bin/sh
# Makes board/compose/secrets/{db_admin_password,db_jail_password} once
# (random, 0600); an existing file is kept.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
for s in db_admin_password db_jail_password; do
  [ -s "secrets/$s" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"secrets/$s"
done
echo "secrets in $(pwd)/secrets (keep them out of version control)"
