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
