//! Host certificates: a jail whose host key a trusted CA signed, so one
//! `@cert-authority` line (or `--host-ca`) on a device trusts every jail of a
//! fleet. The rules are OpenSSH's (sshconnect.c `check_host_cert`, sshkey.c
//! `sshkey_cert_check_host`), each refusal naming the rule and both
//! fingerprints:
//!
//! - a host certificate (not a user one);
//! - neither its CA nor its key marked `@revoked` in known_hosts;
//! - its CA trusted for this jail: `--host-ca`, or an `@cert-authority` line
//!   whose patterns match the jail's name (`host`, `[host]:port` off port 22);
//! - the CA's signature verifies, by an allowed algorithm (OpenSSH's default
//!   CASignatureAlgorithms: no `ssh-rsa` with SHA-1, no DSA);
//! - no critical options (ssh(1) knows none for host certificates);
//! - the host name as dialled among its principals (a principal may be a
//!   wildcard pattern; a certificate listing none is valid for any name, as
//!   ssh(1) does: `require_principal` is 0 for host certificates);
//! - now within its validity window, unless the clock is unset (below).
//!
//! A board without an RTC (a Pi Zero) boots at 1970, or at fake-hwclock's last
//! save, until NTP answers; a certificate would then be "not yet valid" and the
//! device locked out of its only way home. While the system clock reads earlier
//! than [`CLOCK_EPOCH_SECS`] (a date this source was written after, so no
//! correct clock reads earlier), the validity window cannot be judged: an
//! otherwise valid certificate is accepted, the agent says so once per
//! session, and re-checks the window as soon as the clock is set
//! (`session::serve`), ending the session if it fails then.

use crate::hostkey::{blob_fingerprint, host_matches, known_hosts_name, parse_key_line};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::{self, Algorithm, Certificate, PublicKey};

/// No correct clock reads earlier than this (2026-11-29T00:00:00Z): the day
/// this rule was written. A clock before it is a board that has not set its
/// clock yet. A source constant rather than the build time, so that builds stay
/// reproducible.
pub const CLOCK_EPOCH_SECS: u64 = 1_795_910_400;

/// The CA lines of a known_hosts file.
#[derive(Clone, Debug, Default)]
pub struct CaLines {
    /// `@cert-authority PATTERNS KEY`: (patterns, key blob).
    pub cas: Vec<(String, Vec<u8>)>,
    /// `@revoked PATTERNS KEY`: key blobs.
    pub revoked: Vec<Vec<u8>>,
}

impl CaLines {
    /// The `@cert-authority` and `@revoked` lines of a known_hosts text.
    pub fn parse(text: &str) -> CaLines {
        let mut out = CaLines::default();
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix('@') else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let (Some(marker), Some(patterns)) = (words.next(), words.next()) else {
                continue;
            };
            let key: Vec<&str> = words.collect();
            let Some(blob) = parse_key_line(&key.join(" ")) else {
                continue;
            };
            match marker {
                "cert-authority" => out.cas.push((patterns.to_string(), plain_of(blob))),
                "revoked" => out.revoked.push(plain_of(blob)),
                _ => {}
            }
        }
        out
    }
}

/// Where CAs come from for one jail.
#[derive(Clone, Copy, Debug)]
pub struct Authorities<'a> {
    /// `--host-ca` / `JAILBIRD_HOST_CA` / the build's default: trusted for every jail.
    pub fleet: &'a [Vec<u8>],
    /// The known_hosts file's CA and revocation lines.
    pub known_hosts: Option<&'a CaLines>,
}

impl Authorities<'_> {
    /// Whether any CA may vouch for `host:port`: then the agent asks the jail
    /// for its certificate (as ssh(1) orders certificate algorithms first only
    /// for hosts a CA is known for).
    pub fn any_for(&self, host: &str, port: u16) -> bool {
        let name = known_hosts_name(host, port);
        !self.fleet.is_empty()
            || self
                .known_hosts
                .is_some_and(|k| k.cas.iter().any(|(p, _)| host_matches(p, &name)))
    }

    fn trusts(&self, ca: &[u8], host: &str, port: u16) -> bool {
        let name = known_hosts_name(host, port);
        self.fleet.iter().any(|k| k == ca)
            || self
                .known_hosts
                .is_some_and(|k| k.cas.iter().any(|(p, b)| b == ca && host_matches(p, &name)))
    }

    fn revoked(&self, blob: &[u8]) -> bool {
        self.known_hosts
            .is_some_and(|k| k.revoked.iter().any(|b| b == blob))
    }
}

/// Why a certificate was refused; a revocation is final (no retry as a plain key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub why: String,
    pub revoked: bool,
}

/// The wire blob of the plain key a certificate certifies.
pub fn plain_blob(cert: &Certificate) -> Result<Vec<u8>, String> {
    wire(cert.public_key())
}

/// A known_hosts key blob as the plain key it names: a certificate
/// (`*-cert-v01@openssh.com`) stands for the key inside it, as OpenSSH
/// compares `@revoked` entries.
pub(crate) fn plain_of(blob: Vec<u8>) -> Vec<u8> {
    match Certificate::from_bytes(&blob) {
        Ok(cert) => wire(cert.public_key()).unwrap_or(blob),
        Err(_) => blob,
    }
}

/// A certificate that passed, and what is left to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The CA's fingerprint, for the log.
    pub ca: String,
    /// The validity window, when the clock could not judge it yet.
    pub unchecked_window: Option<(u64, u64)>,
}

/// Whether `now` (Unix seconds) is a clock that has been set.
pub fn clock_is_set(now: u64) -> bool {
    now >= CLOCK_EPOCH_SECS
}

/// The validity rule alone: `None` when `now` is within `[after, before)`.
pub fn window_failure(after: u64, before: u64, now: u64) -> Option<&'static str> {
    if now < after {
        Some("not yet valid")
    } else if now >= before {
        Some("expired")
    } else {
        None
    }
}

fn wire(key: &ssh_key::public::KeyData) -> Result<Vec<u8>, String> {
    PublicKey::from(key.clone())
        .to_bytes()
        .map_err(|e| format!("cannot encode a key of it ({e})"))
}

/// Checks a jail's host certificate for `host:port` at `now`; the error is one
/// line naming the rule that failed and both fingerprints.
pub fn check(
    cert: &Certificate,
    cas: Authorities<'_>,
    host: &str,
    port: u16,
    now: u64,
) -> Result<Accepted, Refusal> {
    let encoded = |k| {
        wire(k).map_err(|why| Refusal {
            why,
            revoked: false,
        })
    };
    let ca_blob = encoded(cert.signature_key())?;
    let host_blob = encoded(cert.public_key())?;
    let (ca, host_fp) = (blob_fingerprint(&ca_blob), blob_fingerprint(&host_blob));
    let refuse = |why: &str| {
        Err(Refusal {
            why: format!("{why} (CA {ca}, host key {host_fp})"),
            revoked: why.contains("@revoked"),
        })
    };
    if cert.cert_type() != CertType::Host {
        return refuse("not a host certificate");
    }
    if cas.revoked(&ca_blob) {
        return refuse("its CA is marked @revoked in known_hosts");
    }
    if cas.revoked(&host_blob) {
        return refuse("its host key is marked @revoked in known_hosts");
    }
    if !cas.trusts(&ca_blob, host, port) {
        return refuse(&format!(
            "signed by a CA not trusted for {}",
            known_hosts_name(host, port)
        ));
    }
    if cert.verify_signature().is_err() {
        return refuse("the CA's signature does not verify");
    }
    match cert.signature().algorithm() {
        Algorithm::Rsa { hash: None } | Algorithm::Dsa => {
            return refuse("signed with a disallowed algorithm (ssh-rsa SHA-1 or DSA)");
        }
        _ => {}
    }
    if !cert.critical_options().is_empty() {
        return refuse("it has critical options, which host certificates may not");
    }
    let principals = cert.valid_principals();
    if !principals.is_empty() && !principals.iter().any(|p| principal_matches(p, host)) {
        return refuse(&format!("{host} is not among its principals"));
    }
    let (after, before) = (cert.valid_after(), cert.valid_before());
    if !clock_is_set(now) {
        return Ok(Accepted {
            ca,
            unchecked_window: Some((after, before)),
        });
    }
    if let Some(why) = window_failure(after, before, now) {
        return refuse(why);
    }
    Ok(Accepted {
        ca,
        unchecked_window: None,
    })
}

/// A principal (which may hold `*`/`?` wildcards) against the dialled name.
fn principal_matches(principal: &str, host: &str) -> bool {
    // One pattern, no list: a principal holding a comma or `!` is literal text
    // no host name can equal.
    !principal.contains([',', '!'])
        && !principal.starts_with("|1|")
        && host_matches(principal, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_lines_are_read_and_others_ignored() {
        let text = "@cert-authority *.example,[10.0.0.1]:8022 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n\
                    @revoked * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBH7dvhA9XQ8GBWFXaYwdB9LlwZEXsl1PtWLTbrX4YEt\n\
                    jail.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n\
                    @cert-authority broken\n";
        let l = CaLines::parse(text);
        assert_eq!(l.cas.len(), 1);
        assert_eq!(l.revoked.len(), 1);
        let a = Authorities {
            fleet: &[],
            known_hosts: Some(&l),
        };
        assert!(a.any_for("jail.example", 22));
        assert!(a.any_for("10.0.0.1", 8022));
        assert!(!a.any_for("10.0.0.1", 22));
        assert!(!a.any_for("other.test", 22));
    }

    #[test]
    fn the_window_and_the_unset_clock() {
        assert_eq!(window_failure(10, 20, 9), Some("not yet valid"));
        assert_eq!(window_failure(10, 20, 20), Some("expired"));
        assert_eq!(window_failure(10, 20, 10), None);
        assert!(!clock_is_set(0));
        assert!(!clock_is_set(CLOCK_EPOCH_SECS - 1));
        assert!(clock_is_set(CLOCK_EPOCH_SECS));
    }

    #[test]
    fn principals_are_single_patterns() {
        assert!(principal_matches("jail-a.example", "jail-a.example"));
        assert!(principal_matches("*.example", "jail-a.example"));
        assert!(!principal_matches("*.example,jail", "jail"));
        assert!(!principal_matches("!x", "jail"));
        assert!(!principal_matches("jail-b.example", "jail-a.example"));
    }
}
