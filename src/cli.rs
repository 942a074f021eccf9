//! Command-line flags and environment-variable names, and nothing else: raw
//! strings go in, [`Args`] comes out; `config.rs` turns it into typed values.

use std::ffi::OsString;

/// Usage text for `--help` and usage errors.
pub const USAGE: &str = "\
usage: jailbird key [--state PATH | --identity-file PATH]
       jailbird authorize [--state PATH | --identity-file PATH] --listen [ADDR:]PORT|--open HOST:PORT [--comment TEXT]
       jailbird run [OPTIONS] [USER@]HOST[:PORT][,...]
       jailbird info | --version   version, cargo features, limits and compiled-in defaults
run options:
  -R [BIND:]PORT:TARGET_HOST:TARGET_PORT   reverse forward held open on the jail
  -R /path.sock:TARGET_HOST:TARGET_PORT    reverse forward to a unix socket on the jail (%h, %i)
  -L [BIND:]PORT:HOST:HOSTPORT             local forward: listen here, connect HOST:HOSTPORT via the jail
  -p PORT                  jail sshd port (default 22)
  --state PATH             identity file (created if absent)
  --identity-file PATH     use an existing unencrypted OpenSSH private key instead
  --known-hosts PATH       OpenSSH known_hosts file with the jail's key
  --host-key \"TYPE BASE64\" pin the jail's host key
  --host-ca \"TYPE BASE64\"  trust jails whose host certificate this CA signed
  --certificate PATH       log in with this OpenSSH user certificate of the device key
  --status-file PATH       where `tunnel up` details go (default $RUNTIME_DIRECTORY/status, else none)
  --proxy http://[USER:PASS@]HOST:PORT   reach the jail through an HTTP CONNECT proxy
  --claim TOKEN            enrol with this token (destination HOST[:PORT], no -R): see docs/usage.md
  --claim-user USER        the jail's claim account (default claim)
  --device-id ID           the id to enrol as (default: from the MAC)
  --device-host-key PATH   this device's sshd host key, sent when claiming
                           (default /etc/ssh/ssh_host_ed25519_key.pub)
  -o ServerAliveInterval=N | ServerAliveCountMax=N | ConnectTimeout=N
  -o StrictHostKeyChecking=yes|accept-new | StreamLocalBindUnlink=yes|no
environment: JAILBIRD_* for each option, and the autossh container's SSH_* names;
  unset ones fall back to the build-time JAILBIRD_DEFAULT_* values (see `jailbird info`).
logging: RUST_LOG or JAILBIRD_LOG (error, warn, info, debug, trace).";

/// Environment variables read, by the option they stand for.
pub mod env {
    pub const DESTINATION: &str = "JAILBIRD_DESTINATION";
    pub const PORT: &str = "JAILBIRD_PORT";
    pub const REMOTE_FORWARD: &str = "JAILBIRD_REMOTE_FORWARD";
    pub const LOCAL_FORWARD: &str = "JAILBIRD_LOCAL_FORWARD";
    pub const STATE: &str = "JAILBIRD_STATE";
    pub const IDENTITY_FILE: &str = "JAILBIRD_IDENTITY_FILE";
    pub const KNOWN_HOSTS: &str = "JAILBIRD_KNOWN_HOSTS";
    pub const HOST_KEY: &str = "JAILBIRD_HOST_KEY";
    pub const HOST_CA: &str = "JAILBIRD_HOST_CA";
    pub const CERTIFICATE: &str = "JAILBIRD_CERTIFICATE";
    pub const SERVER_ALIVE_INTERVAL: &str = "JAILBIRD_SERVER_ALIVE_INTERVAL";
    pub const SERVER_ALIVE_COUNT_MAX: &str = "JAILBIRD_SERVER_ALIVE_COUNT_MAX";
    pub const CONNECT_TIMEOUT: &str = "JAILBIRD_CONNECT_TIMEOUT";
    pub const STRICT_HOST_KEY_CHECKING: &str = "JAILBIRD_STRICT_HOST_KEY_CHECKING";
    pub const STREAM_LOCAL_BIND_UNLINK: &str = "JAILBIRD_STREAM_LOCAL_BIND_UNLINK";
    pub const CIPHERS: &str = "JAILBIRD_CIPHERS";
    pub const STATUS_FILE: &str = "JAILBIRD_STATUS_FILE";
    /// Not `https_proxy`: see docs/usage.md "Through an HTTP proxy".
    pub const PROXY: &str = "JAILBIRD_PROXY";
    /// A secret: never logged, never in the status file.
    pub const CLAIM: &str = "JAILBIRD_CLAIM";
    pub const CLAIM_USER: &str = "JAILBIRD_CLAIM_USER";
    pub const DEVICE_ID: &str = "JAILBIRD_DEVICE_ID";
    pub const DEVICE_HOST_KEY: &str = "JAILBIRD_DEVICE_HOST_KEY";
    pub const LOG: &str = "JAILBIRD_LOG";
    /// The autossh container's names (jnovack/autossh), honoured for drop-in use.
    pub const SSH_REMOTE_USER: &str = "SSH_REMOTE_USER";
    pub const SSH_REMOTE_HOST: &str = "SSH_REMOTE_HOST";
    pub const SSH_REMOTE_PORT: &str = "SSH_REMOTE_PORT";
    pub const SSH_TUNNEL_PORT: &str = "SSH_TUNNEL_PORT";
    pub const SSH_TARGET_HOST: &str = "SSH_TARGET_HOST";
    pub const SSH_TARGET_PORT: &str = "SSH_TARGET_PORT";
    pub const SSH_BIND_IP: &str = "SSH_BIND_IP";
    pub const SSH_MODE: &str = "SSH_MODE";
    pub const SSH_SERVER_ALIVE_INTERVAL: &str = "SSH_SERVER_ALIVE_INTERVAL";
    pub const SSH_SERVER_ALIVE_COUNT_MAX: &str = "SSH_SERVER_ALIVE_COUNT_MAX";
    pub const SSH_KNOWN_HOSTS_FILE: &str = "SSH_KNOWN_HOSTS_FILE";
    pub const SSH_KEY_FILE: &str = "SSH_KEY_FILE";
    pub const SSH_OPTIONS: &str = "SSH_OPTIONS";
    pub const SSH_STRICT_HOST_IP_CHECK: &str = "SSH_STRICT_HOST_IP_CHECK";
}

/// The subcommand named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Key,
    Authorize,
    Run,
    Help,
    Version,
}

/// Flags as given, unvalidated.
#[derive(Debug, Default)]
pub struct Args {
    pub verb: Option<Verb>,
    pub destination: Option<String>,
    pub port: Option<String>,
    pub remote: Option<String>,
    pub local: Option<String>,
    pub state: Option<String>,
    pub identity_file: Option<String>,
    pub known_hosts: Option<String>,
    pub host_key: Option<String>,
    pub host_ca: Option<String>,
    pub certificate: Option<String>,
    pub listen: Option<String>,
    pub open: Option<String>,
    pub comment: Option<String>,
    pub status_file: Option<String>,
    pub proxy: Option<String>,
    /// `--claim`: a secret, so its `Debug` shows no value.
    pub claim: Option<Secret>,
    pub claim_user: Option<String>,
    pub device_id: Option<String>,
    pub device_host_key: Option<String>,
    /// `-o Key=Value` in order given.
    pub options: Vec<String>,
}

/// A secret value (a claim token): printed by `Debug` as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Parses the command line (without the program name). Errors are one line.
pub fn parse<I: IntoIterator<Item = OsString>>(argv: I) -> Result<Args, String> {
    parse_words(argv).map_err(|e| one_line(&e))
}

/// Escapes control characters (a newline in an argv word, say) so an error
/// stays one line.
fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

/// The words into [`Args`]: a verb, flags (each single-valued one at most once)
/// and one destination.
fn parse_words<I: IntoIterator<Item = OsString>>(argv: I) -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(argv);
    let mut a = Args::default();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => a.verb = Some(Verb::Help),
            Short('V') | Long("version") => a.verb = Some(Verb::Version),
            Short('o') => a.options.push(value(&mut p, "-o")?),
            Short(c @ ('p' | 'R' | 'L')) => a.take_value(&mut p, &format!("-{c}"))?,
            Long(
                name @ ("state" | "identity-file" | "known-hosts" | "host-key" | "host-ca"
                | "certificate" | "listen" | "open" | "comment" | "status-file" | "proxy"
                | "claim-user" | "device-id" | "device-host-key"),
            ) => {
                // `name` borrows the parser: the flag is made before the value is read.
                let flag = format!("--{name}");
                a.take_value(&mut p, &flag)?
            }
            Long("claim") => {
                // Never echoed: the value is a secret.
                let v = p
                    .value()
                    .map_err(|_| "--claim: expected a token".to_string())?
                    .into_string()
                    .map_err(|_| "--claim: not valid UTF-8".to_string())?;
                if a.claim.replace(Secret(v)).is_some() {
                    return Err("--claim given twice".into());
                }
            }
            Value(v) if a.verb.is_none() => a.verb = Some(verb(&text(v, "command")?)?),
            Value(v) => once(&mut a.destination, text(v, "destination")?, "destination")?,
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(a)
}

impl Args {
    /// Stores the value of `flag`, which may be given once.
    fn take_value(&mut self, p: &mut lexopt::Parser, flag: &str) -> Result<(), String> {
        let v = value(p, flag)?;
        once(self.slot(flag), v, flag)
    }

    /// Where the value of a single-valued flag goes.
    fn slot(&mut self, flag: &str) -> &mut Option<String> {
        match flag {
            "-p" => &mut self.port,
            "-R" => &mut self.remote,
            "-L" => &mut self.local,
            "--state" => &mut self.state,
            "--identity-file" => &mut self.identity_file,
            "--known-hosts" => &mut self.known_hosts,
            "--host-key" => &mut self.host_key,
            "--host-ca" => &mut self.host_ca,
            "--certificate" => &mut self.certificate,
            "--listen" => &mut self.listen,
            "--open" => &mut self.open,
            "--status-file" => &mut self.status_file,
            "--proxy" => &mut self.proxy,
            "--claim-user" => &mut self.claim_user,
            "--device-id" => &mut self.device_id,
            "--device-host-key" => &mut self.device_host_key,
            _ => &mut self.comment,
        }
    }
}

/// The subcommand a word names.
fn verb(word: &str) -> Result<Verb, String> {
    Ok(match word {
        "key" => Verb::Key,
        "authorize" => Verb::Authorize,
        "run" => Verb::Run,
        "help" => Verb::Help,
        // Same report as --version: what this binary was built with.
        "info" => Verb::Version,
        other => {
            return Err(format!(
                "unknown command {other:?} (expected key, authorize, run or info)"
            ));
        }
    })
}

/// A word as UTF-8; `what` names it in the error.
fn text(v: OsString, what: &str) -> Result<String, String> {
    v.into_string()
        .map_err(|_| format!("{what}: not valid UTF-8"))
}

/// Fills `slot`, refusing a flag given twice.
fn once(slot: &mut Option<String>, v: String, flag: &str) -> Result<(), String> {
    if slot.replace(v).is_some() {
        Err(format!("{flag} given twice"))
    } else {
        Ok(())
    }
}

/// The value of a flag that takes one, as UTF-8.
fn value(p: &mut lexopt::Parser, flag: &str) -> Result<String, String> {
    p.value()
        .map_err(|e| format!("{flag}: {e}"))?
        .into_string()
        .map_err(|_| format!("{flag}: not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(s.split_whitespace().map(OsString::from))
    }

    #[test]
    fn run_line_like_autossh() {
        let a =
            args("run -p 8022 -R 2022:127.0.0.1:22 -o ServerAliveInterval=5 tunuser@jail").unwrap();
        assert_eq!(a.verb, Some(Verb::Run));
        assert_eq!(a.port.as_deref(), Some("8022"));
        assert_eq!(a.remote.as_deref(), Some("2022:127.0.0.1:22"));
        assert_eq!(a.options, vec!["ServerAliveInterval=5"]);
        assert_eq!(a.destination.as_deref(), Some("tunuser@jail"));
    }

    #[test]
    fn the_claim_token_is_never_in_debug_output() {
        let a = args("run --claim s3cret-token --claim-user c --device-id d1 h").unwrap();
        assert_eq!(a.claim, Some(Secret("s3cret-token".into())));
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("***"),
            "{shown}"
        );
        let e = args("run --claim tok1 --claim tok2 h").unwrap_err();
        assert_eq!(e, "--claim given twice");
    }

    #[test]
    fn a_newline_in_an_unknown_flag_stays_one_line() {
        let e = parse([OsString::from("run"), OsString::from("--bo\ngus")]).unwrap_err();
        assert!(!e.contains('\n') && e.contains("bo\\ngus"), "{e}");
    }

    #[test]
    fn bad_usage_is_one_line() {
        for bad in [
            "run --bogus",
            "frobnicate",
            "run -R a -R b",
            "run a b",
            "run -p",
        ] {
            let e = args(bad).unwrap_err();
            assert!(!e.contains('\n') && !e.is_empty(), "{bad}: {e}");
        }
    }
}
