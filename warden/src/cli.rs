//! Flags and subcommands (clap), nothing else.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "warden",
    version,
    about = "The fleet side of jailbird: device registry, enrolment and jail authorization on stock OpenSSH"
)]
pub struct Cli {
    /// Registry: sqlite:///PATH or postgres://USER@HOST[:PORT]/DB (password from PGPASSWORD or
    /// ~/.pgpass). A host other than this machine needs ?sslmode=verify-full&sslrootcert=/CA.pem
    /// (TLS, certificate and name checked) or an explicit ?sslmode=disable.
    #[arg(long, global = true, env = "WARDEN_DB", default_value = crate::store::conn::DEFAULT_DB)]
    pub db: String,
    /// Machine-readable output (JSON) for listings and `show`.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Port pools: a set of jails sharing one port range.
    #[command(subcommand)]
    Pool(PoolCmd),
    /// Jails: the sshd hosts devices dial.
    #[command(subcommand)]
    Jail(JailCmd),
    /// Enrol a device (idempotent for the same id and key).
    Enroll(EnrollArgs),
    /// Enrol every row of a CSV file (id,mac,key[,pool]), all or nothing.
    Import { file: PathBuf },
    /// Write DIR/jailbird.env and DIR/known_hosts for a device.
    DeviceConfig {
        id: String,
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Where the device keeps the known_hosts file.
        #[arg(long, default_value = crate::device_config::DEFAULT_DEVICE_KNOWN_HOSTS)]
        known_hosts_path: String,
        /// Also write the device sshd's trust of operator certificates: the CA's
        /// public key, the principals file (the device id) and an sshd drop-in.
        #[arg(long, env = "WARDEN_OPERATOR_CA")]
        operator_ca: Option<PathBuf>,
    },
    /// List devices.
    Ls(LsArgs),
    /// One device, by id or MAC.
    Show {
        #[arg(required_unless_present = "mac", conflicts_with = "mac")]
        id: Option<String>,
        #[arg(long)]
        mac: Option<String>,
    },
    /// Revoke a device: its next login fails, a live session ends within the watch interval.
    Revoke {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Operators: people who reach devices through the jails, by grant.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Let an operator reach one device for a while (default 15m).
    Grant {
        #[arg(required_unless_present = "mac", conflicts_with = "mac")]
        id: Option<String>,
        #[arg(long)]
        mac: Option<String>,
        #[arg(long)]
        operator: String,
        /// DURATION: 90s, 15m, 2h, 1d.
        #[arg(long = "for", default_value = "15m")]
        duration: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Grant, then ssh to the device's own sshd through the jail holding it now.
    Connect(ConnectArgs),
    /// Print ssh_config stanzas so `ssh DEVICE-ID` goes through the device's jail.
    SshConfig(SshConfigArgs),
    /// The operator certificate authority (a key file on this admin host).
    #[command(subcommand)]
    Ca(CaCmd),
    /// PostgreSQL: print the GRANTs for a role warden runs as (audit: INSERT/SELECT only).
    DbGrants {
        /// The PostgreSQL role warden connects as.
        #[arg(long)]
        role: String,
        /// admin: the admin host, every command; jail: a jail host, only
        /// authorized-keys, watch and sshd-config (reads, presence, audit rows);
        /// claim: a jail's claim account, only claim-serve (spend a claim, add
        /// the device).
        #[arg(long = "for", value_enum)]
        used: RoleFor,
    },
    /// The audit trail, oldest first.
    Audit {
        #[arg(long)]
        device: Option<String>,
        #[arg(long)]
        operator: Option<String>,
        /// From this time on: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or a DURATION ago (15m, 2h, 1d).
        #[arg(long)]
        since: Option<String>,
    },
    /// API tokens for `warden serve`: a name and a scope, the secret shown once.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Claim tokens: a device image carrying one enrols itself through a jail.
    #[command(subcommand)]
    Claim(ClaimCmd),
    /// The claim account's forced command on a jail (sshd runs it): reads one
    /// claim request on stdin, enrols the device, answers on stdout.
    ClaimServe {
        #[arg(long)]
        jail: String,
    },
    /// Webhooks: receivers of signed event notifications (delivered by `serve`).
    #[command(subcommand)]
    Hook(HookCmd),
    /// Serve the HTTP API (TLS with --tls-cert/--tls-key; plain HTTP on loopback only).
    Serve(ServeArgs),
    /// Print the sshd_config drop-in that makes this host's sshd the jail NAME.
    SshdConfig(SshdConfigArgs),
    /// sshd's AuthorizedKeysCommand: `authorized-keys --jail NAME %u %f`.
    AuthorizedKeys {
        #[arg(long)]
        jail: String,
        user: String,
        fingerprint: String,
        /// The offered key's type and base64 (`%t %k`): the claim account's
        /// answer carries the key itself.
        key_type: Option<String>,
        #[arg(requires = "key_type")]
        key_base64: Option<String>,
        /// Where `warden watch` takes this lookup's figures (one datagram,
        /// dropped if nobody listens; default /run/warden/metrics-JAIL.sock).
        #[arg(long)]
        metrics_socket: Option<PathBuf>,
    },
    /// Record which devices hold their port on this jail; end revoked devices' sessions.
    Watch {
        #[arg(long)]
        jail: String,
        /// Seconds between looks.
        #[arg(long, default_value_t = crate::watch::DEFAULT_INTERVAL_SECS)]
        interval: u64,
        /// The jail sshd's PidFile, when several sshds share this host.
        #[arg(long)]
        sshd_pid_file: Option<PathBuf>,
        /// Stop after this many looks (default: run until stopped).
        #[arg(long)]
        ticks: Option<u64>,
        /// Serve this jail host's figures (lookups, refusals, ticks, ended
        /// sessions) as Prometheus text on http://ADDR:PORT/metrics (loopback only).
        #[arg(long)]
        metrics_listen: Option<String>,
        /// The socket `authorized-keys` reports lookups to (default
        /// /run/warden/metrics-JAIL.sock); used with --metrics-listen.
        #[arg(long, requires = "metrics_listen")]
        metrics_socket: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum HookCmd {
    /// Add a receiver: `warden serve` POSTs each event to URL, signed with the secret.
    Add {
        /// http://HOST[:PORT]/PATH or https://...
        url: String,
        /// Comma-separated: device.online, device.offline, device.revoked, grant.created.
        #[arg(long)]
        events: String,
        /// A file holding the signing secret (16-1024 printable bytes; never printed).
        #[arg(long)]
        secret_file: PathBuf,
    },
    /// List receivers (never their secrets) with their undelivered events.
    Ls,
    /// Remove a receiver and its undelivered events.
    Rm { id: i64 },
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token; prints it alone on the first line, once (only its hash is kept).
    Create {
        name: String,
        /// read, enrol, operate or admin (admin ⊃ operate ⊃ read, enrol ⊃ read).
        #[arg(long, value_enum)]
        scope: ScopeArg,
        /// DURATION it is valid for (90s, 15m, 2h, 1d); default: until revoked.
        #[arg(long)]
        expires: Option<String>,
        /// The operator an operate (or admin) token creates grants for.
        #[arg(long)]
        operator: Option<String>,
    },
    /// List tokens (never their secrets).
    Ls,
    /// Revoke a token: refused from its next request on.
    Revoke { name: String },
}

#[derive(Subcommand, Debug)]
pub enum ClaimCmd {
    /// Create a claim token; prints it alone on the first line, once (only its
    /// hash is kept), and its id on the second.
    Create {
        #[arg(long)]
        pool: String,
        /// How many devices may claim with it (1-100000).
        #[arg(long, default_value_t = crate::store::DEFAULT_CLAIM_USES)]
        uses: i64,
        /// DURATION it is valid for (90s, 15m, 2h, 1d; at most 30d).
        #[arg(long, default_value = crate::store::DEFAULT_CLAIM_EXPIRES)]
        expires: String,
        /// KEY=VALUE given to every device that claims with it, repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Only devices whose MAC starts with these octets (e.g. b8:27:eb).
        #[arg(long)]
        mac_prefix: Option<String>,
        /// HOST:PORT the devices' tunnels lead to (their own sshd; default 127.0.0.1:22).
        #[arg(long)]
        target: Option<String>,
    },
    /// List claims (never their tokens).
    Ls,
    /// Revoke a claim: refused from its next use on.
    Revoke { id: String },
}

/// A token's scope (`token create --scope`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeArg {
    Read,
    Enrol,
    Operate,
    Admin,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// ADDR:PORT to listen on (plain HTTP only on a loopback address).
    #[arg(long)]
    pub listen: String,
    /// PEM certificate chain (reloaded on SIGHUP).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (reloaded on SIGHUP).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    /// Add a pool.
    Add {
        name: String,
        /// Port range LO-HI.
        #[arg(long, default_value = "10000-19999")]
        ports: String,
        /// Every grant (and connect) in this pool must give a --reason.
        #[arg(long)]
        require_reason: bool,
    },
    /// List pools.
    Ls,
    /// Let a host CA vouch for the pool's jails (`warden jail sign`): devices
    /// configured after this trust the CA, not each jail's key.
    HostCa {
        name: String,
        /// The CA's public key, "TYPE BASE64" (the .pub `warden ca init` wrote).
        #[arg(long)]
        key: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum OperatorCmd {
    /// Add an operator, or another key of theirs.
    Add {
        name: String,
        #[arg(long)]
        key: String,
    },
    /// Disable an operator: none of their keys logs in from now on.
    Disable { name: String },
    /// List operators.
    Ls,
}

#[derive(Subcommand, Debug)]
pub enum JailCmd {
    /// Add a jail to a pool.
    Add {
        name: String,
        /// Where devices dial it: HOST[:PORT].
        #[arg(long)]
        address: String,
        /// Its host public key: "TYPE BASE64" (e.g. from /etc/ssh/ssh_host_ed25519_key.pub).
        #[arg(long)]
        host_key: String,
        #[arg(long)]
        pool: Option<String>,
        /// The account devices log in as.
        #[arg(long, default_value = crate::store::DEFAULT_TUNNEL_USER)]
        user: String,
        /// The account operators log in as.
        #[arg(long, default_value = crate::sshd::DEFAULT_OPERATOR_USER)]
        operator_user: String,
        /// The account devices holding a claim token log in as.
        #[arg(long, default_value = crate::sshd::DEFAULT_CLAIM_USER)]
        claim_user: String,
    },
    /// List jails.
    Ls,
    /// Sign the jail's host key with the pool's host CA: a host certificate for
    /// the jail's address, for sshd's HostCertificate.
    Sign {
        name: String,
        /// The host CA's private key file (`warden ca init`).
        #[arg(long, env = "WARDEN_HOST_CA")]
        ca: PathBuf,
        /// How long it is valid (renew before then: `jail ls` shows no expiry,
        /// the certificate file does, `ssh-keygen -L -f FILE`).
        #[arg(long = "valid", default_value = "365d")]
        valid: String,
        /// Where to write the certificate (default NAME-cert.pub).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    pub id: String,
    /// The device's public key: "ssh-ed25519 AAAA..." (`jailbird key` prints it).
    #[arg(long)]
    pub key: String,
    #[arg(long)]
    pub mac: Option<String>,
    #[arg(long)]
    pub pool: Option<String>,
    /// Where the jail's port leads on the device (default 127.0.0.1:22).
    #[arg(long)]
    pub target: Option<String>,
    /// KEY=VALUE, repeatable.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// The device's own sshd host key, "TYPE BASE64" (repeatable, up to 4):
    /// `connect` and `ssh-config` pin it.
    #[arg(long = "host-key")]
    pub host_keys: Vec<String>,
    /// Re-key, move or re-enrol a device that exists with other values.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    #[arg(long)]
    pub pool: Option<String>,
    #[arg(long, conflicts_with = "offline")]
    pub online: bool,
    #[arg(long)]
    pub offline: bool,
    /// KEY=VALUE, repeatable: devices carrying every label given.
    #[arg(long = "label")]
    pub labels: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SshdConfigArgs {
    #[arg(long)]
    pub jail: String,
    /// The unprivileged account sshd runs `authorized-keys` as.
    #[arg(long, default_value = crate::sshd::DEFAULT_COMMAND_USER)]
    pub command_user: String,
    /// The account devices log in as (default: the jail's, from `jail add --user`).
    #[arg(long)]
    pub tunnel_user: Option<String>,
    /// The account operators log in as (default: the jail's, from `jail add --operator-user`).
    #[arg(long)]
    pub operator_user: Option<String>,
    /// The warden binary sshd runs (default: this one's absolute path).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// The jail's host certificate (`warden jail sign`), for `HostCertificate`.
    #[arg(long)]
    pub host_certificate: Option<PathBuf>,
    /// The sshd the drop-in is for: its version (`sshd -V`) decides the
    /// per-source penalty settings (OpenSSH 9.8 and later).
    #[arg(long, default_value = "/usr/sbin/sshd")]
    pub sshd: PathBuf,
    /// CPUs of the jail host, for `MaxStartups` (default: this host's).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub cores: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// Create the operator CA key (ed25519, mode 0600) and PATH.pub.
    Init {
        #[arg(long, env = "WARDEN_OPERATOR_CA")]
        ca: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    #[arg(required_unless_present = "mac", conflicts_with = "mac")]
    pub id: Option<String>,
    #[arg(long)]
    pub mac: Option<String>,
    /// Who connects (default: the operator whose key is --identity's).
    #[arg(long, env = "WARDEN_OPERATOR")]
    pub operator: Option<String>,
    /// DURATION of the grant (and of the certificate): 90s, 15m, 2h, 1d.
    #[arg(long = "for", default_value = "15m")]
    pub duration: String,
    #[arg(long)]
    pub reason: Option<String>,
    /// The operator's private key file (its public key at PATH.pub).
    #[arg(long, short = 'i', env = "WARDEN_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Sign the operator's key as a user certificate for this device with this CA.
    #[arg(long, env = "WARDEN_OPERATOR_CA")]
    pub ca: Option<PathBuf>,
    /// Where certificates and the jails' known_hosts are written
    /// (default $XDG_RUNTIME_DIR/warden, else ~/.cache/warden).
    #[arg(long, env = "WARDEN_CERT_DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Print the ssh command instead of running it.
    #[arg(long)]
    pub print: bool,
    /// Arguments for the ssh to the device (options, then a command).
    #[arg(last = true)]
    pub ssh_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SshConfigArgs {
    /// The operator's private key file, named in each stanza.
    #[arg(long, short = 'i', env = "WARDEN_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Write the jails' host keys here and check the jails against it
    /// (default: the operator's own known_hosts).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    #[arg(long)]
    pub pool: Option<String>,
}

/// What a PostgreSQL role is for (`db-grants --for`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleFor {
    Admin,
    Jail,
    Claim,
}
