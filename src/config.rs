//! The typed, validated configuration. Flags win over `JAILBIRD_*` variables,
//! which win over the autossh container's `SSH_*` names, which win over the
//! compiled-in defaults: that order is `Lookup`, and each option is then
//! resolved by a small `resolve_*` step. Everything is parsed here, once;
//! nothing downstream re-parses a string.
//!
//! Submodules hold the parts with a concern of their own: `authorize` (the
//! `--listen`/`--open` permit), `autossh` (the container's composite
//! `SSH_OPTIONS` and tunnel variables) and `trust` (host-key sources).

mod authorize;
mod autossh;
mod trust;

use crate::cli::{Args, Secret, Verb, env};
use crate::hostkey::TrustSources;
use crate::limits::MAX_JAILS;
use crate::options::{Options, parse_ciphers};
use crate::spec::{self, MAX_ALIVE_COUNT, bad, parse_port, parse_secs, parse_yes_no};
pub use crate::spec::{
    ConfigError, Jail, LocalForward, ProxyUrl, RemoteForward, expand_socket_path, parse_destination,
};
use std::path::PathBuf;
use std::time::Duration;
pub use trust::parse_host_key;

/// Compiled-in defaults (`JAILBIRD_DEFAULT_*`, checked by build.rs).
pub use crate::defaults;

/// Ciphers `-o Ciphers=` may name (all AEAD: AES-GCM from ring; ChaCha20-Poly1305
/// from ring, or on x86_64 from vendor/russh/chachapoly).
pub const SUPPORTED_CIPHERS: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
];

/// The tunnel's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    Remote(RemoteForward),
    Local(LocalForward),
}

impl Forward {
    /// The reverse forward, if that is the shape.
    pub fn remote(&self) -> Option<&RemoteForward> {
        match self {
            Forward::Remote(r) => Some(r),
            Forward::Local(_) => None,
        }
    }
}

/// Where the device key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The jailbird state file (created if absent).
    State,
    /// An existing unencrypted OpenSSH private key (`--identity-file`).
    OpenSsh(PathBuf),
}

/// `--claim`: what zero-touch enrolment needs (docs/usage.md "Claiming").
#[derive(Clone, Debug)]
pub struct Claim {
    /// The token: a secret (its `Debug` prints `***`; never logged).
    pub token: Secret,
    /// `--device-id`; `None`: the registry derives it from the MAC.
    pub device_id: Option<String>,
    /// The device's own sshd public host key file (may be missing).
    pub device_host_key: PathBuf,
}

/// Everything `jailbird run` needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The jails in turn; with `claim`, the claim account at each.
    pub jails: heapless::Vec<Jail, MAX_JAILS>,
    /// The tunnel; `None` only with `claim` (the enrolment names it).
    pub forward: Option<Forward>,
    /// Enrol with a token first if the state file holds no enrolment.
    pub claim: Option<Claim>,
    pub state_path: PathBuf,
    pub key: KeySource,
    pub trust: TrustSources,
    /// `None` when ServerAliveInterval=0.
    pub alive_interval: Option<Duration>,
    pub alive_count_max: u32,
    pub connect_timeout: Duration,
    pub stream_local_bind_unlink: bool,
    /// Where the state of the tunnel (jail, listen address with the allocated
    /// port) is written; `None`: nowhere.
    pub status_file: Option<PathBuf>,
    /// Cipher preference, most preferred first (names from [`SUPPORTED_CIPHERS`]).
    pub ciphers: heapless::Vec<&'static str, 4>,
    /// An OpenSSH user certificate of the device key to log in with.
    pub certificate: Option<PathBuf>,
    /// The HTTP CONNECT proxy every jail is reached through, if any.
    pub proxy: Option<ProxyUrl>,
}

/// What an authorized_keys line lets the device do on the jail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permit {
    /// `--listen [ADDR:]PORT` or `/path.sock` (for `-R`): `permitlisten`.
    Listen(String),
    /// `--open HOST:PORT` (for `-L`): `permitopen`.
    Open(String),
}

/// What the command line asks for.
#[derive(Clone, Debug)]
pub enum Command {
    Help,
    Version,
    Key {
        state_path: PathBuf,
        key: KeySource,
    },
    Authorize {
        state_path: PathBuf,
        key: KeySource,
        permit: Permit,
        comment: Option<String>,
    },
    Run(Box<RunConfig>),
}

/// Builds the command from parsed flags and an environment lookup.
pub fn build(
    mut args: Args,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, ConfigError> {
    let var = |name: &str| getenv(name).filter(|v| !v.is_empty());
    let l = Lookup {
        var: &var,
        // Read for `run` only: key and authorize take none of its options.
        ssh_options: Options::default(),
    };
    let state_path = resolve_state_path(&l, args.state.take());
    let key = resolve_key(&l, args.identity_file.take());
    let verb = args
        .verb
        .ok_or_else(|| bad("no command given (expected key, authorize or run; see --help)"))?;
    check_flags_fit(verb, &args)?;
    match verb {
        Verb::Help => Ok(Command::Help),
        Verb::Version => Ok(Command::Version),
        Verb::Key => Ok(Command::Key { state_path, key }),
        Verb::Authorize => authorize::build(args, state_path, key),
        Verb::Run => build_run(args, &var, state_path, key).map(|c| Command::Run(Box::new(c))),
    }
}

/// Refuses a flag given to a verb that does not take it (`key -R ...`, say).
fn check_flags_fit(verb: Verb, args: &Args) -> Result<(), ConfigError> {
    if verb != Verb::Run {
        for (given, flag) in [
            (args.remote.is_some(), "-R"),
            (args.local.is_some(), "-L"),
            (args.port.is_some(), "-p"),
            (!args.options.is_empty(), "-o"),
            (args.destination.is_some(), "a destination"),
            (args.known_hosts.is_some(), "--known-hosts"),
            (args.host_key.is_some(), "--host-key"),
            (args.host_ca.is_some(), "--host-ca"),
            (args.certificate.is_some(), "--certificate"),
            (args.proxy.is_some(), "--proxy"),
            (args.claim.is_some(), "--claim"),
            (args.claim_user.is_some(), "--claim-user"),
            (args.device_id.is_some(), "--device-id"),
            (args.device_host_key.is_some(), "--device-host-key"),
        ] {
            if given {
                return Err(bad(format!("{flag} is only for `jailbird run`")));
            }
        }
    }
    if verb != Verb::Authorize
        && (args.listen.is_some() || args.open.is_some() || args.comment.is_some())
    {
        return Err(bad(
            "--listen, --open and --comment are only for `jailbird authorize`",
        ));
    }
    Ok(())
}

/// The one lookup: a flag (including `-o`), else the first set variable of
/// `names` (JAILBIRD_* before SSH_*), else SSH_OPTIONS; the caller applies the
/// compiled-in default.
struct Lookup<'a> {
    var: &'a dyn Fn(&str) -> Option<String>,
    /// The words of SSH_OPTIONS.
    ssh_options: Options,
}

impl Lookup<'_> {
    fn get(&self, flag: Option<String>, names: &[&str]) -> Option<String> {
        flag.or_else(|| names.iter().find_map(|n| (self.var)(n)))
    }
    fn get_or_ssh(
        &self,
        flag: Option<String>,
        names: &[&str],
        ssh_option: Option<String>,
    ) -> Option<String> {
        self.get(flag, names).or(ssh_option)
    }
}

/// The identity file path: `--state`, else JAILBIRD_STATE, else the default.
fn resolve_state_path(l: &Lookup, flag: Option<String>) -> PathBuf {
    PathBuf::from(
        l.get(flag, &[env::STATE])
            .unwrap_or_else(|| defaults::STATE_PATH.into()),
    )
}

/// An OpenSSH key file if one is named anywhere, else the state file.
fn resolve_key(l: &Lookup, flag: Option<String>) -> KeySource {
    match l.get(flag, &[env::IDENTITY_FILE, env::SSH_KEY_FILE]) {
        Some(p) => KeySource::OpenSsh(p.into()),
        // The container's mount, as-is: the key the jail already authorizes
        // stays in one file (read-only is fine, replacing it rotates the key).
        None => match defaults::IDENTITY_MOUNT.filter(|p| std::path::Path::new(p).is_file()) {
            Some(p) => {
                log::info!("using the mounted key {p} as-is (no key named)");
                KeySource::OpenSsh(p.into())
            }
            None => KeySource::State,
        },
    }
}

/// `jailbird run`: every option resolved, in the order of the fields.
fn build_run(
    mut args: Args,
    var: &dyn Fn(&str) -> Option<String>,
    state_path: PathBuf,
    key: KeySource,
) -> Result<RunConfig, ConfigError> {
    let mut o = Options::default();
    for opt in &args.options {
        o.apply(opt, "-o")?;
    }
    let l = Lookup {
        var,
        ssh_options: autossh::ssh_options(var),
    };
    autossh::check_ip_check(var)?;
    if let Some(w) =
        autossh::ignored(std::env::vars_os().filter_map(|(k, v)| {
            Some((k.into_string().ok()?, v.into_string().unwrap_or_default()))
        }))
    {
        log::warn!("{w}");
    }
    let claim = resolve_claim(&l, &mut args)?;
    // With a claim: the claim account at each jail, and the forward comes later.
    let (claim_user, forward) = match &claim {
        None => (
            None,
            Some(resolve_forward(&l, args.remote.take(), args.local.take())?),
        ),
        Some(_) => {
            refuse_forward_with_claim(&l, args.remote.take(), args.local.take())?;
            (Some(resolve_claim_user(&l, args.claim_user.take())?), None)
        }
    };
    let jails = resolve_jails(
        &l,
        args.port.take(),
        args.destination.take(),
        claim_user.as_deref(),
    )?;

    let trust = trust::resolve_trust(&l, &mut args, &mut o, &key)?;
    let (alive_interval, alive_count_max, connect_timeout) = resolve_timers(&l, &mut o)?;
    let stream_local_bind_unlink = resolve_unlink(&l, o.unlink.take())?;
    let ciphers = resolve_ciphers(&l, o.ciphers.take())?;
    let status_file = resolve_status_file(&l, args.status_file.take());
    let proxy = resolve_proxy(&l, args.proxy.take())?;
    let certificate = l
        .get(
            args.certificate.take().or(o.certificate_file.take()),
            &[env::CERTIFICATE],
        )
        .map(PathBuf::from);
    Ok(RunConfig {
        claim,
        proxy,
        certificate,
        status_file,
        ciphers,
        jails,
        forward,
        state_path,
        key,
        trust,
        alive_interval,
        alive_count_max,
        connect_timeout,
        stream_local_bind_unlink,
    })
}

/// `--claim TOKEN`, else JAILBIRD_CLAIM, else none; with it `--device-id`
/// and `--device-host-key` (or their variables). The token is never echoed.
fn resolve_claim(l: &Lookup, args: &mut Args) -> Result<Option<Claim>, ConfigError> {
    let token = args
        .claim
        .take()
        .or_else(|| (l.var)(env::CLAIM).map(Secret));
    let device_id = l.get(args.device_id.take(), &[env::DEVICE_ID]);
    let host_key = l.get(args.device_host_key.take(), &[env::DEVICE_HOST_KEY]);
    let Some(token) = token else {
        if args.claim_user.is_some() || device_id.is_some() || host_key.is_some() {
            return Err(bad(
                "--claim-user, --device-id and --device-host-key go with --claim TOKEN (or JAILBIRD_CLAIM)",
            ));
        }
        return Ok(None);
    };
    if !cfg!(feature = "claim") {
        return Err(bad(
            "--claim: claiming is not built into this jailbird (feature claim)",
        ));
    }
    let t = &token.0;
    if t.is_empty()
        || t.len() > crate::limits::MAX_CLAIM_TOKEN_BYTES
        || !t.bytes().all(|b| b.is_ascii_graphic())
    {
        // Said without the value: it is a secret.
        return Err(bad(format!(
            "--claim: the token must be 1 to {} printable ASCII characters without blanks",
            crate::limits::MAX_CLAIM_TOKEN_BYTES
        )));
    }
    if let Some(id) = &device_id
        && !spec::valid_device_id(id)
    {
        return Err(bad(format!(
            "--device-id {:?}: expected 1 to 64 of A-Z a-z 0-9 . _ - (not starting with - or .)",
            id.escape_debug().to_string()
        )));
    }
    let device_host_key = match host_key {
        Some(p) => {
            spec::parse_absolute_path(&p, "--device-host-key")?;
            PathBuf::from(p)
        }
        None => PathBuf::from(defaults::DEVICE_HOST_KEY),
    };
    Ok(Some(Claim {
        token,
        device_id,
        device_host_key,
    }))
}

/// The claim account: `--claim-user`, else JAILBIRD_CLAIM_USER, else `claim`.
fn resolve_claim_user(l: &Lookup, flag: Option<String>) -> Result<String, ConfigError> {
    let user = l
        .get(flag, &[env::CLAIM_USER])
        .unwrap_or_else(|| "claim".into());
    if !spec::valid_user(&user) || user.len() > crate::limits::MAX_USER_BYTES {
        return Err(bad(format!(
            "--claim-user {:?}: not a user name",
            user.escape_debug().to_string()
        )));
    }
    Ok(user)
}

/// With `--claim` the enrolment names the forward: one given here is a mistake.
fn refuse_forward_with_claim(
    l: &Lookup,
    remote: Option<String>,
    local: Option<String>,
) -> Result<(), ConfigError> {
    let given = l.get(remote, &[env::REMOTE_FORWARD]).is_some()
        || l.get(local, &[env::LOCAL_FORWARD]).is_some()
        || (l.var)(env::SSH_TUNNEL_PORT).is_some();
    if given {
        return Err(bad(
            "--claim: the forward comes from the enrolment; drop -R/-L (JAILBIRD_REMOTE_FORWARD, JAILBIRD_LOCAL_FORWARD, SSH_TUNNEL_PORT)",
        ));
    }
    Ok(())
}

/// The jails, in order; a jail naming no user or port takes the default ones.
/// With `claim_user` (the claim account) a destination names no user.
fn resolve_jails(
    l: &Lookup,
    port: Option<String>,
    destination: Option<String>,
    claim_user: Option<&str>,
) -> Result<heapless::Vec<Jail, MAX_JAILS>, ConfigError> {
    let default_port = match l.get(port, &[env::PORT, env::SSH_REMOTE_PORT]) {
        Some(p) => parse_port(&p, "jail port (-p)")?,
        None => defaults::JAIL_PORT,
    };
    let default_user = match claim_user {
        Some(u) => u.to_string(),
        None => (l.var)(env::SSH_REMOTE_USER).unwrap_or_else(|| defaults::USER.into()),
    };
    let dest = l
        .get(destination, &[env::DESTINATION, env::SSH_REMOTE_HOST])
        .or_else(|| defaults::DESTINATION.map(Into::into))
        .ok_or_else(|| {
            bad("no jail given: name DESTINATION, or set JAILBIRD_DESTINATION or SSH_REMOTE_HOST (or build with JAILBIRD_DEFAULT_DESTINATION)")
        })?;
    if claim_user.is_some() && dest.contains('@') {
        return Err(bad(format!(
            "--claim: the destination is HOST[:PORT] without a user (the claim account is --claim-user), not {dest:?}"
        )));
    }
    let mut jails = heapless::Vec::new();
    for jail in spec::parse_destinations(&dest, &default_user, default_port)? {
        jails
            .push(jail)
            .map_err(|_| bad(format!("more than {MAX_JAILS} jails in {dest:?}")))?;
    }
    Ok(jails)
}

/// One tunnel: `-R` or `-L` (never both), else the autossh variables, else
/// the compiled-in forward.
fn resolve_forward(
    l: &Lookup,
    remote: Option<String>,
    local: Option<String>,
) -> Result<Forward, ConfigError> {
    let var = l.var;
    autossh::check_mode(var)?;
    match (
        l.get(remote, &[env::REMOTE_FORWARD]),
        l.get(local, &[env::LOCAL_FORWARD]),
    ) {
        (Some(_), Some(_)) => Err(bad(
            "-R and -L both given: one jailbird holds one tunnel (run a second one for the other)",
        )),
        (Some(spec), None) => Ok(Forward::Remote(parse_remote_forward(&spec)?)),
        (None, Some(spec)) => Ok(Forward::Local(parse_local_forward(&spec)?)),
        (None, None) => match var(env::SSH_TUNNEL_PORT) {
            Some(tp) => autossh::forward(var, &tp),
            None => match (defaults::REMOTE_FORWARD, defaults::LOCAL_FORWARD) {
                (Some(spec), _) => Ok(Forward::Remote(parse_remote_forward(spec)?)),
                (None, Some(spec)) => Ok(Forward::Local(parse_local_forward(spec)?)),
                (None, None) => Err(bad(
                    "no forward given: -R [BIND:]PORT:HOST:HOSTPORT or -L [BIND:]PORT:HOST:HOSTPORT (or JAILBIRD_REMOTE_FORWARD / JAILBIRD_LOCAL_FORWARD, or SSH_TUNNEL_PORT)",
                )),
            },
        },
    }
}

/// ServerAliveInterval (None: off), ServerAliveCountMax and ConnectTimeout.
fn resolve_timers(
    l: &Lookup,
    o: &mut Options,
) -> Result<(Option<Duration>, u32, Duration), ConfigError> {
    let so = &l.ssh_options;
    let secs = |flag: Option<String>, names: &[&str], ssh: &Option<String>, what: &str| {
        l.get_or_ssh(flag, names, ssh.clone())
            .map(|v| parse_secs(&v, what))
            .transpose()
    };
    let interval = secs(
        o.alive_interval.take(),
        &[env::SERVER_ALIVE_INTERVAL, env::SSH_SERVER_ALIVE_INTERVAL],
        &so.alive_interval,
        "ServerAliveInterval",
    )?
    .unwrap_or(defaults::ALIVE_INTERVAL_SECS);
    let count = secs(
        o.alive_count.take(),
        &[env::SERVER_ALIVE_COUNT_MAX, env::SSH_SERVER_ALIVE_COUNT_MAX],
        &so.alive_count,
        "ServerAliveCountMax",
    )?
    .unwrap_or(defaults::ALIVE_COUNT_MAX.into());
    if count == 0 || count > MAX_ALIVE_COUNT {
        return Err(bad(format!(
            "ServerAliveCountMax={count}: expected 1..={MAX_ALIVE_COUNT}"
        )));
    }
    let connect = secs(
        o.connect_timeout.take(),
        &[env::CONNECT_TIMEOUT],
        &so.connect_timeout,
        "ConnectTimeout",
    )?
    .unwrap_or(defaults::CONNECT_TIMEOUT_SECS);
    if connect == 0 {
        return Err(bad("ConnectTimeout=0: expected at least 1 second"));
    }
    Ok((
        (interval > 0).then(|| Duration::from_secs(interval)),
        count as u32,
        Duration::from_secs(connect),
    ))
}

/// StreamLocalBindUnlink: whether the jail removes a stale socket first; off by default.
fn resolve_unlink(l: &Lookup, flag: Option<String>) -> Result<bool, ConfigError> {
    let so = &l.ssh_options.unlink;
    match l.get_or_ssh(flag, &[env::STREAM_LOCAL_BIND_UNLINK], so.clone()) {
        Some(v) => parse_yes_no(&v, "StreamLocalBindUnlink"),
        None => Ok(false),
    }
}

/// The cipher preference; the compiled-in one if none is named.
fn resolve_ciphers(
    l: &Lookup,
    flag: Option<String>,
) -> Result<heapless::Vec<&'static str, 4>, ConfigError> {
    let so = &l.ssh_options.ciphers;
    parse_ciphers(l.get_or_ssh(flag, &[env::CIPHERS], so.clone()).as_deref())
}

/// The status file: named, else systemd's RuntimeDirectory= if the unit has
/// one (tmpfs, never flash), else none; never a guessable name in a
/// world-writable /tmp.
fn resolve_status_file(l: &Lookup, flag: Option<String>) -> Option<PathBuf> {
    l.get(flag, &[env::STATUS_FILE])
        .map(PathBuf::from)
        .or_else(|| (l.var)("RUNTIME_DIRECTORY").map(|d| PathBuf::from(d).join("status")))
}

/// The HTTP CONNECT proxy: `--proxy`, else JAILBIRD_PROXY, else none. The
/// conventional `https_proxy`/`no_proxy` are not read (docs/usage.md says
/// why): a proxy is used only when this agent's own configuration names it.
fn resolve_proxy(l: &Lookup, flag: Option<String>) -> Result<Option<ProxyUrl>, ConfigError> {
    let Some(url) = l.get(flag, &[env::PROXY]) else {
        return Ok(None);
    };
    if !cfg!(feature = "proxy") {
        // The URL may hold a password: not echoed.
        return Err(bad(
            "--proxy: HTTP proxies are not built into this jailbird (feature proxy)",
        ));
    }
    spec::parse_proxy_url(&url, "--proxy").map(Some)
}

/// `-R` with this build's capabilities: the syntax is [`spec::parse_remote_forward`]'s.
pub fn parse_remote_forward(s: &str) -> Result<RemoteForward, ConfigError> {
    if s.starts_with('/') && !cfg!(feature = "streamlocal") {
        return Err(bad(format!(
            "-R {s:?}: unix-socket forwards are not built into this jailbird (feature streamlocal)"
        )));
    }
    spec::parse_remote_forward(s)
}

/// `-L` with this build's capabilities: the syntax is [`spec::parse_local_forward`]'s.
pub fn parse_local_forward(s: &str) -> Result<LocalForward, ConfigError> {
    if !cfg!(feature = "local-forward") {
        return Err(bad(format!(
            "-L {s:?}: local forwards are not built into this jailbird (feature local-forward)"
        )));
    }
    spec::parse_local_forward(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse;
    use std::collections::HashMap;

    /// One source of a value: words added to the command line, or a variable.
    #[derive(Clone, Copy)]
    enum Src {
        Flag(&'static str),
        Var(&'static str, &'static str),
    }

    /// For every option, its sources from strongest to weakest and the value
    /// each gives: applying sources k.. must give source k's value (flag >
    /// JAILBIRD_* > SSH_* / SSH_OPTIONS), and none gives the default.
    #[test]
    fn authorize_refuses_control_characters() {
        for (flag, v) in [
            ("--comment", "a\nb"),
            ("--listen", "2022\r"),
            ("--open", "h:22\u{1b}"),
        ] {
            let args = parse(["authorize", flag, v].map(std::ffi::OsString::from)).unwrap();
            let e = build(args, &|_| None).unwrap_err().to_string();
            assert!(
                e.contains("control character") && !e.contains('\n'),
                "{flag}: {e}"
            );
        }
    }

    #[test]
    fn the_status_file_is_never_in_tmp_by_default() {
        let c = run("run -R 2022:127.0.0.1:22 jail", &[]).unwrap();
        assert_eq!(c.status_file, None);
        let c = run(
            "run -R 2022:127.0.0.1:22 jail",
            &[("RUNTIME_DIRECTORY", "/run/jailbird")],
        )
        .unwrap();
        assert_eq!(c.status_file, Some(PathBuf::from("/run/jailbird/status")));
        let c = run(
            "run --status-file /run/x -R 2022:127.0.0.1:22 jail",
            &[("RUNTIME_DIRECTORY", "/run/jailbird")],
        )
        .unwrap();
        assert_eq!(c.status_file, Some(PathBuf::from("/run/x")));
    }

    #[test]
    fn precedence_is_one_order_for_every_option() {
        use Src::{Flag, Var};
        type Get = fn(&RunConfig) -> String;
        type Row = (&'static str, Vec<(Src, &'static str)>, &'static str, Get);
        let table: Vec<Row> = vec![
            (
                "ServerAliveInterval",
                vec![
                    (Flag("-o ServerAliveInterval=1"), "1"),
                    (Var(env::SERVER_ALIVE_INTERVAL, "2"), "2"),
                    (Var(env::SSH_SERVER_ALIVE_INTERVAL, "3"), "3"),
                    (Var(env::SSH_OPTIONS, "-o ServerAliveInterval=4"), "4"),
                ],
                "10",
                |c| c.alive_interval.map_or(0, |d| d.as_secs()).to_string(),
            ),
            (
                "ServerAliveCountMax",
                vec![
                    (Flag("-o ServerAliveCountMax=5"), "5"),
                    (Var(env::SERVER_ALIVE_COUNT_MAX, "6"), "6"),
                    (Var(env::SSH_SERVER_ALIVE_COUNT_MAX, "7"), "7"),
                    (Var(env::SSH_OPTIONS, "-oServerAliveCountMax=8"), "8"),
                ],
                "3",
                |c| c.alive_count_max.to_string(),
            ),
            (
                "ConnectTimeout",
                vec![
                    (Flag("-o ConnectTimeout=1"), "1"),
                    (Var(env::CONNECT_TIMEOUT, "2"), "2"),
                    (Var(env::SSH_OPTIONS, "-o ConnectTimeout=4"), "4"),
                ],
                "15",
                |c| c.connect_timeout.as_secs().to_string(),
            ),
            (
                "StrictHostKeyChecking",
                vec![
                    (Flag("-o StrictHostKeyChecking=yes"), "false"),
                    (Var(env::STRICT_HOST_KEY_CHECKING, "accept-new"), "true"),
                    (
                        Var(env::SSH_OPTIONS, "-o StrictHostKeyChecking=yes"),
                        "false",
                    ),
                ],
                "false",
                |c| c.trust.accept_new.to_string(),
            ),
            (
                "StreamLocalBindUnlink",
                vec![
                    (Flag("-o StreamLocalBindUnlink=no"), "false"),
                    (Var(env::STREAM_LOCAL_BIND_UNLINK, "yes"), "true"),
                    (
                        Var(env::SSH_OPTIONS, "-o StreamLocalBindUnlink=no"),
                        "false",
                    ),
                ],
                "false",
                |c| c.stream_local_bind_unlink.to_string(),
            ),
            (
                "Ciphers",
                vec![
                    (
                        Flag("-o Ciphers=aes128-gcm@openssh.com"),
                        "aes128-gcm@openssh.com",
                    ),
                    (
                        Var(env::CIPHERS, "aes256-gcm@openssh.com"),
                        "aes256-gcm@openssh.com",
                    ),
                    (
                        Var(env::SSH_OPTIONS, "-o Ciphers=chacha20-poly1305@openssh.com"),
                        "chacha20-poly1305@openssh.com",
                    ),
                ],
                defaults::CIPHERS[0],
                |c| c.ciphers[0].to_string(),
            ),
            (
                "known_hosts",
                vec![
                    (Flag("--known-hosts /a"), "/a"),
                    (Flag("-o UserKnownHostsFile=/b"), "/b"),
                    (Var(env::KNOWN_HOSTS, "/c"), "/c"),
                    (Var(env::SSH_KNOWN_HOSTS_FILE, "/d"), "/d"),
                    (Var(env::SSH_OPTIONS, "-o UserKnownHostsFile=/e"), "/e"),
                ],
                "none",
                |c| {
                    c.trust
                        .known_hosts
                        .as_ref()
                        .map_or("none".into(), |p| p.display().to_string())
                },
            ),
            (
                "certificate",
                vec![
                    (Flag("--certificate /a"), "/a"),
                    (Flag("-o CertificateFile=/b"), "/b"),
                    (Var(env::CERTIFICATE, "/c"), "/c"),
                ],
                "none",
                |c| {
                    c.certificate
                        .as_ref()
                        .map_or("none".into(), |p| p.display().to_string())
                },
            ),
            (
                // The conventional proxy variables are weakest and give
                // nothing: a proxy is used only when named for jailbird.
                "proxy",
                vec![
                    (Flag("--proxy http://a:1"), "http://a:1"),
                    (Var(env::PROXY, "http://u:p@b:2"), "http://b:2"),
                    (Var("https_proxy", "http://c:3"), "none"),
                    (Var("HTTPS_PROXY", "http://d:4"), "none"),
                    (Var("http_proxy", "http://e:5"), "none"),
                    (Var("all_proxy", "http://f:6"), "none"),
                ],
                "none",
                |c| c.proxy.as_ref().map_or("none".into(), |p| p.to_string()),
            ),
            (
                "jail port",
                vec![
                    (Flag("-p 1"), "1"),
                    (Var(env::PORT, "2"), "2"),
                    (Var(env::SSH_REMOTE_PORT, "3"), "3"),
                ],
                "22",
                |c| c.jails[0].port.to_string(),
            ),
        ];
        for (name, sources, default, get) in &table {
            for k in 0..=sources.len() {
                let mut cmd = String::from("run");
                let mut vars: Vec<(&str, &str)> = Vec::new();
                for (src, _) in &sources[k..] {
                    match src {
                        Flag(words) => {
                            cmd.push(' ');
                            cmd.push_str(words);
                        }
                        Var(n, v) => vars.push((n, v)),
                    }
                }
                cmd.push_str(" -R 2022:127.0.0.1:22 tunuser@jail");
                let c = run(&cmd, &vars).unwrap_or_else(|e| panic!("{name}: {cmd} {vars:?}: {e}"));
                let want = sources.get(k).map_or(*default, |(_, v)| *v);
                assert_eq!(get(&c), want, "{name}: sources from #{k}: {cmd} {vars:?}");
            }
        }
    }

    fn run(cmd: &str, env: &[(&str, &str)]) -> Result<RunConfig, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args = parse(cmd.split_whitespace().map(Into::into)).map_err(ConfigError)?;
        match build(args, &|k| env.get(k).cloned())? {
            Command::Run(c) => Ok(*c),
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn autossh_line() {
        let c = run("run -p 8022 -R 2022:127.0.0.1:22 tunuser@jail.example", &[]).unwrap();
        assert_eq!(
            c.jails[0],
            Jail {
                user: "tunuser".into(),
                host: "jail.example".into(),
                port: 8022
            }
        );
        assert_eq!(
            c.forward.clone().unwrap(),
            Forward::Remote(RemoteForward {
                socket: None,
                bind: None,
                port: 2022,
                target_host: "127.0.0.1".into(),
                target_port: 22
            })
        );
        assert_eq!(
            c.forward.as_ref().unwrap().remote().unwrap().bind_address(),
            "localhost"
        );
        assert_eq!(c.alive_interval, Some(Duration::from_secs(10)));
        assert_eq!(c.alive_count_max, 3);
        assert!(!c.trust.accept_new);
    }

    #[test]
    fn ssh_env_only() {
        let c = run(
            "run",
            &[
                ("SSH_REMOTE_USER", "bob"),
                ("SSH_REMOTE_HOST", "203.0.113.10"),
                ("SSH_REMOTE_PORT", "2222"),
                ("SSH_TUNNEL_PORT", "11111"),
                ("SSH_TARGET_HOST", "10.1.1.101"),
                ("SSH_TARGET_PORT", "80"),
                ("SSH_BIND_IP", "127.0.0.1"),
                ("SSH_SERVER_ALIVE_INTERVAL", "0"),
                ("SSH_KNOWN_HOSTS_FILE", "/known_hosts"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.jails[0],
            Jail {
                user: "bob".into(),
                host: "203.0.113.10".into(),
                port: 2222
            }
        );
        assert_eq!(
            c.forward
                .as_ref()
                .unwrap()
                .remote()
                .unwrap()
                .bind
                .as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            (
                c.forward.as_ref().unwrap().remote().unwrap().port,
                c.forward.as_ref().unwrap().remote().unwrap().target_port
            ),
            (11111, 80)
        );
        assert_eq!(c.alive_interval, None);
        assert_eq!(c.trust.known_hosts, Some(PathBuf::from("/known_hosts")));
    }

    #[test]
    fn flags_beat_jailbird_env_beat_ssh_env() {
        let env = [
            ("JAILBIRD_SERVER_ALIVE_INTERVAL", "7"),
            ("SSH_SERVER_ALIVE_INTERVAL", "9"),
            ("JAILBIRD_DESTINATION", "a@x"),
            ("SSH_REMOTE_HOST", "y"),
        ];
        let c = run("run -R 1:h:2 -o ServerAliveInterval=5", &env).unwrap();
        assert_eq!(c.alive_interval, Some(Duration::from_secs(5)));
        assert_eq!(c.jails[0].host, "x");
        let c = run("run -R 1:h:2 b@z", &env).unwrap();
        assert_eq!(c.alive_interval, Some(Duration::from_secs(7)));
        assert_eq!(c.jails[0].host, "z");
    }

    #[test]
    fn destinations() {
        let j = parse_destination("u@[::1]:8022", "d", 22).unwrap();
        assert_eq!((j.host.as_str(), j.port), ("::1", 8022));
        assert_eq!(j.to_string(), "[::1]:8022");
        assert_eq!(
            parse_destination("jail", "d", 2200).unwrap(),
            Jail {
                user: "d".into(),
                host: "jail".into(),
                port: 2200
            }
        );
        let c = run("run -R 1:h:2 -p 9 a@j1:7,j2", &[]).unwrap();
        assert_eq!(
            (c.jails[0].port, c.jails[1].port, c.jails[1].user.as_str()),
            (7, 9, "tunuser")
        );
        for bad in ["u@", "@h", "u@h:", "u@h:99999", "u@h x", "u@[::1]", "u@h:0"] {
            assert!(parse_destination(bad, "d", 22).is_err(), "{bad}");
        }
    }

    #[cfg(feature = "local-forward")]
    #[test]
    fn local_forward_flag_and_autossh_env() {
        let c = run("run -L 8080:db.internal:5432 j", &[]).unwrap();
        let want = LocalForward {
            bind: "127.0.0.1".into(),
            port: 8080,
            host: "db.internal".into(),
            host_port: 5432,
        };
        assert_eq!(c.forward.unwrap(), Forward::Local(want));
        let c = run("run -L [::1]:0:[fd00::5]:22 j", &[]).unwrap();
        let Some(Forward::Local(l)) = c.forward else {
            panic!()
        };
        assert_eq!(
            (l.bind.as_str(), l.port, l.host.as_str()),
            ("::1", 0, "fd00::5")
        );
        let c = run("run -L *:1234:h:22 j", &[]).unwrap();
        let Some(Forward::Local(l)) = c.forward else {
            panic!()
        };
        assert_eq!(l.bind_address(), "0.0.0.0");
        // The autossh container's docker-compose example for SSH_MODE=-L.
        let env = [
            ("SSH_REMOTE_HOST", "203.0.113.10"),
            ("SSH_REMOTE_PORT", "22222"),
            ("SSH_BIND_IP", "0.0.0.0"),
            ("SSH_TUNNEL_PORT", "1234"),
            ("SSH_TARGET_HOST", "198.168.123.45"),
            ("SSH_TARGET_PORT", "22"),
            ("SSH_MODE", "-L"),
        ];
        let c = run("run", &env).unwrap();
        assert_eq!(c.jails[0].port, 22222);
        assert_eq!(
            c.forward.unwrap(),
            Forward::Local(LocalForward {
                bind: "0.0.0.0".into(),
                port: 1234,
                host: "198.168.123.45".into(),
                host_port: 22,
            })
        );
        for bad in [
            "run -L 8080:h j -R 1:h:2",
            "run -L example.com:80:h:22 j",
            "run -L 80:h:0 j",
            "run -L 70000:h:22 j",
            "run -L 1:2:3:4:5 j",
        ] {
            let e = run(bad, &[]).unwrap_err();
            assert!(
                e.0.starts_with("-L") || e.0.contains("-R and -L"),
                "{bad}: {e}"
            );
        }
        let e = run("run -R 1:h:2 -L 3:h:4 j", &[]).unwrap_err();
        assert!(e.0.contains("one tunnel"), "{e}");
    }

    #[test]
    fn forward_specs() {
        let f = parse_remote_forward("*:2022:[::1]:22").unwrap();
        assert_eq!(f.bind.as_deref(), Some("*"));
        assert_eq!(f.target_host, "::1");
        let f = parse_remote_forward("[::]:0:localhost:8080").unwrap();
        assert_eq!((f.bind.as_deref(), f.port), (Some("::"), 0));
        for bad in [
            "2022",
            "2022:h",
            "a:b:c:d:e",
            "x:2022:h:22:",
            "2022:h:0",
            "70000:h:22",
            "2022:h h:22",
            "/s.sock:h:0",
        ] {
            let e = parse_remote_forward(bad).unwrap_err();
            assert!(e.0.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn ssh_tunnel_port_env_is_checked_like_the_flag() {
        // Found by fuzz/fuzz_targets/config_build.rs: SSH_TUNNEL_PORT built a
        // reverse forward to target port 0 (the -R flag form refuses it).
        let env = [("SSH_REMOTE_HOST", "j"), ("SSH_TUNNEL_PORT", "1")];
        for (name, value) in [
            ("SSH_TARGET_PORT", "0"),
            ("SSH_TARGET_HOST", "a b"),
            ("SSH_BIND_IP", "0.0.0.0 "),
        ] {
            let e = run("run", &[env[0], env[1], (name, value)]).unwrap_err();
            assert!(e.0.starts_with(name), "{name}={value:?}: {e}");
        }
        let c = run("run", &[env[0], env[1], ("SSH_BIND_IP", "*")]).unwrap();
        assert_eq!(
            c.forward.as_ref().unwrap().remote().unwrap().bind_address(),
            "*"
        );
        let c = run(
            "run",
            &[
                env[0],
                env[1],
                ("SSH_BIND_IP", "[::]"),
                ("SSH_TARGET_HOST", "[::1]"),
            ],
        )
        .unwrap();
        let r = c.forward.as_ref().unwrap().remote().unwrap();
        assert_eq!((r.bind_address(), r.target_host.as_str()), ("::", "::1"));
    }

    #[test]
    fn unknown_option_error_is_one_line() {
        // Found by fuzz/fuzz_targets/config_build.rs: `-o` echoed a key holding
        // a newline verbatim, making a two-line error.
        let argv = ["run", "-o", "Bo\ngus=1", "-R", "1:h:2", "j"];
        let args = parse(argv.into_iter().map(Into::into)).unwrap();
        let e = build(args, &|_| None).unwrap_err();
        assert!(!e.0.contains('\n') && e.0.contains("Bo"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = run("run -R 1:h:2 -o ServerAliveInterval=soon j", &[]).unwrap_err();
        assert!(e.0.contains("ServerAliveInterval"), "{e}");
        let e = run("run -R 1:h:2 -o StrictHostKeyChecking=no j", &[]).unwrap_err();
        assert!(e.0.contains("StrictHostKeyChecking"), "{e}");
        let e = run("run -R 1:h:2 -o Bogus=1 j", &[]).unwrap_err();
        assert!(e.0.contains("Bogus"), "{e}");
        let e = run("run -R 1:h:2 j", &[("SSH_MODE", "-X")]).unwrap_err();
        assert!(e.0.contains("SSH_MODE"), "{e}");
        assert!(run("run j", &[]).unwrap_err().0.contains("forward"));
        assert!(run("run -R 1:h:2", &[]).unwrap_err().0.contains("jail"));
    }

    #[test]
    fn ciphers_are_validated() {
        let c = run(
            "run -R 1:h:2 -o Ciphers=chacha20-poly1305@openssh.com j",
            &[],
        )
        .unwrap();
        assert_eq!(&c.ciphers[..], &["chacha20-poly1305@openssh.com"]);
        assert_eq!(
            &run("run -R 1:h:2 j", &[]).unwrap().ciphers[..],
            defaults::CIPHERS
        );
        let e = run("run -R 1:h:2 -o Ciphers=3des-cbc j", &[]).unwrap_err();
        assert!(e.0.contains("3des-cbc"), "{e}");
    }

    #[test]
    fn proxy_is_typed_and_its_credentials_never_printed() {
        let c = run(
            "run -R 1:h:2 --proxy http://bob:s%40cret@proxy.lan:3128/ j",
            &[],
        )
        .unwrap();
        let p = c.proxy.as_ref().unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.lan", 3128));
        let cred = p.credentials.as_ref().unwrap();
        assert_eq!(
            (cred.user.as_str(), cred.password.as_str()),
            ("bob", "s@cret")
        );
        let shown = format!("{c:?} {p}");
        assert!(!shown.contains("bob") && !shown.contains("cret"), "{shown}");
        // Bad values: one line, naming the option, never the password.
        for bad in [
            "https://bob:s3cret@p:3128",
            "socks5://bob:s3cret@p:1080",
            "bob:s3cret@p:3128",
            "http://bob:s3cret@p",
            "http://bob:s3cret@p:0",
            "http://bob:s3cret@p:3128/path",
            "http://bob:s3cret@p!q:3128",
            "http://bob:s3cret%zz@p:3128",
            "http://:s3cret@p:3128",
            "http://bob:s3cr%0aet@p:3128",
        ] {
            let e = run(&format!("run -R 1:h:2 --proxy {bad} j"), &[]).unwrap_err();
            assert!(e.0.starts_with("--proxy "), "{bad}: {e}");
            assert!(!e.0.contains("s3cret") && !e.0.contains('\n'), "{bad}: {e}");
        }
        let e = run("run -R 1:h:2 j", &[("JAILBIRD_PROXY", "http://x:s3cret@p")]).unwrap_err();
        assert!(!e.0.contains("s3cret"), "{e}");
        // IPv6 proxies, a user without a password, and no proxy for key/authorize.
        let c = run("run -R 1:h:2 --proxy http://u@[fd00::1]:8080 j", &[]).unwrap();
        let p = c.proxy.unwrap();
        assert_eq!(
            (p.host.as_str(), p.to_string()),
            ("fd00::1", "http://[fd00::1]:8080".into())
        );
        assert_eq!(p.credentials.unwrap().password, "");
        let args = parse(["key", "--proxy", "http://p:1"].map(Into::into)).unwrap();
        assert!(build(args, &|_| None).unwrap_err().0.contains("--proxy"));
    }

    #[cfg(feature = "claim")]
    #[test]
    fn claim_needs_no_forward_and_no_user_and_never_shows_its_token() {
        let c = run("run --claim s3cret jail.example:8022", &[]).unwrap();
        assert!(c.forward.is_none());
        assert_eq!(c.jails[0].user, "claim");
        assert_eq!(
            (c.jails[0].host.as_str(), c.jails[0].port),
            ("jail.example", 8022)
        );
        let claim = c.claim.as_ref().unwrap();
        assert_eq!(claim.token.0, "s3cret");
        assert_eq!(
            claim.device_host_key,
            PathBuf::from("/etc/ssh/ssh_host_ed25519_key.pub")
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        // Environment, and flags over it.
        let env = [
            ("JAILBIRD_CLAIM", "envs3cret"),
            ("JAILBIRD_CLAIM_USER", "enrol"),
            ("JAILBIRD_DEVICE_ID", "pi-7"),
            ("JAILBIRD_DEVICE_HOST_KEY", "/etc/dropbear/host.pub"),
        ];
        let c = run("run j", &env).unwrap();
        let claim = c.claim.as_ref().unwrap();
        assert_eq!(
            (
                claim.token.0.as_str(),
                claim.device_id.as_deref(),
                c.jails[0].user.as_str()
            ),
            ("envs3cret", Some("pi-7"), "enrol")
        );
        assert_eq!(
            claim.device_host_key,
            PathBuf::from("/etc/dropbear/host.pub")
        );
        let c = run("run --claim f --claim-user cu --device-id d2 j", &env).unwrap();
        let claim = c.claim.as_ref().unwrap();
        assert_eq!(
            (
                claim.token.0.as_str(),
                claim.device_id.as_deref(),
                c.jails[0].user.as_str()
            ),
            ("f", Some("d2"), "cu")
        );
        // Mistakes: one line each, never the token.
        for (cmd, want) in [
            ("run --claim s3cret -R 1:h:2 j", "drop -R"),
            ("run --claim s3cret u@j", "without a user"),
            ("run --claim s3cret --device-id -x j", "--device-id"),
            ("run --claim s3cret --claim-user a;b j", "--claim-user"),
            (
                "run --claim s3cret --device-host-key rel.pub j",
                "--device-host-key",
            ),
            ("run --device-id d1 -R 1:h:2 j", "go with --claim"),
        ] {
            let e = run(cmd, &[]).unwrap_err().0;
            assert!(
                e.contains(want) && !e.contains("s3cret") && !e.contains('\n'),
                "{cmd}: {e}"
            );
        }
        let e = run("run j", &[("JAILBIRD_CLAIM", "s3cret\x7f")])
            .unwrap_err()
            .0;
        assert!(e.starts_with("--claim:") && !e.contains("s3cret"), "{e}");
        let args = parse(["key", "--claim", "s3cret"].map(Into::into)).unwrap();
        let e = build(args, &|_| None).unwrap_err().0;
        assert!(e.contains("--claim") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn proxy_command_says_what_to_use_instead() {
        for cmd in [
            "run -R 1:h:2 -o ProxyCommand=nc j",
            "run -R 1:h:2 -o ProxyJump=bastion j",
        ] {
            let e = run(cmd, &[]).unwrap_err();
            assert!(
                e.0.contains("static agent") && e.0.contains("--proxy"),
                "{e}"
            );
        }
        // SSH_OPTIONS words jailbird cannot honour are logged and ignored, as
        // that container passes options meant for ssh.
        let c = run(
            "run -R 1:h:2 j",
            &[("SSH_OPTIONS", "-o ProxyCommand=corkscrew")],
        );
        assert!(c.unwrap().proxy.is_none());
    }

    #[test]
    fn ssh_options_fill_gaps() {
        let c = run(
            "run -R 1:h:2 j",
            &[(
                "SSH_OPTIONS",
                "-o StreamLocalBindUnlink=yes -oServerAliveCountMax=5 -o UseRoaming=no",
            )],
        )
        .unwrap();
        assert!(c.stream_local_bind_unlink);
        assert_eq!(c.alive_count_max, 5);
    }
}
