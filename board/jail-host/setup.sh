#!/bin/sh
# Prepares a fresh Debian host to be a warden jail. Run as root, again at will:
# every step looks first, so a second run changes nothing.
#   sh board/jail-host/setup.sh PATH/TO/warden [JAIL_NAME]
#   sh /usr/share/warden/setup.sh /usr/bin/warden [JAIL_NAME]   # the warden .deb
# - accounts: warden (sshd's AuthorizedKeysCommandUser and warden-watch's user;
#   home /var/lib/warden, no login), tunuser (devices) and operator (operators):
#   shell /bin/false, no home, password '*' (key logins work, even without PAM);
#   claim (devices enrolling themselves with a claim token): the same, but
#   shell /bin/sh, which sshd needs to run its forced command (`warden
#   claim-serve`, nothing else: the drop-in's ForceCommand), and group warden
#   (for a SQLite registry made group-writable)
# - /var/lib/warden, warden:warden 0770: the SQLite registry (the claim
#   account, group warden, enrols into it), or .pgpass
# - the binary at /usr/local/bin/warden, root:root 0755: sshd runs a command
#   only if it and every directory above it are root's and writable by no one else
# - /etc/warden/warden.env (kept if present) and, from beside this script,
#   /etc/systemd/system/warden-watch@.service, sshd's limits for a fleet
#   (ssh.service.d/50-warden-fleet.conf) and kernel.pid_max (sysctl.d)
# Given the warden .deb's /usr/bin/warden (board/debian/), it uses that binary
# and the package's unit where they are; the package has already made the
# warden account, /var/lib/warden and warden.env, so those are found present.
# Then prints the steps that need the registry (pool, jail, sshd drop-in, watch).
set -eu

BIN=/usr/local/bin/warden
STATE=/var/lib/warden
ENV_DIR=/etc/warden
ENV_FILE=$ENV_DIR/warden.env
UNIT=/etc/systemd/system/warden-watch@.service
DROPIN=/etc/ssh/sshd_config.d/50-warden.conf
SSH_LIMITS=/etc/systemd/system/ssh.service.d/50-warden-fleet.conf
SYSCTL=/etc/sysctl.d/50-warden-fleet.conf
HOST_KEY=/etc/ssh/ssh_host_ed25519_key.pub
# Where the warden .deb puts the binary and the unit.
PKG_BIN=/usr/bin/warden
PKG_UNIT=/usr/lib/systemd/system/warden-watch@.service

die() {
	printf 'setup.sh: %s\n' "$*" >&2
	exit 1
}
say() {
	printf '  %s\n' "$*"
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 PATH/TO/warden [JAIL_NAME]" >&2
	exit 2
fi
src=$1
jail=${2:-JAIL}
case $jail in
'' | -* | *[!A-Za-z0-9._-]*) die "jail name '$jail': want A-Z a-z 0-9 . _ - (as in warden jail add)" ;;
esac
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
packaged=0
if [ "$src" = "$PKG_BIN" ]; then
	packaged=1
	BIN=$PKG_BIN
fi

# ---- checks, before anything changes -----------------------------------------
[ "$(id -u)" = 0 ] || die "run as root: it creates accounts and writes /usr/local/bin and /etc"
for tool in getent useradd usermod install cmp find; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (a Debian host has it)"
done
if [ ! -f "$src" ] || [ ! -x "$src" ]; then
	die "$src: not an executable file"
fi
version=$("$src" --version 2>/dev/null) || die "$src --version failed: not a warden built for this host?"
version=$(printf '%s\n' "$version" | head -n 1)
case $version in
"warden "*) ;;
*) die "$src --version says '$version': not warden" ;;
esac
# sshd's own rule for AuthorizedKeysCommand (safe_path): the binary and every
# directory above it owned by root and not writable by group or others.
dir=$(dirname "$BIN")
while :; do
	if [ -n "$(find "$dir" -maxdepth 0 \( ! -uid 0 -o -perm /022 \) -print)" ]; then
		die "$dir is not root-owned or is group/other-writable: sshd would refuse $BIN"
	fi
	[ "$dir" = / ] && break
	dir=$(dirname "$dir")
done

echo "setup.sh: $version -> $BIN"

# ---- accounts ----------------------------------------------------------------
# account NAME HOME SHELL USERADD-GROUP-OPTIONS...: creates it, or sets the home
# and shell of an existing one where they differ (usermod only when needed: it
# refuses to change the home of a user with running processes).
account() {
	name=$1 home=$2 shell=$3
	shift 3
	if getent passwd "$name" >/dev/null; then
		if [ "$(getent passwd "$name" | cut -d: -f6)" != "$home" ]; then
			usermod --home "$home" "$name"
			say "account $name: home set to $home"
		fi
		if [ "$(getent passwd "$name" | cut -d: -f7)" != "$shell" ]; then
			usermod --shell "$shell" "$name"
			say "account $name: shell set to $shell"
		fi
		say "account $name: present (uid $(id -u "$name"))"
	else
		useradd --system --home-dir "$home" --no-create-home --shell "$shell" "$@" "$name"
		say "account $name: created (uid $(id -u "$name"))"
	fi
}

# The command user: its own group, which owns the registry directory.
if getent group warden >/dev/null; then
	account warden "$STATE" /usr/sbin/nologin --gid warden
else
	account warden "$STATE" /usr/sbin/nologin --user-group
fi
# Devices and operators own no files: primary group nogroup (Debian already has
# a group "operator", gid 37, which the operator account must not join).
for name in tunuser operator; do
	account "$name" /nonexistent /bin/false --gid nogroup
	# '*': no password can match, yet the account is not locked ('!'), which
	# sshd would refuse for key logins when UsePAM is off.
	if [ "$(getent shadow "$name" | cut -d: -f2)" != '*' ]; then
		usermod -p '*' "$name"
		say "account $name: password field set to '*'"
	fi
done

# The claim account: sshd runs a forced command with the account's shell
# (`SHELL -c COMMAND`), so /bin/sh, not /bin/false; the drop-in's ForceCommand
# and the key line's restrict,command= leave it nothing else to run. Group
# warden: `claim-serve` enrols into a SQLite registry made group-writable.
account claim /var/lib/warden-claim /bin/sh --gid warden
if [ "$(getent shadow claim | cut -d: -f2)" != '*' ]; then
	usermod -p '*' claim
	say "account claim: password field set to '*'"
fi

# ---- files -------------------------------------------------------------------
# Owner and mode are set on every run (install -d on an existing directory).
# Group-writable: the claim account (group warden) enrols devices into a
# SQLite registry here (docs/fleet.md "Claims"); the watch unit's
# StateDirectoryMode and the .deb's tmpfiles.d say the same.
install -d -o warden -g warden -m 0770 "$STATE"
# The claim account's home: only its .pgpass for a PostgreSQL registry (the
# role of `warden db-grants --for claim`), readable by it alone.
install -d -o claim -g warden -m 0700 /var/lib/warden-claim
say "$STATE: warden:warden 0770"
# An existing registry made before claims: group read-write too (SQLite gives
# its -wal and -shm files the database's mode; warden keeps it so).
for f in "$STATE"/registry.db "$STATE"/registry.db-wal "$STATE"/registry.db-shm; do
	if [ -f "$f" ] && [ ! -L "$f" ]; then
		chmod g+rw "$f"
	fi
done

if [ -f "$BIN" ] && cmp -s "$src" "$BIN"; then
	say "$BIN: unchanged"
else
	# A new file renamed into place: a running warden keeps its old one.
	install -o root -g root -m 0755 "$src" "$BIN.new"
	mv -f "$BIN.new" "$BIN"
	say "$BIN: installed"
fi
chown root:root "$BIN"
chmod 0755 "$BIN"

install -d -o root -g root -m 0755 "$ENV_DIR"
if [ -e "$ENV_FILE" ]; then
	say "$ENV_FILE: kept"
elif [ -f "$here/warden.env" ]; then
	install -o root -g root -m 0644 "$here/warden.env" "$ENV_FILE"
	say "$ENV_FILE: written (SQLite registry in $STATE)"
else
	printf 'WARDEN_DB=sqlite://%s/registry.db\n' "$STATE" >"$ENV_FILE"
	chmod 0644 "$ENV_FILE"
	say "$ENV_FILE: written (SQLite registry in $STATE)"
fi

# place FILE DEST: installs FILE from beside this script as DEST (root 0644)
# unless DEST already holds the same bytes; sets `changed` when it wrote.
changed=0
place() {
	if [ ! -f "$here/$1" ]; then
		say "$1 is not beside this script: copy it to $2"
	elif cmp -s "$here/$1" "$2"; then
		say "$2: unchanged"
	else
		mkdir -p "$(dirname "$2")"
		install -o root -g root -m 0644 "$here/$1" "$2"
		changed=1
		say "$2: installed"
	fi
}
if [ "$packaged" = 1 ]; then
	say "$PKG_UNIT: from the warden package"
	if [ -e "$UNIT" ]; then
		say "warning: $UNIT overrides the package's unit: remove it unless you mean it to"
	fi
else
	place warden-watch@.service "$UNIT"
fi
# Limits for a fleet: tasks, descriptors and processes of the jail's sshd, and pid_max.
place ssh-fleet.conf "$SSH_LIMITS"
place sysctl-fleet.conf "$SYSCTL"
if [ "$changed" = 1 ]; then
	if ! sysctl -q -p "$SYSCTL" >/dev/null 2>&1; then
		say "warning: could not apply $SYSCTL now (applied at the next boot)"
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload
		say "restart sshd when convenient for its new limits: systemctl restart ssh"
	fi
fi

# ---- what is still missing ---------------------------------------------------
command -v sshd >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
command -v sshd >/dev/null 2>&1 || say "warning: no sshd: apt-get install openssh-server"
if [ -f /etc/ssh/sshd_config ] && ! grep -Eq '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/\*\.conf' /etc/ssh/sshd_config; then
	say "warning: /etc/ssh/sshd_config has no 'Include /etc/ssh/sshd_config.d/*.conf' line: add it first, at the top"
fi
[ -f "$HOST_KEY" ] || say "warning: no $HOST_KEY: ssh-keygen -A makes the host keys"

cat <<EOF

Next, with the registry (as root on this host; the first line makes warden use
the same registry as sshd and warden-watch):
  set -a; . $ENV_FILE; set +a
  warden pool add fleet --ports 10000-19999        # once per registry, not per jail
  warden jail add $jail --pool fleet --address PUBLIC_HOST:22 \\
      --host-key "\$(cat $HOST_KEY)"
  warden sshd-config --jail $jail --binary $BIN > $DROPIN
  sshd -t && systemctl reload ssh
  systemctl enable --now warden-watch@$jail
  journalctl -u warden-watch@$jail -f               # online: ID at jail $jail
EOF
