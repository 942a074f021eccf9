//! The autossh container's (jnovack/autossh) composite settings, mapped onto
//! jailbird's: the `-o` words of `SSH_OPTIONS`, and the forward its
//! `SSH_TUNNEL_PORT`, `SSH_TARGET_*`, `SSH_BIND_IP` and `SSH_MODE` describe.
//! Its single-valued names (`SSH_REMOTE_HOST`, ...) are ordinary sources in
//! [`super::Lookup`]; this module only takes apart what they cannot express.

use super::{Forward, parse_local_forward};
use crate::cli::env;
use crate::defaults;
use crate::options::Options;
use crate::spec::{
    self, ConfigError, RemoteForward, bad, bracket, parse_port, unbracket, valid_host,
};

/// The `-o` words of SSH_OPTIONS; unknown ones are logged and ignored, as
/// that container passes options meant for ssh.
pub(super) fn ssh_options(var: &dyn Fn(&str) -> Option<String>) -> Options {
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
    so
}

/// `SSH_STRICT_HOST_IP_CHECK` (the container's `CheckHostIP`): `false` is what
/// jailbird does; `true` gets one line saying the address is not also checked
/// (the host key is checked against the jail's name either way); anything else
/// is refused.
pub(super) fn check_ip_check(var: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    match var(env::SSH_STRICT_HOST_IP_CHECK).as_deref().map(str::trim) {
        None | Some("false" | "no") => Ok(()),
        Some("true" | "yes") => {
            log::warn!(
                "{}=true: jailbird checks the jail's host key against its name only, not also against its address (CheckHostIP); set it to false to silence this",
                env::SSH_STRICT_HOST_IP_CHECK
            );
            Ok(())
        }
        Some(v) => Err(bad(format!(
            "{}={v:?}: expected true or false",
            env::SSH_STRICT_HOST_IP_CHECK
        ))),
    }
}

/// autossh's own variables that mean nothing here, named in one line (or
/// None): jailbird has no monitor port (`AUTOSSH_PORT=0` is what it does) and
/// keeps the tunnel with ServerAliveInterval/CountMax and its own backoff
/// instead of polling (`AUTOSSH_POLL`, `AUTOSSH_GATETIME`, ...).
pub(super) fn ignored(vars: impl Iterator<Item = (String, String)>) -> Option<String> {
    let mut names: Vec<String> = vars
        .filter(|(k, v)| k.starts_with("AUTOSSH_") && !(k == "AUTOSSH_PORT" && v.trim() == "0"))
        .map(|(k, _)| k)
        .collect();
    if names.is_empty() {
        return None;
    }
    names.sort();
    Some(format!(
        "ignored (autossh's own; jailbird needs no monitor port and keeps the tunnel with ServerAliveInterval/ServerAliveCountMax and its own backoff): {}",
        names.join(", ")
    ))
}

/// Refuses an SSH_MODE other than `-R` or `-L`, whatever else is set.
pub(super) fn check_mode(var: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    match var(env::SSH_MODE).filter(|m| !matches!(m.trim(), "-R" | "-L")) {
        Some(m) => Err(bad(format!("{}={m:?}: expected -R or -L", env::SSH_MODE))),
        None => Ok(()),
    }
}

/// The forward SSH_TUNNEL_PORT, SSH_TARGET_*, SSH_BIND_IP and SSH_MODE
/// describe, checked as the flag forms are (each error names the variable).
pub(super) fn forward(
    var: &dyn Fn(&str) -> Option<String>,
    tunnel_port: &str,
) -> Result<Forward, ConfigError> {
    let port = parse_port(tunnel_port, env::SSH_TUNNEL_PORT)?;
    let target_host = var(env::SSH_TARGET_HOST).unwrap_or_else(|| defaults::TARGET_HOST.into());
    let target_port = match var(env::SSH_TARGET_PORT) {
        Some(p) => parse_port(&p, env::SSH_TARGET_PORT)?,
        None => defaults::TARGET_PORT,
    };
    if var(env::SSH_MODE).is_some_and(|m| m.trim() == "-L") {
        let bind = var(env::SSH_BIND_IP).unwrap_or_else(|| "127.0.0.1".into());
        // Same checks as the flag form, so both fail alike.
        return Ok(Forward::Local(parse_local_forward(&format!(
            "{}:{port}:{}:{target_port}",
            bracket(&bind),
            bracket(&target_host)
        ))?));
    }
    let bind = match var(env::SSH_BIND_IP) {
        Some(b) => spec::parse_remote_bind(&b, env::SSH_BIND_IP)?,
        None => None,
    };
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
    Ok(Forward::Remote(RemoteForward {
        socket: None,
        bind,
        port,
        target_host,
        target_port,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn autossh_variables_are_named_once() {
        assert_eq!(
            ignored(vars(&[("PATH", "/bin"), ("AUTOSSH_PORT", "0")])),
            None
        );
        let w = ignored(vars(&[
            ("AUTOSSH_POLL", "30"),
            ("AUTOSSH_PORT", "20000"),
            ("AUTOSSH_GATETIME", "0"),
        ]))
        .unwrap();
        assert!(
            w.ends_with(": AUTOSSH_GATETIME, AUTOSSH_POLL, AUTOSSH_PORT"),
            "{w}"
        );
    }

    #[test]
    fn strict_host_ip_check() {
        let with = |v: &'static str| {
            move |k: &str| (k == env::SSH_STRICT_HOST_IP_CHECK).then(|| v.to_string())
        };
        assert!(check_ip_check(&|_| None).is_ok());
        assert!(check_ip_check(&with("false")).is_ok());
        assert!(check_ip_check(&with("true")).is_ok());
        let e = check_ip_check(&with("maybe")).unwrap_err().to_string();
        assert!(
            e.contains("SSH_STRICT_HOST_IP_CHECK=\"maybe\": expected true or false"),
            "{e}"
        );
    }
}
