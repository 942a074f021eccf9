//! The `-o Key=Value` options jailbird takes (from flags or from the autossh
//! container's SSH_OPTIONS), held raw until config.rs resolves them, and the
//! cipher list.

use crate::config::{SUPPORTED_CIPHERS, defaults};
use crate::spec::{ConfigError, bad};

/// `-o` values, raw.
#[derive(Default)]
pub struct Options {
    pub alive_interval: Option<String>,
    pub alive_count: Option<String>,
    pub connect_timeout: Option<String>,
    pub strict: Option<String>,
    pub unlink: Option<String>,
    pub user_known_hosts: Option<String>,
    pub certificate_file: Option<String>,
    pub ciphers: Option<String>,
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
            "certificatefile" => &mut self.certificate_file,
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

    /// `-o ProxyCommand`/`ProxyJump` would need a shell or an ssh client: say
    /// what to use instead of "unknown option".
    fn refuse_proxy_command(k: &str, origin: &str) -> Result<(), ConfigError> {
        if k.eq_ignore_ascii_case("ProxyCommand") || k.eq_ignore_ascii_case("ProxyJump") {
            return Err(bad(format!(
                "{origin} {k}: not available in a static agent (there is no shell or ssh to run); for an HTTP proxy use --proxy http://[USER:PASS@]HOST:PORT"
            )));
        }
        Ok(())
    }

    pub fn apply(&mut self, opt: &str, origin: &str) -> Result<(), ConfigError> {
        let (k, v) = Self::split(opt, origin)?;
        Self::refuse_proxy_command(&k, origin)?;
        if k.eq_ignore_ascii_case("ExitOnForwardFailure") {
            return Ok(()); // always on: a refused forward is a failed attempt
        }
        *self
            .slot(&k)
            .ok_or_else(|| bad(format!("{origin} {k:?}: unknown option")))? = Some(v);
        Ok(())
    }

    pub fn apply_if_unset(&mut self, opt: &str, origin: &str) -> Result<(), ConfigError> {
        let (k, v) = Self::split(opt, origin)?;
        Self::refuse_proxy_command(&k, origin)?;
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

pub fn parse_ciphers(list: Option<&str>) -> Result<heapless::Vec<&'static str, 4>, ConfigError> {
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
