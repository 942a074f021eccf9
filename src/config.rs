//! The typed, validated configuration. Flags win over `JAILBIRD_*` variables,
//! which win over the autossh container's `SSH_*` names, which win over the
//! compiled-in defaults. Everything is parsed here, once; nothing downstream
//! re-parses a string.

use crate::cli::{Args, Verb, env};
use crate::hostkey::TrustSources;
use crate::limits::MAX_JAILS;
use crate::spec::{
    self, MAX_ALIVE_COUNT, bad, bracket, parse_port, parse_secs, parse_strict, parse_yes_no,
    split_host_port, unbracket, valid_host,
};
pub use crate::spec::{
    ConfigError, Jail, LocalForward, RemoteForward, expand_socket_path, parse_destination,
};
use std::path::PathBuf;
use std::time::Duration;

/// Compiled-in defaults. A firmware build sets them with `JAILBIRD_DEFAULT_*`
/// in the environment of `cargo build` (checked by `build.rs`, which fails the
/// build on a malformed value), so the image's binary runs with no flags at all;
/// flags and the environment still win. `jailbird info` prints them.
pub mod defaults {
    /// A build-time string; empty counts as unset, as an empty variable does at run time.
    const fn text(v: Option<&'static str>) -> Option<&'static str> {
        match v {
            Some(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// A build-time whole number no larger than `max`, or `default` if unset.
    /// build.rs names the variable of a malformed value; this is only a backstop.
    const fn number(v: Option<&'static str>, default: u64, max: u64) -> u64 {
        let Some(s) = text(v) else { return default };
        let (bytes, mut n, mut i) = (s.as_bytes(), 0u64, 0);
        while i < bytes.len() {
            let d = bytes[i];
            assert!(
                d.is_ascii_digit() && n <= max,
                "a JAILBIRD_DEFAULT_* number is malformed (see build.rs)"
            );
            n = n * 10 + (d - b'0') as u64;
            i += 1;
        }
        assert!(
            n <= max,
            "a JAILBIRD_DEFAULT_* number is out of range (see build.rs)"
        );
        n
    }

    /// Jails to connect to, `[USER@]HOST[:PORT][,...]` (`JAILBIRD_DEFAULT_DESTINATION`).
    pub const DESTINATION: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_DESTINATION"));
    /// Jail sshd port where a destination names none (`JAILBIRD_DEFAULT_PORT`).
    pub const JAIL_PORT: u16 = number(option_env!("JAILBIRD_DEFAULT_PORT"), 22, 65535) as u16;
    /// User on the jail where a destination names none (`JAILBIRD_DEFAULT_USER`).
    pub const USER: &str = match text(option_env!("JAILBIRD_DEFAULT_USER")) {
        Some(u) => u,
        None => "tunuser",
    };
    /// `-R` spec when none is given (`JAILBIRD_DEFAULT_REMOTE_FORWARD`).
    pub const REMOTE_FORWARD: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_REMOTE_FORWARD"));
    /// `-L` spec when none is given (`JAILBIRD_DEFAULT_LOCAL_FORWARD`).
    pub const LOCAL_FORWARD: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_LOCAL_FORWARD"));
    /// Identity file path (`JAILBIRD_DEFAULT_STATE`).
    pub const STATE_PATH: &str = match text(option_env!("JAILBIRD_DEFAULT_STATE")) {
        Some(p) => p,
        None => "/var/lib/jailbird/identity",
    };
    /// known_hosts file (`JAILBIRD_DEFAULT_KNOWN_HOSTS`).
    pub const KNOWN_HOSTS: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_KNOWN_HOSTS"));
    /// Pinned jail host key, "TYPE BASE64" (`JAILBIRD_DEFAULT_HOST_KEY`).
    pub const HOST_KEY: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_HOST_KEY"));
    /// `yes` or `accept-new` (`JAILBIRD_DEFAULT_STRICT_HOST_KEY_CHECKING`).
    pub const STRICT_HOST_KEY_CHECKING: &str =
        match text(option_env!("JAILBIRD_DEFAULT_STRICT_HOST_KEY_CHECKING")) {
            Some(v) => v,
            None => "yes",
        };
    /// ServerAliveInterval, seconds; 0 = off (`JAILBIRD_DEFAULT_SERVER_ALIVE_INTERVAL`).
    pub const ALIVE_INTERVAL_SECS: u64 = number(
        option_env!("JAILBIRD_DEFAULT_SERVER_ALIVE_INTERVAL"),
        10,
        crate::spec::MAX_OPTION_SECS,
    );
    /// ServerAliveCountMax (`JAILBIRD_DEFAULT_SERVER_ALIVE_COUNT_MAX`).
    pub const ALIVE_COUNT_MAX: u32 = number(
        option_env!("JAILBIRD_DEFAULT_SERVER_ALIVE_COUNT_MAX"),
        3,
        crate::spec::MAX_ALIVE_COUNT,
    ) as u32;
    /// ConnectTimeout, seconds (`JAILBIRD_DEFAULT_CONNECT_TIMEOUT`).
    pub const CONNECT_TIMEOUT_SECS: u64 = number(
        option_env!("JAILBIRD_DEFAULT_CONNECT_TIMEOUT"),
        15,
        crate::spec::MAX_OPTION_SECS,
    );
    /// Forward target when only a tunnel port is configured (the autossh container's SSH_TUNNEL_PORT).
    pub const TARGET_HOST: &str = "127.0.0.1";
    /// Forward target port when only a tunnel port is configured.
    pub const TARGET_PORT: u16 = 22;
    /// Cipher preference. x86_64 and aarch64 have AES instructions, where ring's
    /// AES-GCM beats ChaCha20-Poly1305; ARMv6/ARMv7 do not, so ChaCha20 leads there.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub const CIPHERS: &[&str] = &[
        "aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com",
        "aes128-gcm@openssh.com",
    ];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub const CIPHERS: &[&str] = &[
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
    ];

    /// Cargo features this binary can have, and whether it was built with each.
    pub const FEATURES: &[(&str, bool)] = &[
        ("dlmalloc", cfg!(feature = "dlmalloc")),
        ("streamlocal", cfg!(feature = "streamlocal")),
        ("local-forward", cfg!(feature = "local-forward")),
        ("rsa", cfg!(feature = "rsa")),
        ("nistp384-521", cfg!(feature = "nistp384-521")),
    ];

    /// What this binary was built with, for `jailbird info` and `--version`: the
    /// version, target, cargo features, limits and every compiled-in default,
    /// each default under the name of the build-time variable that sets it.
    pub fn build_info() -> String {
        use crate::limits;
        let on: Vec<&str> = FEATURES.iter().filter(|f| f.1).map(|f| f.0).collect();
        let off: Vec<&str> = FEATURES.iter().filter(|f| !f.1).map(|f| f.0).collect();
        let mut s = format!(
            "jailbird {}\ntarget: {}\nfeatures: {} (not built in: {})\n",
            env!("CARGO_PKG_VERSION"),
            env!("JAILBIRD_BUILD_TARGET"),
            on.join(" "),
            off.join(" "),
        );
        s += &format!(
            "limits: MAX_CHANNELS={} COPY_BUF_BYTES={} WINDOW_BYTES={} MAX_PACKET_BYTES={} MAX_JAILS={}\n",
            limits::MAX_CHANNELS,
            limits::COPY_BUF_BYTES,
            limits::WINDOW_BYTES,
            limits::MAX_PACKET_BYTES,
            limits::MAX_JAILS,
        );
        s += &format!("ciphers: {}\n", CIPHERS.join(","));
        s += "defaults (build-time variables; flags and the environment win):\n";
        let (port, alive, count, connect) = (
            JAIL_PORT.to_string(),
            ALIVE_INTERVAL_SECS.to_string(),
            ALIVE_COUNT_MAX.to_string(),
            CONNECT_TIMEOUT_SECS.to_string(),
        );
        for (name, value) in [
            ("DESTINATION", DESTINATION.unwrap_or("")),
            ("PORT", &port),
            ("USER", USER),
            ("REMOTE_FORWARD", REMOTE_FORWARD.unwrap_or("")),
            ("LOCAL_FORWARD", LOCAL_FORWARD.unwrap_or("")),
            ("STATE", STATE_PATH),
            ("KNOWN_HOSTS", KNOWN_HOSTS.unwrap_or("")),
            ("HOST_KEY", HOST_KEY.unwrap_or("")),
            ("STRICT_HOST_KEY_CHECKING", STRICT_HOST_KEY_CHECKING),
            ("SERVER_ALIVE_INTERVAL", &alive),
            ("SERVER_ALIVE_COUNT_MAX", &count),
            ("CONNECT_TIMEOUT", &connect),
        ] {
            s += &format!("  JAILBIRD_DEFAULT_{name}={value}\n");
        }
        s
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn numbers_and_text() {
            assert_eq!(super::number(None, 7, 10), 7);
            assert_eq!(super::number(Some(""), 7, 10), 7);
            assert_eq!(super::number(Some("0"), 7, 10), 0);
            assert_eq!(super::number(Some("10"), 7, 10), 10);
            assert_eq!(super::text(Some("")), None);
        }

        #[test]
        fn info_names_every_default() {
            let info = super::build_info();
            assert!(info.starts_with(concat!("jailbird ", env!("CARGO_PKG_VERSION"), "\n")));
            for name in [
                "DESTINATION",
                "PORT",
                "REMOTE_FORWARD",
                "KNOWN_HOSTS",
                "CONNECT_TIMEOUT",
            ] {
                assert!(
                    info.contains(&format!("\n  JAILBIRD_DEFAULT_{name}=")),
                    "{name}: {info}"
                );
            }
            assert!(info.contains(&format!("MAX_CHANNELS={}", crate::limits::MAX_CHANNELS)));
        }
    }
}

/// Ciphers `-o Ciphers=` may name (all AEAD, all backed by ring).
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

/// Everything `jailbird run` needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub jails: heapless::Vec<Jail, MAX_JAILS>,
    pub forward: Forward,
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
pub fn build(args: Args, getenv: &dyn Fn(&str) -> Option<String>) -> Result<Command, ConfigError> {
    let var = |name: &str| getenv(name).filter(|v| !v.is_empty());
    let state_path = PathBuf::from(
        args.state
            .clone()
            .or_else(|| var(env::STATE))
            .unwrap_or_else(|| defaults::STATE_PATH.into()),
    );
    let key = match args
        .identity_file
        .clone()
        .or_else(|| var(env::IDENTITY_FILE))
        .or_else(|| var(env::SSH_KEY_FILE))
    {
        Some(p) => KeySource::OpenSsh(p.into()),
        None => KeySource::State,
    };
    let verb = args
        .verb
        .ok_or_else(|| bad("no command given (expected key, authorize or run; see --help)"))?;
    if verb != Verb::Run {
        for (given, flag) in [
            (args.remote.is_some(), "-R"),
            (args.local.is_some(), "-L"),
            (args.port.is_some(), "-p"),
            (!args.options.is_empty(), "-o"),
            (args.destination.is_some(), "a destination"),
            (args.known_hosts.is_some(), "--known-hosts"),
            (args.host_key.is_some(), "--host-key"),
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
    for (flag, v) in [
        ("--comment", &args.comment),
        ("--listen", &args.listen),
        ("--open", &args.open),
    ] {
        if let Some(v) = v.as_deref()
            && v.chars().any(char::is_control)
        {
            return Err(bad(format!("{flag} {v:?}: holds a control character")));
        }
    }
    match verb {
        Verb::Help => Ok(Command::Help),
        Verb::Version => Ok(Command::Version),
        Verb::Key => Ok(Command::Key { state_path, key }),
        Verb::Authorize => {
            let listen = match (args.listen, args.open) {
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "authorize takes --listen (for -R) or --open (for -L), not both",
                    ));
                }
                (None, Some(open)) => {
                    let ok = split_host_port(&open).is_some_and(|(h, p)| {
                        valid_host(unbracket(h)) && p.parse::<u16>().is_ok_and(|p| p > 0)
                    });
                    if !ok {
                        return Err(bad(format!(
                            "--open {open:?}: expected HOST:PORT, the -L destination the jail may connect to"
                        )));
                    }
                    return Ok(Command::Authorize {
                        state_path,
                        key,
                        permit: Permit::Open(open),
                        comment: args.comment,
                    });
                }
                (Some(l), None) => l,
                (None, None) => {
                    return Err(bad(
                        "authorize needs --listen [ADDR:]PORT (for -R) or --open HOST:PORT (for -L)",
                    ));
                }
            };
            let (addr, port) = match split_host_port(&listen).filter(|_| !listen.starts_with('/')) {
                Some((a, p)) => (Some(a), p),
                None => (None, listen.as_str()),
            };
            if port != "*" && !listen.starts_with('/') {
                parse_port(port, "--listen (a port, or * for any, as -R 0 needs)")?;
            }
            if let Some(a) = addr
                && (a.is_empty() || a.contains(['"', ' ', ',']))
            {
                return Err(bad(format!("--listen {listen:?}: bad address")));
            }
            Ok(Command::Authorize {
                state_path,
                key,
                permit: Permit::Listen(listen),
                comment: args.comment,
            })
        }
        Verb::Run => build_run(args, &var, state_path, key).map(|c| Command::Run(Box::new(c))),
    }
}

fn build_run(
    args: Args,
    var: &dyn Fn(&str) -> Option<String>,
    state_path: PathBuf,
    key: KeySource,
) -> Result<RunConfig, ConfigError> {
    // Precedence, for every option: flag (incl. `-o`) > JAILBIRD_* > SSH_*
    // variables and SSH_OPTIONS > the compiled-in default. `o` holds the -o
    // flags, `so` the words of SSH_OPTIONS; each value is looked up in that order.
    let mut o = Options::default();
    for opt in &args.options {
        o.apply(opt, "-o")?;
    }
    let mut so = Options::default();
    if let Some(extra) = var(env::SSH_OPTIONS) {
        let mut words = extra.split_whitespace();
        while let Some(w) = words.next() {
            let opt = if w == "-o" {
                words.next().unwrap_or("")
            } else {
                w.strip_prefix("-o").unwrap_or(w)
            };
            if let Err(e) = so.apply_if_unset(opt, env::SSH_OPTIONS) {
                log::warn!("{e}; ignored");
            }
        }
    }
    let pick =
        |flag: Option<String>, names: &[&str]| flag.or_else(|| names.iter().find_map(|n| var(n)));

    if let Some(m) = var(env::SSH_MODE).filter(|m| !matches!(m.trim(), "-R" | "-L")) {
        return Err(bad(format!("{}={m:?}: expected -R or -L", env::SSH_MODE)));
    }

    let default_port = match pick(args.port, &[env::PORT, env::SSH_REMOTE_PORT]) {
        Some(p) => parse_port(&p, "jail port (-p)")?,
        None => defaults::JAIL_PORT,
    };
    let default_user = var(env::SSH_REMOTE_USER).unwrap_or_else(|| defaults::USER.into());
    let dest = pick(args.destination, &[env::DESTINATION, env::SSH_REMOTE_HOST])
        .or_else(|| defaults::DESTINATION.map(Into::into))
        .ok_or_else(|| {
            bad("no jail given: name DESTINATION, or set JAILBIRD_DESTINATION or SSH_REMOTE_HOST (or build with JAILBIRD_DEFAULT_DESTINATION)")
        })?;
    let mut jails = heapless::Vec::new();
    for jail in spec::parse_destinations(&dest, &default_user, default_port)? {
        jails
            .push(jail)
            .map_err(|_| bad(format!("more than {MAX_JAILS} jails in {dest:?}")))?;
    }

    let local_mode = var(env::SSH_MODE).is_some_and(|m| m.trim() == "-L");
    let remote = pick(args.remote, &[env::REMOTE_FORWARD]);
    let local = pick(args.local, &[env::LOCAL_FORWARD]);
    let forward = match (remote, local) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "-R and -L both given: one jailbird holds one tunnel (run a second one for the other)",
            ));
        }
        (Some(spec), None) => Forward::Remote(parse_remote_forward(&spec)?),
        (None, Some(spec)) => Forward::Local(parse_local_forward(&spec)?),
        (None, None) => match var(env::SSH_TUNNEL_PORT) {
            Some(tp) => {
                let port = parse_port(&tp, env::SSH_TUNNEL_PORT)?;
                let target_host =
                    var(env::SSH_TARGET_HOST).unwrap_or_else(|| defaults::TARGET_HOST.into());
                let target_port = match var(env::SSH_TARGET_PORT) {
                    Some(p) => parse_port(&p, env::SSH_TARGET_PORT)?,
                    None => defaults::TARGET_PORT,
                };
                if local_mode {
                    let bind = var(env::SSH_BIND_IP).unwrap_or_else(|| "127.0.0.1".into());
                    // Same checks as the flag form, so both fail alike.
                    Forward::Local(parse_local_forward(&format!(
                        "{}:{port}:{}:{target_port}",
                        bracket(&bind),
                        bracket(&target_host)
                    ))?)
                } else {
                    // The checks the -R flag form makes (brackets optional, as
                    // in the -L branch), naming the variable.
                    let bind = var(env::SSH_BIND_IP).map(|b| unbracket(&b).to_string());
                    if let Some(b) = bind.as_deref().filter(|b| *b != "*" && !valid_host(b)) {
                        return Err(bad(format!("{}={b:?}: bad bind address", env::SSH_BIND_IP)));
                    }
                    let target_host = unbracket(&target_host).to_string();
                    if !valid_host(&target_host) {
                        return Err(bad(format!(
                            "{}={target_host:?}: bad host name",
                            env::SSH_TARGET_HOST
                        )));
                    }
                    if target_port == 0 {
                        return Err(bad(format!("{}=0: target port 0", env::SSH_TARGET_PORT)));
                    }
                    Forward::Remote(RemoteForward {
                        socket: None,
                        bind,
                        port,
                        target_host,
                        target_port,
                    })
                }
            }
            None => match (defaults::REMOTE_FORWARD, defaults::LOCAL_FORWARD) {
                (Some(spec), _) => Forward::Remote(parse_remote_forward(spec)?),
                (None, Some(spec)) => Forward::Local(parse_local_forward(spec)?),
                (None, None) => {
                    return Err(bad(
                        "no forward given: -R [BIND:]PORT:HOST:HOSTPORT or -L [BIND:]PORT:HOST:HOSTPORT (or JAILBIRD_REMOTE_FORWARD / JAILBIRD_LOCAL_FORWARD, or SSH_TUNNEL_PORT)",
                    ));
                }
            },
        },
    };

    let known_hosts = pick(
        args.known_hosts.or(o.user_known_hosts),
        &[env::KNOWN_HOSTS, env::SSH_KNOWN_HOSTS_FILE],
    )
    .or(so.user_known_hosts)
    .or_else(|| defaults::KNOWN_HOSTS.map(Into::into))
    .map(PathBuf::from);
    let host_key =
        pick(args.host_key, &[env::HOST_KEY]).or_else(|| defaults::HOST_KEY.map(Into::into));
    let pinned = match host_key {
        Some(k) => Some(parse_host_key(&k, "--host-key")?),
        None => None,
    };
    let opt = |flag: Option<String>,
               names: &[&str],
               ssh_options: Option<String>,
               what: &str|
     -> Result<Option<u64>, ConfigError> {
        match pick(flag, names).or(ssh_options) {
            Some(v) => parse_secs(&v, what).map(Some),
            None => Ok(None),
        }
    };
    let interval = opt(
        o.alive_interval,
        &[env::SERVER_ALIVE_INTERVAL, env::SSH_SERVER_ALIVE_INTERVAL],
        so.alive_interval,
        "ServerAliveInterval",
    )?
    .unwrap_or(defaults::ALIVE_INTERVAL_SECS);
    let count = opt(
        o.alive_count,
        &[env::SERVER_ALIVE_COUNT_MAX, env::SSH_SERVER_ALIVE_COUNT_MAX],
        so.alive_count,
        "ServerAliveCountMax",
    )?
    .unwrap_or(defaults::ALIVE_COUNT_MAX.into());
    if count == 0 || count > MAX_ALIVE_COUNT {
        return Err(bad(format!(
            "ServerAliveCountMax={count}: expected 1..={MAX_ALIVE_COUNT}"
        )));
    }
    let connect = opt(
        o.connect_timeout,
        &[env::CONNECT_TIMEOUT],
        so.connect_timeout,
        "ConnectTimeout",
    )?
    .unwrap_or(defaults::CONNECT_TIMEOUT_SECS);
    if connect == 0 {
        return Err(bad("ConnectTimeout=0: expected at least 1 second"));
    }
    let strict = match pick(o.strict, &[env::STRICT_HOST_KEY_CHECKING]).or(so.strict) {
        Some(v) => parse_strict(&v)?,
        None => parse_strict(defaults::STRICT_HOST_KEY_CHECKING)?,
    };
    let unlink = match pick(o.unlink, &[env::STREAM_LOCAL_BIND_UNLINK]).or(so.unlink) {
        Some(v) => parse_yes_no(&v, "StreamLocalBindUnlink")?,
        None => false,
    };
    if pinned.is_none() && known_hosts.is_none() && !strict && matches!(key, KeySource::OpenSsh(_))
    {
        // Without a state file there is nowhere to have pinned a key earlier either.
        return Err(bad(
            "no way to check the jail's host key: give --known-hosts, --host-key, or -o StrictHostKeyChecking=accept-new",
        ));
    }
    let ciphers = parse_ciphers(pick(o.ciphers, &[env::CIPHERS]).or(so.ciphers).as_deref())?;
    // tmpfs, never flash: systemd's RuntimeDirectory= if the unit has one;
    // never a guessable name in a world-writable /tmp.
    let status_file = args
        .status_file
        .clone()
        .or_else(|| var(env::STATUS_FILE))
        .map(PathBuf::from)
        .or_else(|| var("RUNTIME_DIRECTORY").map(|d| PathBuf::from(d).join("status")));
    Ok(RunConfig {
        status_file,
        ciphers,
        jails,
        forward,
        state_path,
        key,
        trust: TrustSources {
            pinned,
            known_hosts,
            accept_new: strict,
        },
        alive_interval: (interval > 0).then(|| Duration::from_secs(interval)),
        alive_count_max: count as u32,
        connect_timeout: Duration::from_secs(connect),
        stream_local_bind_unlink: unlink,
    })
}

/// `-o` values, raw.
#[derive(Default)]
struct Options {
    alive_interval: Option<String>,
    alive_count: Option<String>,
    connect_timeout: Option<String>,
    strict: Option<String>,
    unlink: Option<String>,
    user_known_hosts: Option<String>,
    ciphers: Option<String>,
}

impl Options {
    fn slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        Some(match key.to_ascii_lowercase().as_str() {
            "serveraliveinterval" => &mut self.alive_interval,
            "serveralivecountmax" => &mut self.alive_count,
            "connecttimeout" => &mut self.connect_timeout,
            "stricthostkeychecking" => &mut self.strict,
            "streamlocalbindunlink" => &mut self.unlink,
            "userknownhostsfile" => &mut self.user_known_hosts,
            "ciphers" => &mut self.ciphers,
            _ => return None,
        })
    }

    fn split(opt: &str, origin: &str) -> Result<(String, String), ConfigError> {
        let (k, v) = opt
            .split_once('=')
            .or_else(|| opt.split_once(char::is_whitespace))
            .ok_or_else(|| bad(format!("{origin} {opt:?}: expected Key=Value")))?;
        Ok((k.trim().to_string(), v.trim().to_string()))
    }

    fn apply(&mut self, opt: &str, origin: &str) -> Result<(), ConfigError> {
        let (k, v) = Self::split(opt, origin)?;
        if k.eq_ignore_ascii_case("ExitOnForwardFailure") {
            return Ok(()); // always on: a refused forward is a failed attempt
        }
        *self
            .slot(&k)
            .ok_or_else(|| bad(format!("{origin} {k:?}: unknown option")))? = Some(v);
        Ok(())
    }

    fn apply_if_unset(&mut self, opt: &str, origin: &str) -> Result<(), ConfigError> {
        let (k, v) = Self::split(opt, origin)?;
        if k.eq_ignore_ascii_case("ExitOnForwardFailure") {
            return Ok(());
        }
        let slot = self
            .slot(&k)
            .ok_or_else(|| bad(format!("{origin} {k:?}: unknown option")))?;
        if slot.is_none() {
            *slot = Some(v);
        }
        Ok(())
    }
}

fn parse_ciphers(list: Option<&str>) -> Result<heapless::Vec<&'static str, 4>, ConfigError> {
    let mut out = heapless::Vec::new();
    let Some(list) = list else {
        for c in defaults::CIPHERS {
            let _ = out.push(*c);
        }
        return Ok(out);
    };
    for name in list.split(',').map(str::trim) {
        let known = SUPPORTED_CIPHERS
            .iter()
            .find(|c| **c == name)
            .ok_or_else(|| {
                bad(format!(
                    "Ciphers={list:?}: {name:?} is not one of {}",
                    SUPPORTED_CIPHERS.join(",")
                ))
            })?;
        if !out.contains(known) {
            out.push(*known)
                .map_err(|_| bad(format!("Ciphers={list:?}: too many")))?;
        }
    }
    Ok(out)
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

/// `--host-key` with this build's key types: the syntax is [`spec::parse_host_key`]'s.
pub fn parse_host_key(s: &str, what: &str) -> Result<Vec<u8>, ConfigError> {
    let ty = s.split_ascii_whitespace().next().unwrap_or("");
    let built_in = |f: &str| match f {
        "rsa" => cfg!(feature = "rsa"),
        "nistp384-521" => cfg!(feature = "nistp384-521"),
        _ => false,
    };
    if let Ok(Some(f)) = spec::key_type_feature(ty)
        && !built_in(f)
    {
        return Err(bad(format!(
            "{what}: a {ty} host key needs the cargo feature {f}, not built into this jailbird"
        )));
    }
    spec::parse_host_key(s, what)
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
            c.forward,
            Forward::Remote(RemoteForward {
                socket: None,
                bind: None,
                port: 2022,
                target_host: "127.0.0.1".into(),
                target_port: 22
            })
        );
        assert_eq!(c.forward.remote().unwrap().bind_address(), "localhost");
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
            c.forward.remote().unwrap().bind.as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            (
                c.forward.remote().unwrap().port,
                c.forward.remote().unwrap().target_port
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
        assert_eq!(c.forward, Forward::Local(want));
        let c = run("run -L [::1]:0:[fd00::5]:22 j", &[]).unwrap();
        let Forward::Local(l) = c.forward else {
            panic!()
        };
        assert_eq!(
            (l.bind.as_str(), l.port, l.host.as_str()),
            ("::1", 0, "fd00::5")
        );
        let c = run("run -L *:1234:h:22 j", &[]).unwrap();
        let Forward::Local(l) = c.forward else {
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
            c.forward,
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
        assert_eq!(c.forward.remote().unwrap().bind_address(), "*");
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
        let r = c.forward.remote().unwrap();
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
