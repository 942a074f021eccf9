#!/usr/bin/env bash
# Installs what the integration tests need on a Debian/Ubuntu machine (run as root):
# OpenSSH server and client, iproute2, python3, squid, chromium, and the unprivileged jail account the tests' sshd
# lets in (shell /bin/false, no home, like seed 000's tunuser).
set -euo pipefail
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v nc >/dev/null 2>&1 || need+=(netcat-openbsd)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# tests/faults.rs: network namespaces, a veth pair and a blackhole qdisc (ip, tc);
# python3 runs the echo target and the operator client inside the namespaces.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v tc >/dev/null 2>&1 || need+=(iproute2)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v mount >/dev/null 2>&1 || need+=(mount)
# tests/boards.rs: shellcheck on every script, systemd-analyze verify on the unit,
# the OpenWrt init script under busybox sh, dpkg-deb reading the .ipk.
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v busybox >/dev/null 2>&1 || need+=(busybox)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
command -v ar >/dev/null 2>&1 || need+=(binutils)
# warden's tests: a throw-away PostgreSQL cluster (initdb, pg_ctl, pg_dump),
# the sqlite3 shell for registry dumps, runuser/setsid (util-linux).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
# warden's tests/pg_tls.rs and benches/fleet_bench.py: a test CA and server
# certificates for PostgreSQL over TLS.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# tests/hostcert.rs: a board whose clock is unset, faked with libfaketime.
command -v faketime >/dev/null 2>&1 || need+=(faketime)
# tests/proxy.rs: a real HTTP CONNECT proxy (squid, Basic auth through its
# basic_ncsa_auth helper; openssl makes the password hash).
[ -x /usr/sbin/squid ] && [ -x /usr/lib/squid/basic_ncsa_auth ] || need+=(squid)
# warden's tests/web.rs: the web view in a real headless browser, driven
# over WebDriver (Debian's chromium and its chromedriver); unshare runs the
# printed ssh command in a private mount namespace.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# warden's tests/scale.rs: OpenSSH 9.8+ (PerSourcePenalties), unpacked from
# Debian backports into /var/cache/jailbird-test, not installed.
"$(dirname "$0")/openssh-backports.sh" >/dev/null
# sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd
chmod 0755 /run/sshd
# The jail accounts: devices (jbtunnel) and, for warden's tests, operators
# (jbop); and warden, the unprivileged account sshd runs `warden
# authorized-keys` as.
for user in "${JAILBIRD_TEST_JAIL_USER:-jbtunnel}" jbop warden; do
  if ! id "$user" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /bin/false "$user"
  fi
  # useradd leaves the password "!" (locked), and sshd without PAM refuses locked
  # accounts even for key logins; "*" means "no password" without the lock.
  usermod -p '*' "$user"
done
# The claim account (jbclaim; the agent's claim tests use it too): shell
# /bin/sh, since sshd runs the forced command with it; for warden's
# tests/claims.rs also in group warden: claim-serve writes the SQLite registry.
if ! id jbclaim >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /bin/sh jbclaim
fi
usermod -p '*' jbclaim
id -nG jbclaim | tr ' ' '\n' | grep -qx warden || usermod -a -G warden jbclaim
# warden's tests/serve.rs: curl drives the API; an independent OpenAPI validator
# checks its document (skipped with a message where pip cannot install it).
command -v curl >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null; }
if ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
  python3 -m pip install -q openapi-spec-validator >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages openapi-spec-validator >/dev/null 2>&1 \
    || echo "test-setup: could not pip install openapi-spec-validator (tests/serve.rs skips its check)" >&2
fi
