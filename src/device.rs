//! The device's own key, from the state file or an existing OpenSSH key, and
//! the lines `jailbird key` and `jailbird authorize` print.

use crate::config::{KeySource, Permit};
use crate::identity::{self, State};
use crate::limits::{DIRECT_TCPIP_FENCE, MAX_IDENTITY_FILE_BYTES};
use russh::keys::PrivateKey;
use std::io::Read as _;
use std::path::Path;

/// The key used to authenticate, and the state file's contents if there is one.
pub struct DeviceKey {
    pub key: PrivateKey,
    pub state: Option<State>,
}

impl DeviceKey {
    /// Loads (or, for the state file, creates) the device key. Errors are one line
    /// naming the file; nothing existing is ever rewritten here.
    pub fn load(state_path: &Path, source: &KeySource) -> Result<Self, String> {
        match source {
            KeySource::State => {
                let (state, created) =
                    identity::load_or_create(state_path).map_err(|e| e.to_string())?;
                let key = state.private_key();
                if created {
                    log::info!(
                        "created device identity {} ({})",
                        state_path.display(),
                        identity::fingerprint(key.public_key())
                    );
                }
                Ok(DeviceKey {
                    key,
                    state: Some(state),
                })
            }
            KeySource::OpenSsh(path) => {
                let key = load_openssh_key(path)?;
                let state = identity::load(state_path).map_err(|e| e.to_string())?;
                Ok(DeviceKey { key, state })
            }
        }
    }
}

/// Reads an unencrypted OpenSSH private key (migration from autossh setups).
pub fn load_openssh_key(path: &Path) -> Result<PrivateKey, String> {
    let what = |e: &dyn std::fmt::Display| format!("identity file {}: {e}", path.display());
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(|e| what(&e))?;
    identity::check_protected(&file).map_err(|e| what(&e))?;
    file.take(MAX_IDENTITY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| what(&e))?;
    if text.len() as u64 > MAX_IDENTITY_FILE_BYTES {
        return Err(what(&format!(
            "larger than {MAX_IDENTITY_FILE_BYTES} bytes"
        )));
    }
    // The OpenSSH format only, parsed by ssh-key directly: russh's
    // decode_secret_key also reads PuTTY, PKCS#8 and PEM files and decrypts,
    // which an unencrypted OpenSSH key never needs (and the binary need not carry).
    let key = PrivateKey::from_openssh(text.as_bytes())
        .map_err(|e| what(&format!("not an OpenSSH private key ({e})")))?;
    if key.is_encrypted() {
        return Err(what(
            &"encrypted: jailbird needs an unencrypted key (ssh-keygen -p -N '')",
        ));
    }
    Ok(key)
}

/// Why a user certificate cannot be used now.
#[derive(Debug, PartialEq, Eq)]
pub enum CertProblem {
    /// Unreadable, too large, not a certificate, or not the device key's:
    /// retrying with the same file cannot help.
    Unusable(String),
    /// Expired (or not yet valid): a renewer may replace the file.
    OutsideWindow(String),
}

impl std::fmt::Display for CertProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertProblem::Unusable(m) | CertProblem::OutsideWindow(m) => f.write_str(m),
        }
    }
}

/// Reads `--certificate` (bounded) and checks that it certifies `key` and is
/// within its validity window at `now` (Unix seconds; a clock that is not set
/// yet cannot judge the window, see hostcert.rs).
pub fn load_certificate(
    path: &Path,
    key: &PrivateKey,
    now: u64,
) -> Result<russh::keys::Certificate, CertProblem> {
    let what = |e: &dyn std::fmt::Display| format!("certificate {}: {e}", path.display());
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(MAX_IDENTITY_FILE_BYTES + 1)
                .read_to_string(&mut text)
        })
        .map_err(|e| CertProblem::Unusable(what(&e)))?;
    if text.len() as u64 > MAX_IDENTITY_FILE_BYTES {
        return Err(CertProblem::Unusable(what(&format!(
            "larger than {MAX_IDENTITY_FILE_BYTES} bytes"
        ))));
    }
    let cert = russh::keys::Certificate::from_openssh(text.trim())
        .map_err(|e| CertProblem::Unusable(what(&format!("not an OpenSSH certificate ({e})"))))?;
    let public = russh::keys::PublicKey::from(cert.public_key().clone());
    if cert.public_key() != key.public_key().key_data() {
        return Err(CertProblem::Unusable(what(&format!(
            "certifies key {}, not this device's key {}",
            identity::fingerprint(&public),
            identity::fingerprint(key.public_key())
        ))));
    }
    if cert.cert_type() != russh::keys::ssh_key::certificate::CertType::User {
        return Err(CertProblem::Unusable(what(
            &"a host certificate, not a user one",
        )));
    }
    if crate::hostcert::clock_is_set(now)
        && let Some(why) =
            crate::hostcert::window_failure(cert.valid_after(), cert.valid_before(), now)
    {
        return Err(CertProblem::OutsideWindow(what(&format!(
            "{why} (valid {}..{}, now {now}); waiting for a renewed one",
            cert.valid_after(),
            cert.valid_before()
        ))));
    }
    Ok(cert)
}

/// `jailbird key`: the public key line.
pub fn key_line(key: &PrivateKey) -> String {
    identity::public_line(
        key.public_key(),
        &format!("jailbird@{}", identity::hostname()),
    )
}

/// `jailbird authorize`: the restricted authorized_keys line for the jail.
/// OpenSSH clients send `localhost` when no bind address is given, so a bare
/// port is permitted under both names.
pub fn authorize_line(key: &PrivateKey, permit: &Permit, comment: Option<&str>) -> String {
    let listen = match permit {
        Permit::Listen(l) => l.as_str(),
        Permit::Open(o) => {
            return authorize_with(key, &format!(",permitopen=\"{o}\""), comment);
        }
    };
    let fence = format!("permitopen=\"{DIRECT_TCPIP_FENCE}\"");
    let permits = if listen.starts_with('/') {
        // permitlisten covers TCP only; the jail's sshd_config limits unix sockets
        // (AllowStreamLocalForwarding remote, and the tunnel user's directory).
        fence
    } else if listen.contains(':') {
        format!("permitlisten=\"{listen}\",{fence}")
    } else {
        format!("permitlisten=\"localhost:{listen}\",permitlisten=\"127.0.0.1:{listen}\",{fence}")
    };
    authorize_with(key, &format!(",{permits}"), comment)
}

fn authorize_with(key: &PrivateKey, permits: &str, comment: Option<&str>) -> String {
    let default_comment = format!("jailbird@{}", identity::hostname());
    let key = identity::public_line(key.public_key(), comment.unwrap_or(&default_comment));
    format!("restrict,port-forwarding{permits},command=\"/bin/false\" {key}")
}
