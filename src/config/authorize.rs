//! `jailbird authorize`: `--listen` (for `-R`) or `--open` (for `-L`) becomes
//! the [`Permit`] of the printed authorized_keys line, checked here so that
//! line never carries what sshd would misread.

use super::{Command, KeySource, Permit};
use crate::cli::Args;
use crate::spec::{ConfigError, bad, parse_port, split_host_port, unbracket, valid_host};
use std::path::PathBuf;

/// The authorize command: exactly one of `--listen` and `--open`, checked.
pub(super) fn build(
    args: Args,
    state_path: PathBuf,
    key: KeySource,
) -> Result<Command, ConfigError> {
    refuse_control_characters(&args)?;
    let permit = match (args.listen, args.open) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "authorize takes --listen (for -R) or --open (for -L), not both",
            ));
        }
        (None, Some(open)) => Permit::Open(check_open(open)?),
        (Some(listen), None) => Permit::Listen(check_listen(listen)?),
        (None, None) => {
            return Err(bad(
                "authorize needs --listen [ADDR:]PORT (for -R) or --open HOST:PORT (for -L)",
            ));
        }
    };
    Ok(Command::Authorize {
        state_path,
        key,
        permit,
        comment: args.comment,
    })
}

/// A control character (a newline, say) would split or forge the printed line.
fn refuse_control_characters(args: &Args) -> Result<(), ConfigError> {
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
    Ok(())
}

/// `--open HOST:PORT`: the `-L` destination the jail may connect to.
fn check_open(open: String) -> Result<String, ConfigError> {
    let ok = split_host_port(&open)
        .is_some_and(|(h, p)| valid_host(unbracket(h)) && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !ok {
        return Err(bad(format!(
            "--open {open:?}: expected HOST:PORT, the -L destination the jail may connect to"
        )));
    }
    Ok(open)
}

/// `--listen [ADDR:]PORT`, `*` for any port (as `-R 0` needs), or a socket path.
fn check_listen(listen: String) -> Result<String, ConfigError> {
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
    Ok(listen)
}
