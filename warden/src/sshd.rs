//! What a jail's sshd asks warden: the drop-in that makes a stock OpenSSH a
//! jail (`sshd-config`) and the answer to "may this key log in as this user
//! here?" (`authorized-keys`, its `AuthorizedKeysCommand`).

use crate::error::Error;
use crate::store::conn::{Conn, DbUrl, Mode};
use crate::store::{self, Jail};
use crate::types::{DeviceId, Name, PublicKey, UserName};
use std::fmt::Write as _;
use std::path::Path;

/// The account sshd runs `authorized-keys` as when `--command-user` is not given.
pub const DEFAULT_COMMAND_USER: &str = "warden";
/// The jail account operators log in as when `--operator-user` is not given.
pub const DEFAULT_OPERATOR_USER: &str = "operator";
/// The jail account devices holding a claim token log in as (`jail add --claim-user`).
pub const DEFAULT_CLAIM_USER: &str = "claim";
/// Seconds between sshd's keepalives to a device, and how many may go
/// unanswered: a dead device's listener is freed within their product.
pub const CLIENT_ALIVE_INTERVAL_SECS: u32 = 15;
pub const CLIENT_ALIVE_COUNT_MAX: u32 = 4;
/// Seconds a connection may take to authenticate.
pub const LOGIN_GRACE_SECS: u32 = 30;

/// Why `authorized-keys` said no: the reason's label (a fixed word, for the
/// `warden_login_refusals_total{reason}` counter) and the one line logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub why: String,
}

/// Every refusal reason (the label values `warden watch` accepts in a report).
pub const REFUSAL_REASONS: &[&str] = &[
    "bad_fingerprint",
    "not_enrolled",
    "wrong_user",
    "revoked",
    "wrong_pool",
    "key_mismatch",
    "device_key_as_operator",
    "not_an_operator",
    "operator_disabled",
    "no_grant",
    "claim_refused",
];

impl Refusal {
    fn new(reason: &'static str, why: String) -> Self {
        debug_assert!(REFUSAL_REASONS.contains(&reason), "{reason}");
        Refusal { reason, why }
    }
}

impl std::ops::Deref for Refusal {
    type Target = str;
    fn deref(&self) -> &str {
        &self.why
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

/// One word of an sshd command line: `%` doubled (sshd expands `%u`, `%f`),
/// and quoted if it holds a space.
fn sshd_word(s: &str) -> String {
    let s = s.replace('%', "%%");
    if s.contains([' ', '\t', '"', '\\']) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

/// Core time one device login costs the jail host: sshd's key exchange and
/// authentication, one `authorized-keys`, and the kernel's fork, exec and
/// exit around them. The fleet simulator measured 8-12 ms in the jail's own
/// processes, but a restart's return took 31-35 ms of core time per device
/// all told (1,000 devices back in 17.3-17.7 s on 2 cores, the simulator's
/// 2 ms included; benches/fleet_sim.py, OpenSSH 9.2, docs/fleet.md "Fleet scale").
pub const LOGIN_CPU_MS: u32 = 30;
/// Smallest `MaxStartups` warden writes (OpenSSH's own default is 10:30:100).
pub const MIN_STARTUPS: u32 = 100;

/// `MaxStartups` for a pool of `devices` on a jail host with `cores` CPUs.
///
/// After a jail restart every device reconnects at once. Each connection
/// sshd drops before authentication is a device backing off, and backoff
/// leaves the jail idle while devices wait: with OpenSSH's random early drop
/// (10:30:100, or warden's earlier pool/16:30:pool/4) 1,000 devices took
/// about 40 s to come back on 2 cores that were mostly idle, with 1.6 failed
/// attempts per device; admitting the whole pool brought them back with none.
/// So: no random early drop (start = full), and room for the whole pool, up
/// to what the host can authenticate within half of `LoginGraceTime`, which
/// is also the agent's own AUTH_TIMEOUT (beyond that, admitted logins time
/// out half-done and the work is lost: 2,000 devices admitted at once on 2
/// cores took 63 s to come back, 800 of their attempts timed out).
/// Memory is no reason to admit fewer: an authenticated device holds the
/// same processes a pending login does.
pub fn max_startups(devices: u32, cores: u32) -> String {
    let cpu_bound = LOGIN_GRACE_SECS * 1000 / 2 * cores.max(1) / LOGIN_CPU_MS;
    let full = devices.min(cpu_bound).max(MIN_STARTUPS);
    format!("{full}:100:{full}")
}

pub struct SshdConfigArgs<'a> {
    pub jail: &'a Name,
    pub command_user: &'a str,
    pub tunnel_user: Option<&'a str>,
    pub operator_user: Option<&'a str>,
    pub binary: &'a Path,
    pub db: &'a DbUrl,
    /// `HostCertificate` for the jail's sshd (`warden jail sign`).
    pub host_certificate: Option<&'a Path>,
    /// What `sshd -V` said of the jail's sshd.
    pub sshd: SshdVersion,
    /// CPUs of the jail host (`MaxStartups`).
    pub cores: u32,
}

/// The jail's OpenSSH, as far as `sshd -V` tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SshdVersion {
    OpenSsh(u32, u32),
    /// Not found, not runnable, or not OpenSSH: what went wrong.
    Unknown(String),
}

/// The first OpenSSH release with `PerSourcePenalties`.
pub const PENALTIES_SINCE: (u32, u32) = (9, 8);

/// `PerSourcePenalties` for a jail: only a crash of sshd is held against a
/// source address. OpenSSH's defaults also refuse an address after failed
/// or abandoned logins (`authfail:5s`, `noauth:1s`, `grace-exceeded:10s`,
/// enforced from 15 s accrued, up to 10 min); behind a NAT every device of
/// a site shares one address, so a few revoked devices that keep retrying,
/// or a reconnect storm, would lock out the whole site. A jail is key-only:
/// failed logins there guess nothing.
pub const PER_SOURCE_PENALTIES: &str = "crash:90s authfail:0s noauth:0s grace-exceeded:0s";

/// Runs `sshd -V` (OpenSSH prints `OpenSSH_9.2p1 ..., OpenSSL ...` on stderr).
pub fn probe_version(sshd: &Path) -> SshdVersion {
    match std::process::Command::new(sshd)
        .arg("-V")
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) => parse_version(&String::from_utf8_lossy(&out.stderr)).unwrap_or_else(|| {
            SshdVersion::Unknown(format!("{} -V printed no OpenSSH version", sshd.display()))
        }),
        Err(e) => SshdVersion::Unknown(format!("cannot run {} -V: {e}", sshd.display())),
    }
}

fn parse_version(text: &str) -> Option<SshdVersion> {
    let rest = text.split("OpenSSH_").nth(1)?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some(SshdVersion::OpenSsh(major, minor))
}

/// The drop-in's lines on per-source penalties for this sshd.
fn penalties(v: &SshdVersion) -> String {
    match v {
        SshdVersion::OpenSsh(a, b) if (*a, *b) >= PENALTIES_SINCE => format!(
            "# OpenSSH {a}.{b} refuses a source address after failed or abandoned logins;\n\
             # behind a NAT a whole site shares one address: only crashes count here,\n\
             # and no per-source cap on unauthenticated connections.\n\
             PerSourcePenalties {PER_SOURCE_PENALTIES}\n\
             PerSourceMaxStartups none\n"
        ),
        SshdVersion::OpenSsh(a, b) => {
            format!("# OpenSSH {a}.{b}: no per-source penalties (they came in 9.8).\n")
        }
        SshdVersion::Unknown(why) => format!(
            "# {why}. For OpenSSH 9.8 or later add (a NATed site shares one address):\n\
             # PerSourcePenalties {PER_SOURCE_PENALTIES}\n"
        ),
    }
}

/// The drop-in's `Match User` blocks: devices hold their own reverse
/// forward, operators open forwards to loopback ports, nothing else.
fn match_blocks(
    cmd: &str,
    command_user: &UserName,
    tunnel: &UserName,
    operator: &UserName,
    claim: (&UserName, &str, &str),
) -> String {
    let mut s = String::new();
    let common = format!(
        "\tAuthenticationMethods publickey\n\
         \tPubkeyAuthentication yes\n\
         \tPasswordAuthentication no\n\
         \tKbdInteractiveAuthentication no\n\
         \tAuthorizedKeysFile none\n\
         \tAuthorizedKeysCommand {cmd}\n\
         \tAuthorizedKeysCommandUser {cu}\n\
         \tAllowAgentForwarding no\n\
         \tAllowStreamLocalForwarding no\n\
         \tX11Forwarding no\n\
         \tPermitTunnel no\n\
         \tPermitUserRC no\n\
         \tGatewayPorts no\n\
         \tPermitTTY no\n\
         \tForceCommand /bin/false\n",
        cu = command_user,
    );
    let _ = write!(
        s,
        "\n# Devices: each key line warden prints carries permitlisten for the\n\
         # device's own port; `PermitOpen none` is the fence against direct-tcpip\n\
         # (OpenSSH 9.2 refuses a key line holding permitopen=\"none\").\n\
         Match User {tunnel}\n\
         {common}\
         \tAllowTcpForwarding remote\n\
         \tPermitOpen none\n\
         \tClientAliveInterval {ci}\n\
         \tClientAliveCountMax {cm}\n\
         \n\
         # Operators: local forwards only, to loopback ports of this jail; each\n\
         # key line narrows them to the granted devices' ports.\n\
         Match User {op}\n\
         {common}\
         \tAllowTcpForwarding local\n\
         \tPermitListen none\n\
         \tPermitOpen localhost:* 127.0.0.1:*\n\
         \n\
         {claim_block}\
         \n\
         # Close the Match scope: settings after this file are global again.\n\
         Match all\n",
        claim_block = claim_block(claim.0, claim.1, claim.2, command_user),
        op = operator,
        ci = CLIENT_ALIVE_INTERVAL_SECS,
        cm = CLIENT_ALIVE_COUNT_MAX,
    );
    s
}

/// The claim account's `Match User` block: any key logs in, to exactly one
/// thing, `warden claim-serve` (the key line's `restrict,command=` and
/// `ForceCommand` both), with no pty, no forwarding of any kind, and the
/// authenticated key exposed to it (`ExposeAuthInfo`).
pub fn claim_block(
    claim: &UserName,
    keys_cmd: &str,
    serve_cmd: &str,
    command_user: &UserName,
) -> String {
    format!(
        "# Claims: a device holding a claim token logs in with its own key, which\n\
         # is admitted only to warden's forced command (zero-touch enrolment).\n\
         Match User {claim}\n\
         \tAuthenticationMethods publickey\n\
         \tPubkeyAuthentication yes\n\
         \tPasswordAuthentication no\n\
         \tKbdInteractiveAuthentication no\n\
         \tAuthorizedKeysFile none\n\
         \tAuthorizedKeysCommand {keys_cmd}\n\
         \tAuthorizedKeysCommandUser {command_user}\n\
         \tExposeAuthInfo yes\n\
         \tPermitTTY no\n\
         \tAllowTcpForwarding no\n\
         \tAllowStreamLocalForwarding no\n\
         \tAllowAgentForwarding no\n\
         \tX11Forwarding no\n\
         \tPermitTunnel no\n\
         \tPermitUserRC no\n\
         \tGatewayPorts no\n\
         \tPermitListen none\n\
         \tPermitOpen none\n\
         \tMaxSessions 1\n\
         \tForceCommand {serve_cmd}\n"
    )
}

/// The claim account's forced command: `BINARY --db URL claim-serve --jail
/// NAME`, each word quoted for the account's shell (sshd runs a forced
/// command with `SHELL -c`). Refused if it holds what neither a key line's
/// `command="..."` nor sshd_config can carry literally.
pub fn claim_serve_command(binary: &Path, db: &DbUrl, jail: &Name) -> Result<String, Error> {
    let words = [
        binary.display().to_string(),
        "--db".into(),
        db.to_string(),
        "claim-serve".into(),
        "--jail".into(),
        jail.as_str().to_string(),
    ];
    let cmd: Vec<String> = words.iter().map(|w| crate::types::shell_word(w)).collect();
    let cmd = cmd.join(" ");
    if cmd
        .chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\\' | '%' | '#'))
    {
        return Err(Error::invalid(format!(
            "claim-serve command {}: holds a quote, backslash, %, # or control character",
            crate::types::quote(&cmd)
        )));
    }
    Ok(cmd)
}

/// The claim account's decision from typed values: any key may log in, as
/// the claim account only, to the forced command only. `key` is what sshd
/// offered (`%t %k`), parsed; it must hash to `%f`. The line is rendered
/// from the parsed key, never echoed.
pub fn decide_claim(
    jail: &Jail,
    user: &str,
    fingerprint: &str,
    key: Option<&PublicKey>,
    serve_cmd: &str,
) -> Result<String, String> {
    if jail.claim_user != *user {
        return Err(format!(
            "user {user} is not jail {}'s claim account",
            jail.name
        ));
    }
    let Some(key) = key else {
        return Err(format!(
            "key {fingerprint}: sshd gave no key (the claim account's AuthorizedKeysCommand needs %t %k)"
        ));
    };
    if key.fingerprint != fingerprint {
        return Err(format!(
            "offered key hashes to {}, not {fingerprint}",
            key.fingerprint
        ));
    }
    if serve_cmd.contains(['"', '\n', '\r', '\0']) {
        return Err("the forced command cannot go in a key line".into());
    }
    Ok(format!(
        "restrict,command=\"{serve_cmd}\" {} warden-claim",
        key.line()
    ))
}

/// The drop-in for `/etc/ssh/sshd_config.d/`.
/// The accounts and paths `sshd-config` was given, checked against the
/// jail's: returns the command user.
fn check_config_args(jail: &Jail, a: &SshdConfigArgs) -> Result<UserName, Error> {
    let given = |what, u: Option<&str>| u.map(|u| UserName::parse(what, u)).transpose();
    let tunnel_given = given("--tunnel-user", a.tunnel_user)?;
    let operator_given = given("--operator-user", a.operator_user)?;
    let (tunnel, operator) = (&jail.user, &jail.operator_user);
    if tunnel_given.is_some_and(|u| u != *tunnel) || operator_given.is_some_and(|u| u != *operator)
    {
        return Err(Error::invalid(format!(
            "jail {} has tunnel account {} and operator account {}: authorized-keys answers for those (jail add --user/--operator-user)",
            jail.name, jail.user, jail.operator_user
        )));
    }
    if tunnel == operator {
        return Err(Error::invalid(format!(
            "--tunnel-user and --operator-user are both {tunnel}: devices and operators need separate accounts"
        )));
    }
    if !a.binary.is_absolute() {
        return Err(Error::invalid(format!(
            "--binary {}: sshd needs an absolute path",
            a.binary.display()
        )));
    }
    if let DbUrl::Sqlite(p) = a.db
        && !p.is_absolute()
    {
        return Err(Error::invalid(format!(
            "--db {}: sshd runs the command from /, give an absolute path",
            a.db
        )));
    }
    UserName::parse("--command-user", a.command_user)
}

pub fn sshd_config(c: &mut Conn, a: &SshdConfigArgs) -> Result<String, Error> {
    let jail = store::jail(c, a.jail)?;
    let command_user = check_config_args(&jail, a)?;
    let (tunnel, operator) = (&jail.user, &jail.operator_user);
    let pool = store::pool_named(c, &jail.pool)?
        .ok_or_else(|| Error::runtime(format!("jail {} names a missing pool", jail.name)))?;
    let cmd = format!(
        "{} --db {} authorized-keys --jail {} %u %f",
        sshd_word(&a.binary.display().to_string()),
        sshd_word(&a.db.to_string()),
        sshd_word(jail.name.as_str())
    );
    let mut s = String::new();
    let _ = write!(
        s,
        "# sshd_config drop-in for jail {name} (pool {pool}, ports {ports}), made by\n\
         # `warden sshd-config --jail {name}`; regenerate rather than edit.\n\
         # With a plain sshd_config (ListenAddress, HostKey) this makes a jail:\n\
         # devices ({tunnel}) may hold their own reverse forward and nothing else,\n\
         # operators ({op}) may open forwards to granted devices' ports and nothing\n\
         # else, and nobody edits authorized_keys: sshd asks warden at each login.\n\
         \n\
         # Sized for a fleet of {size} on {cores} cores: after a jail restart every\n\
         # device reconnects at once; sshd admits them all, up to what it can\n\
         # authenticate within half the grace time (warden/src/sshd.rs max_startups).\n\
         MaxStartups {ms}\n\
         LoginGraceTime {grace}\n\
         {penalties}\
         # Logs each key's fingerprint and each forward: the jail's own audit trail.\n\
         LogLevel VERBOSE\n{cert}",
        name = jail.name,
        pool = pool.name,
        ports = pool.range,
        op = operator,
        ms = max_startups(pool.range.size(), a.cores),
        size = pool.range.size(),
        cores = a.cores,
        grace = LOGIN_GRACE_SECS,
        penalties = penalties(&a.sshd),
        cert = match (a.host_certificate, &pool.host_ca) {
            (Some(p), _) => format!(
                "# Devices of pool {} trust its host CA, which signed this certificate.\nHostCertificate {}\n",
                pool.name,
                sshd_word(&p.display().to_string())
            ),
            (None, Some(_)) => format!(
                "# Pool {} has a host CA: add `HostCertificate PATH` (warden jail sign {}).\n",
                pool.name, jail.name
            ),
            (None, None) => String::new(),
        },
    );
    let claim_keys_cmd = format!("{cmd} %t %k");
    let serve_cmd = claim_serve_command(a.binary, a.db, &jail.name)?;
    s.push_str(&match_blocks(
        &cmd,
        &command_user,
        tunnel,
        operator,
        (&jail.claim_user, &claim_keys_cmd, &serve_cmd),
    ));
    Ok(s)
}

/// sshd's question, decided from typed rows alone (no I/O): may the key
/// with `fingerprint` log in as `user` at `jail` as a device? `Ok(line)` only
/// for a verified yes; `Err(why)` for every no.
pub fn decide_device(
    jail: &Jail,
    user: &str,
    fingerprint: &str,
    device: Option<&store::Device>,
) -> Result<String, Refusal> {
    let Some(d) = device else {
        return Err(Refusal::new(
            "not_enrolled",
            format!(
                "key {fingerprint} is not enrolled (user {user}, jail {})",
                jail.name
            ),
        ));
    };
    if jail.user != *user {
        return Err(Refusal::new(
            "wrong_user",
            format!(
                "key {fingerprint} is device {}'s, which logs in as {}, not {user}",
                d.id, jail.user
            ),
        ));
    }
    if d.revoked {
        return Err(Refusal::new(
            "revoked",
            format!("device {} is revoked", d.id),
        ));
    }
    if d.pool != jail.pool {
        return Err(Refusal::new(
            "wrong_pool",
            format!(
                "device {} is in pool {}, jail {} serves pool {}",
                d.id, d.pool, jail.name, jail.pool
            ),
        ));
    }
    // The row's key was decoded and its stored fingerprint checked against
    // it (store/row.rs); it must also be the key sshd asked about.
    if d.key.fingerprint != fingerprint {
        return Err(Refusal::new(
            "key_mismatch",
            format!(
                "device {}: stored key hashes to {}, not {fingerprint}",
                d.id, d.key.fingerprint
            ),
        ));
    }
    Ok(device_key_line(d.port, &d.key, &d.id))
}

/// The operator account's decision from typed rows: one line opening
/// exactly the granted, unrevoked devices' ports, or why not.
pub fn decide_operator(
    jail: &Jail,
    fingerprint: &str,
    device: Option<&store::Device>,
    op: Option<&store::OperatorKey>,
    granted: &[(DeviceId, u16)],
) -> Result<String, Refusal> {
    if let Some(d) = device {
        return Err(Refusal::new(
            "device_key_as_operator",
            format!("key {fingerprint} is device {}'s, not an operator's", d.id),
        ));
    }
    let Some(op) = op else {
        return Err(Refusal::new(
            "not_an_operator",
            format!(
                "key {fingerprint} is not an operator's (user {}, jail {})",
                jail.operator_user, jail.name
            ),
        ));
    };
    if op.disabled {
        return Err(Refusal::new(
            "operator_disabled",
            format!("operator {} is disabled", op.operator),
        ));
    }
    if op.key.fingerprint != fingerprint {
        return Err(Refusal::new(
            "key_mismatch",
            format!(
                "operator {}: stored key hashes to {}, not {fingerprint}",
                op.operator, op.key.fingerprint
            ),
        ));
    }
    if granted.is_empty() {
        return Err(Refusal::new(
            "no_grant",
            format!(
                "operator {} holds no live grant in pool {}",
                op.operator, jail.pool
            ),
        ));
    }
    let opens: Vec<String> = granted
        .iter()
        .flat_map(|(_, p)| {
            [
                format!("permitopen=\"localhost:{p}\""),
                format!("permitopen=\"127.0.0.1:{p}\""),
            ]
        })
        .collect();
    Ok(format!(
        "restrict,port-forwarding,{},command=\"/bin/false\" {} warden-operator:{}",
        opens.join(","),
        op.key.line(),
        op.operator
    ))
}

/// The key line for an enrolled device: its own forward and nothing else.
pub fn device_key_line(port: u16, key: &PublicKey, id: &DeviceId) -> String {
    format!(
        "restrict,port-forwarding,permitlisten=\"localhost:{port}\",permitlisten=\"127.0.0.1:{port}\",permitopen=\"{fence}\",command=\"/bin/false\" {key} warden:{id}",
        key = key.line(),
        fence = jailbird::limits::DIRECT_TCPIP_FENCE
    )
}

/// sshd's question: may the key with `fingerprint` log in as `user` at jail
/// `jail`? `Ok(Ok(line))` only for a verified yes; `Ok(Err(why))` for every no.
pub fn authorize(
    db: &DbUrl,
    jail: &str,
    user: &str,
    fingerprint: &str,
    offered: Option<(&str, &str)>,
) -> Result<Result<String, Refusal>, Error> {
    if !crate::types::is_fingerprint(fingerprint) {
        return Ok(Err(Refusal::new(
            "bad_fingerprint",
            format!(
                "fingerprint {} is not SHA256:... (sshd's %f)",
                crate::types::quote(fingerprint)
            ),
        )));
    }
    let mut c = Conn::open(db, Mode::HotPath)?;
    let login = store::login_lookup(&mut c, jail, fingerprint)?;
    if login.jail.claim_user == *user {
        let key = match offered {
            Some((t, k)) => match PublicKey::parse("offered key", &format!("{t} {k}")) {
                Ok(key) => Some(key),
                Err(e) => return Ok(Err(Refusal::new("claim_refused", e.to_string()))),
            },
            None => None,
        };
        let binary = std::env::current_exe()
            .map_err(|e| Error::runtime(format!("cannot tell this binary's path: {e}")))?;
        let serve_cmd = match claim_serve_command(&binary, db, &login.jail.name) {
            Ok(c) => c,
            Err(e) => return Ok(Err(Refusal::new("claim_refused", e.to_string()))),
        };
        return Ok(
            decide_claim(&login.jail, user, fingerprint, key.as_ref(), &serve_cmd)
                .map_err(|why| Refusal::new("claim_refused", why)),
        );
    }
    if login.jail.operator_user == *user {
        return authorize_operator(&mut c, &login.jail, fingerprint, login.device.as_ref());
    }
    let answer = decide_device(&login.jail, user, fingerprint, login.device.as_ref());
    if let (Ok(_), Some(d)) = (&answer, &login.device) {
        store::touch_last_seen(&mut c, &d.id, store::now());
        // Run by hand as root, the write above may have made WAL files root's.
        c.fix_ownership();
    }
    Ok(answer)
}

/// The operator account's question: the decision above. Nothing is written:
/// a key offered is not a login (anyone holding an operator's public key can
/// offer it); `watch` audits the sessions that exist.
fn authorize_operator(
    c: &mut Conn,
    jail: &Jail,
    fingerprint: &str,
    device: Option<&store::Device>,
) -> Result<Result<String, Refusal>, Error> {
    let op = match device {
        Some(_) => None,
        None => store::operator_for_key(c, fingerprint)?,
    };
    let granted = match &op {
        Some(o) if !o.disabled => store::granted_ports(c, &o.operator, &jail.pool, store::now())?,
        _ => Vec::new(),
    };
    Ok(decide_operator(
        jail,
        fingerprint,
        device,
        op.as_ref(),
        &granted,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Device, OperatorKey};
    use crate::types::HostPort;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINwBRt0Qxuq56ihKXUbgbbFcD2ZEH/yqNpNyWsKYU9sk";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIPnQZbLoMoBPjNxRMBlbH2HRxRXYIJEW5cabRNHNfot";

    fn key(s: &str) -> PublicKey {
        PublicKey::parse("k", s).unwrap()
    }

    fn jail() -> Jail {
        Jail {
            name: Name::parse("j", "j1").unwrap(),
            pool: Name::parse("p", "p1").unwrap(),
            address: HostPort::parse("a", "jail.example:8022", Some(22)).unwrap(),
            host_key: key(K2),
            user: UserName::parse("u", "tunuser").unwrap(),
            operator_user: UserName::parse("u", "operator").unwrap(),
            claim_user: UserName::parse("u", "claim").unwrap(),
        }
    }

    fn device() -> Device {
        let k = key(K1);
        Device {
            id: DeviceId::parse("d1").unwrap(),
            mac: None,
            pool: Name::parse("p", "p1").unwrap(),
            port: 10007,
            target: HostPort::parse("t", "127.0.0.1:22", None).unwrap(),
            revoked: false,
            online: None,
            last_seen: None,
            online_since: None,
            offline_since: None,
            enrolled: String::new(),
            revoked_at: None,
            labels: Default::default(),
            fingerprint: k.fingerprint.clone(),
            key: k,
        }
    }

    #[test]
    fn a_device_gets_its_own_port_and_nothing_else() {
        let (j, d) = (jail(), device());
        let fp = d.fingerprint.clone();
        let line = decide_device(&j, "tunuser", &fp, Some(&d)).unwrap();
        assert!(line.starts_with("restrict,port-forwarding,permitlisten=\"localhost:10007\","));
        assert!(line.ends_with(&format!("{K1} warden:d1")), "{line}");
        assert_eq!(line.matches("permitlisten").count(), 2);
    }

    #[test]
    fn every_no_is_a_no() {
        let (j, d) = (jail(), device());
        let fp = d.fingerprint.clone();
        let no = |j: &Jail, user: &str, fp: &str, d: Option<&Device>| {
            decide_device(j, user, fp, d).expect_err("admitted")
        };
        assert!(no(&j, "tunuser", &fp, None).contains("not enrolled"));
        assert!(no(&j, "root", &fp, Some(&d)).contains("not root"));
        let mut revoked = device();
        revoked.revoked = true;
        assert!(no(&j, "tunuser", &fp, Some(&revoked)).contains("revoked"));
        let mut other_pool = device();
        other_pool.pool = Name::parse("p", "p2").unwrap();
        assert!(no(&j, "tunuser", &fp, Some(&other_pool)).contains("pool p2"));
        let other_fp = key(K2).fingerprint;
        assert!(no(&j, "tunuser", &other_fp, Some(&d)).contains("hashes to"));
    }

    #[test]
    fn an_operator_opens_exactly_the_granted_ports() {
        let j = jail();
        let k = key(K2);
        let fp = k.fingerprint.clone();
        let op = OperatorKey {
            operator: Name::parse("o", "alice").unwrap(),
            disabled: false,
            key: k,
        };
        let granted = vec![
            (DeviceId::parse("d1").unwrap(), 10007),
            (DeviceId::parse("d2").unwrap(), 10009),
        ];
        let line = decide_operator(&j, &fp, None, Some(&op), &granted).unwrap();
        assert_eq!(line.matches("permitopen=").count(), 4, "{line}");
        assert!(line.contains("permitopen=\"127.0.0.1:10009\""));
        assert!(line.ends_with("warden-operator:alice"));
        assert!(decide_operator(&j, &fp, None, Some(&op), &[]).is_err());
        assert!(decide_operator(&j, &fp, None, None, &granted).is_err());
        assert!(decide_operator(&j, &fp, Some(&device()), Some(&op), &granted).is_err());
        let disabled = OperatorKey {
            disabled: true,
            ..op
        };
        assert!(decide_operator(&j, &fp, None, Some(&disabled), &granted).is_err());
    }

    const SERVE: &str =
        "/usr/bin/warden --db sqlite:///var/lib/warden/registry.db claim-serve --jail j1";

    #[test]
    fn the_claim_account_admits_any_key_to_the_forced_command_only() {
        let j = jail();
        let k = key(K1);
        let line = decide_claim(&j, "claim", &k.fingerprint, Some(&k), SERVE).unwrap();
        assert_eq!(
            line,
            format!("restrict,command=\"{SERVE}\" {K1} warden-claim")
        );
        // Another account, no key, a key that is not %f's: no line.
        assert!(decide_claim(&j, "tunuser", &k.fingerprint, Some(&k), SERVE).is_err());
        assert!(decide_claim(&j, "operator", &k.fingerprint, Some(&k), SERVE).is_err());
        assert!(decide_claim(&j, "claim", &k.fingerprint, None, SERVE).is_err());
        let other = key(K2).fingerprint;
        assert!(decide_claim(&j, "claim", &other, Some(&k), SERVE).is_err());
        // A command that would break out of command="...": no line.
        assert!(decide_claim(&j, "claim", &k.fingerprint, Some(&k), "x\" y").is_err());
        // The offered key comes back as parsed (no comment, no options).
        let with_comment = PublicKey::parse("k", &format!("{K1} evil\" comment")).unwrap();
        let line = decide_claim(&j, "claim", &k.fingerprint, Some(&with_comment), SERVE).unwrap();
        assert!(line.ends_with(&format!("{K1} warden-claim")), "{line}");
    }

    #[test]
    fn the_claim_block_closes_everything_but_the_command() {
        let db = DbUrl::parse("sqlite:///var/lib/warden/registry.db").unwrap();
        let j = jail();
        let cmd = claim_serve_command(Path::new("/usr/bin/warden"), &db, &j.name).unwrap();
        assert_eq!(cmd, SERVE);
        let b = claim_block(
            &j.claim_user,
            "/usr/bin/warden authorized-keys --jail j1 %u %f %t %k",
            &cmd,
            &UserName::parse("u", "warden").unwrap(),
        );
        for want in [
            "Match User claim\n",
            "\tExposeAuthInfo yes\n",
            "\tPermitTTY no\n",
            "\tAllowTcpForwarding no\n",
            "\tAllowStreamLocalForwarding no\n",
            "\tX11Forwarding no\n",
            "\tPermitTunnel no\n",
            "\tAuthorizedKeysFile none\n",
            &format!("\tForceCommand {SERVE}\n"),
        ] {
            assert!(b.contains(want), "{want:?} missing from\n{b}");
        }
        let pg = DbUrl::parse("postgres://w@127.0.0.1/reg?sslmode=disable").unwrap();
        let c = claim_serve_command(Path::new("/usr/bin/warden"), &pg, &j.name).unwrap();
        assert!(
            c.contains("'postgres://w@127.0.0.1/reg?sslmode=disable'"),
            "{c}"
        );
        assert!(claim_serve_command(Path::new("/opt/a%b/warden"), &db, &j.name).is_err());
        assert!(claim_serve_command(Path::new("/opt/a\"b/warden"), &db, &j.name).is_err());
    }

    #[test]
    fn words_for_sshd() {
        assert_eq!(sshd_word("/usr/bin/warden"), "/usr/bin/warden");
        assert_eq!(sshd_word("/opt/my dir/warden"), "\"/opt/my dir/warden\"");
        assert_eq!(sshd_word("a%b"), "a%%b");
    }

    #[test]
    fn sshd_versions_and_penalties() {
        let v = |s| parse_version(s);
        assert_eq!(
            v("OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026"),
            Some(SshdVersion::OpenSsh(9, 2))
        );
        assert_eq!(
            v("unknown option -- V\nOpenSSH_10.0p2 Debian-7~bpo12+1, OpenSSL 3.0.19"),
            Some(SshdVersion::OpenSsh(10, 0))
        );
        assert_eq!(v("dropbear v2022.83"), None);
        assert!(penalties(&SshdVersion::OpenSsh(9, 8)).contains("\nPerSourcePenalties crash:90s"));
        assert!(penalties(&SshdVersion::OpenSsh(10, 0)).contains("\nPerSourcePenalties "));
        assert!(!penalties(&SshdVersion::OpenSsh(9, 7)).contains("\nPerSourcePenalties"));
        assert!(!penalties(&SshdVersion::Unknown("x".into())).contains("\nPerSourcePenalties"));
    }

    #[test]
    fn max_startups_admits_the_pool_up_to_the_cpu() {
        assert_eq!(max_startups(10, 2), "100:100:100");
        assert_eq!(max_startups(800, 2), "800:100:800");
        // 2 cores authenticate 1,000 logins in 15 s at 30 ms each
        assert_eq!(max_startups(10000, 2), "1000:100:1000");
        assert_eq!(max_startups(10000, 16), "8000:100:8000");
        assert_eq!(max_startups(10000, 0), "500:100:500");
    }
}
