//! The flag and environment configuration: `cli::parse` then `config::build`.
//!
//! Input, either form:
//! - text without NUL: the first line is the command line (split at
//!   whitespace, as the unit tests do), each further line `NAME=VALUE`;
//! - NUL-separated items: argv words up to an empty item, then `NAME=VALUE`
//!   items (so words and values may hold newlines and spaces).
//!
//! A NAME that is a decimal number picks from the variables jailbird reads.
//! Nothing may panic; every error is one non-empty line; an accepted `run`
//! configuration satisfies what the supervisor relies on.
#![no_main]

use jailbird::cli::{self, env};
use jailbird::config::{self, Command, Forward, KeySource, Permit, SUPPORTED_CIPHERS};
use jailbird::limits::MAX_JAILS;
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

const NAMES: &[&str] = &[
    env::DESTINATION,
    env::PORT,
    env::REMOTE_FORWARD,
    env::LOCAL_FORWARD,
    env::STATE,
    env::IDENTITY_FILE,
    env::KNOWN_HOSTS,
    env::HOST_KEY,
    env::SERVER_ALIVE_INTERVAL,
    env::SERVER_ALIVE_COUNT_MAX,
    env::CONNECT_TIMEOUT,
    env::STRICT_HOST_KEY_CHECKING,
    env::STREAM_LOCAL_BIND_UNLINK,
    env::CIPHERS,
    env::STATUS_FILE,
    env::LOG,
    env::SSH_REMOTE_USER,
    env::SSH_REMOTE_HOST,
    env::SSH_REMOTE_PORT,
    env::SSH_TUNNEL_PORT,
    env::SSH_TARGET_HOST,
    env::SSH_TARGET_PORT,
    env::SSH_BIND_IP,
    env::SSH_MODE,
    env::SSH_SERVER_ALIVE_INTERVAL,
    env::SSH_SERVER_ALIVE_COUNT_MAX,
    env::SSH_KNOWN_HOSTS_FILE,
    env::SSH_KEY_FILE,
    env::SSH_OPTIONS,
    "RUNTIME_DIRECTORY",
];

fuzz_target!(|data: &[u8]| {
    let (argv, env_items): (Vec<&[u8]>, Vec<&[u8]>) = if data.contains(&0) {
        let mut items = data.split(|&b| b == 0);
        let argv = items.by_ref().take_while(|w| !w.is_empty()).collect();
        (argv, items.collect())
    } else {
        let mut lines = data.split(|&b| b == b'\n');
        let first = lines.next().unwrap_or(&[]);
        let argv = first
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        (argv, lines.collect())
    };
    let mut vars: Vec<(String, String)> = Vec::new();
    for item in env_items {
        let item = String::from_utf8_lossy(item);
        let Some((name, value)) = item.split_once('=') else {
            continue;
        };
        let name = match name.parse::<usize>() {
            Ok(i) => NAMES[i % NAMES.len()].to_string(),
            Err(_) => name.to_string(),
        };
        vars.push((name, value.to_string()));
    }
    let words: Vec<OsString> = argv
        .iter()
        .map(|w| OsString::from_vec(w.to_vec()))
        .collect();

    let args = match cli::parse(words.clone()) {
        Ok(a) => a,
        Err(e) => {
            assert!(!e.is_empty(), "empty usage error for {words:?}");
            // cli.rs escapes control characters in lexopt's messages.
            assert!(
                !e.contains('\n'),
                "usage error is not one line: {e:?} for {words:?}"
            );
            return;
        }
    };
    let getenv = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match config::build(args, &getenv) {
        Err(e) => assert!(
            !e.0.is_empty() && !e.0.contains('\n'),
            "error is not one non-empty line: {:?} for {words:?} {vars:?}",
            e.0
        ),
        Ok(Command::Run(c)) => {
            let ctx = format!("{words:?} {vars:?}");
            assert!(!c.jails.is_empty() && c.jails.len() <= MAX_JAILS, "{ctx}");
            for j in &c.jails {
                assert!(
                    j.port != 0 && !j.host.is_empty() && !j.user.is_empty(),
                    "{ctx}"
                );
                assert!(!j.to_string().is_empty());
            }
            // Without a forward only with a claim token, which never shows.
            assert_eq!(c.forward.is_none(), c.claim.is_some(), "{ctx}");
            if let Some(claim) = &c.claim {
                assert_eq!(format!("{:?}", claim.token), "***", "{ctx}");
            }
            match &c.forward {
                None => {}
                Some(Forward::Remote(r)) => {
                    assert_ne!(r.target_port, 0, "{ctx}");
                    assert!(!r.target_host.is_empty(), "{ctx}");
                    assert!(!r.bind_address().is_empty(), "{ctx}");
                    if r.socket.is_some() {
                        assert_eq!((r.port, r.bind.as_deref()), (0, None), "{ctx}");
                    }
                }
                Some(Forward::Local(l)) => {
                    assert_ne!(l.host_port, 0, "{ctx}");
                    assert!(!l.host.is_empty(), "{ctx}");
                    assert!(
                        l.bind_address().parse::<std::net::IpAddr>().is_ok(),
                        "{ctx}"
                    );
                }
            }
            assert!(!c.ciphers.is_empty(), "{ctx}");
            for (i, name) in c.ciphers.iter().enumerate() {
                assert!(SUPPORTED_CIPHERS.contains(name), "{ctx}");
                assert!(!c.ciphers[..i].contains(name), "duplicate cipher: {ctx}");
            }
            assert!((1..=1000).contains(&c.alive_count_max), "{ctx}");
            assert!(c.connect_timeout >= Duration::from_secs(1), "{ctx}");
            assert!(c.connect_timeout <= Duration::from_secs(86_400), "{ctx}");
            if let Some(i) = c.alive_interval {
                assert!(
                    i >= Duration::from_secs(1) && i <= Duration::from_secs(86_400),
                    "{ctx}"
                );
            }
            if let Some(blob) = &c.trust.pinned {
                assert!(blob.len() >= 4, "{ctx}");
            }
            if matches!(c.key, KeySource::OpenSsh(_)) {
                assert!(
                    c.trust.pinned.is_some() || c.trust.known_hosts.is_some() || c.trust.accept_new,
                    "identity file without any host key check: {ctx}"
                );
            }
        }
        Ok(Command::Authorize { permit, .. }) => match permit {
            Permit::Listen(l) => assert!(!l.is_empty()),
            Permit::Open(o) => assert!(o.contains(':')),
        },
        Ok(Command::Key { .. } | Command::Help | Command::Version) => {}
    }
});
