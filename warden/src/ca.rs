//! The operator certificate authority (`warden ca init`): a user certificate
//! per connect, valid for the grant's window and for that one device; host
//! certificates for jails (`warden jail sign`); the device side of both.

use crate::error::Error;
use crate::fsio::{with_suffix, write_new};
use crate::store::conn::{Conn, DbUrl, Mode};
use crate::store::{self, Device, Granted, Jail};
use crate::types::{self, Name, PublicKey};
use ssh_key::certificate::{Builder, CertType};
use ssh_key::private::Ed25519Keypair;
use ssh_key::{Algorithm, LineEnding};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A certificate is valid from this long before its grant, for device clocks
/// a little behind the admin host's.
pub const CERT_CLOCK_SKEW_SECS: i64 = 60;
/// Largest key or certificate file read.
pub const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;
/// The extensions an operator certificate carries: a terminal, nothing else
/// (no agent, X11 or port forwarding on the device).
pub const CERT_EXTENSIONS: &[&str] = &["permit-pty"];

// ---- the CA -------------------------------------------------------------------

/// The operator CA's private key, loaded from its file.
pub struct Ca {
    key: ssh_key::PrivateKey,
}

fn random<const N: usize>() -> Result<[u8; N], Error> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::runtime("the system random source failed"))?;
    Ok(b)
}

/// Creates `path` (the CA's private key, 0600) and `path.pub`; refuses to
/// replace either: a new CA key would void every device's trust.
pub fn ca_init(path: &Path) -> Result<String, Error> {
    let pub_path = with_suffix(path, ".pub");
    for p in [path, pub_path.as_path()] {
        if p.symlink_metadata().is_ok() {
            return Err(Error::invalid(format!(
                "{}: exists; a CA key is never overwritten",
                p.display()
            )));
        }
    }
    let mut key = ssh_key::PrivateKey::from(Ed25519Keypair::from_seed(&random::<32>()?));
    key.set_comment("warden-operator-ca");
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| Error::runtime(format!("encoding the CA key: {e}")))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| Error::runtime(format!("encoding the CA key: {e}")))?;
    write_new(path, pem.as_bytes(), 0o600)?;
    write_new(&pub_path, format!("{public}\n").as_bytes(), 0o644)?;
    Ok(format!(
        "operator CA {} ({}); devices trust {} (warden device-config ID --operator-ca {})\n",
        path.display(),
        key.public_key().fingerprint(ssh_key::HashAlg::Sha256),
        pub_path.display(),
        path.display()
    ))
}

/// Loads the CA key, refusing a file others may read or that is not ours (as
/// ssh refuses an unprotected private key), an encrypted one, or a non-ed25519 one.
pub fn load_ca(path: &Path) -> Result<Ca, Error> {
    let shown = path.display();
    // One open file for the checks and the read: no swap in between.
    let mut file =
        std::fs::File::open(path).map_err(|e| Error::invalid(format!("--ca {shown}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::invalid(format!("--ca {shown}: {e}")))?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE_BYTES {
        return Err(Error::invalid(format!("--ca {shown}: not a key file")));
    }
    if meta.mode() & 0o077 != 0 || Some(meta.uid()) != jailbird::identity::effective_uid() {
        return Err(Error::invalid(format!(
            "--ca {shown}: mode {:04o}, owner uid {}: the CA key must be the caller's and 0600",
            meta.mode() & 0o7777,
            meta.uid()
        )));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text)
        .map_err(|e| Error::invalid(format!("--ca {shown}: {e}")))?;
    let key = ssh_key::PrivateKey::from_openssh(text.as_bytes())
        .map_err(|e| Error::invalid(format!("--ca {shown}: not an OpenSSH private key ({e})")))?;
    if key.is_encrypted() {
        return Err(Error::invalid(format!(
            "--ca {shown}: encrypted keys are not supported; keep the file 0600 on the admin host"
        )));
    }
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(Error::invalid(format!("--ca {shown}: want an ed25519 key")));
    }
    Ok(Ca { key })
}

impl Ca {
    /// A user certificate for `subject`: principal = the device id, key id
    /// naming operator, grant and device, serial = the grant's id, valid from
    /// just before the grant until it expires, a terminal and nothing more.
    pub fn sign(
        &self,
        subject: &ssh_key::PublicKey,
        g: &Granted,
        operator: &str,
    ) -> Result<ssh_key::Certificate, Error> {
        let fail = |e: ssh_key::Error| Error::runtime(format!("signing the certificate: {e}"));
        let after = (g.granted - CERT_CLOCK_SKEW_SECS).max(0) as u64;
        let mut b = Builder::new(
            random::<32>()?.to_vec(),
            subject.key_data().clone(),
            after,
            g.expires as u64,
        )
        .map_err(fail)?;
        b.serial(g.id as u64).map_err(fail)?;
        b.cert_type(CertType::User).map_err(fail)?;
        b.key_id(cert_key_id(operator, g)).map_err(fail)?;
        b.valid_principal(g.device.id.to_string()).map_err(fail)?;
        for ext in CERT_EXTENSIONS {
            b.extension(*ext, "").map_err(fail)?;
        }
        b.comment(format!("warden:{operator}@{}", g.device.id))
            .map_err(fail)?;
        b.sign(&self.key).map_err(fail)
    }
}

/// Host certificates start this long before they are made, for device
/// clocks behind the admin host's.
pub const HOST_CERT_BACKDATE_SECS: i64 = 3600;

impl Ca {
    /// The CA's public key, "TYPE BASE64".
    pub fn public_line(&self) -> String {
        let line = self.key.public_key().to_openssh().unwrap_or_default();
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A host certificate for `jail`'s host key: principal = the host name
    /// devices dial, valid from an hour ago for `valid_secs`.
    pub fn sign_host(&self, jail: &Jail, valid_secs: i64) -> Result<ssh_key::Certificate, Error> {
        let fail = |e: ssh_key::Error| Error::runtime(format!("signing the host certificate: {e}"));
        let host = ssh_key::PublicKey::from_openssh(&jail.host_key.line())
            .map_err(|e| Error::runtime(format!("jail {}: stored host key: {e}", jail.name)))?;
        let now = store::now();
        let after = (now - HOST_CERT_BACKDATE_SECS).max(0) as u64;
        let before = (now + valid_secs) as u64;
        let mut b = Builder::new(
            random::<32>()?.to_vec(),
            host.key_data().clone(),
            after,
            before,
        )
        .map_err(fail)?;
        b.serial(now as u64).map_err(fail)?;
        b.cert_type(CertType::Host).map_err(fail)?;
        b.key_id(format!("warden jail {} pool {}", jail.name, jail.pool))
            .map_err(fail)?;
        b.valid_principal(jail.address.host.clone()).map_err(fail)?;
        b.comment(format!("warden:{}", jail.name)).map_err(fail)?;
        b.sign(&self.key).map_err(fail)
    }
}

/// `warden jail sign`: the pool must name this CA (devices trust the pool's
/// CA), then the certificate is written to `out`.
pub fn jail_sign(
    db: &DbUrl,
    name: &Name,
    ca: &Path,
    valid: &str,
    out: Option<&Path>,
) -> Result<String, Error> {
    let valid_secs = types::parse_duration(valid)?.as_secs() as i64;
    let ca = load_ca(ca)?;
    let mut c = Conn::open(db, Mode::Admin)?;
    let jail = store::jail(&mut c, name)?;
    let pool = store::pool_named(&mut c, &jail.pool)?
        .ok_or_else(|| Error::runtime(format!("jail {name} names a missing pool")))?;
    match &pool.host_ca {
        Some(k) if k.line() == ca.public_line() => {}
        Some(_) => {
            return Err(Error::invalid(format!(
                "--ca is not pool {}'s host CA (warden pool ls --json shows it)",
                pool.name
            )));
        }
        None => {
            return Err(Error::invalid(format!(
                "pool {} has no host CA: warden pool host-ca {} --key \"$(cat CA.pub)\"",
                pool.name, pool.name
            )));
        }
    }
    let cert = ca.sign_host(&jail, valid_secs)?;
    let text = cert
        .to_openssh()
        .map_err(|e| Error::runtime(format!("encoding the certificate: {e}")))?;
    let path = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{name}-cert.pub")));
    let _ = std::fs::remove_file(&path);
    write_new(&path, format!("{text}\n").as_bytes(), 0o644)?;
    let until = store::rfc3339(cert.valid_before() as i64);
    c.transaction(|c| {
        store::audit(
            c,
            "jail-sign",
            None,
            None,
            Some(&format!("{name} serial {} until {until}", cert.serial())),
        )
    })?;
    Ok(format!(
        "{}: host certificate for jail {name} ({}) until {until}; sshd: HostCertificate {}\n",
        path.display(),
        jail.address.host,
        path.display()
    ))
}

/// The certificate's key id, which the device's sshd logs at every login.
pub fn cert_key_id(operator: &str, g: &Granted) -> String {
    format!(
        "warden operator={operator} grant={} device={}",
        g.id, g.device.id
    )
}

/// The device side of operator certificates, for `device-config --operator-ca`:
/// (the CA's public key line, the principals file, the sshd drop-in).
pub fn device_trust(
    ca_path: &Path,
    d: &Device,
    dir_on_device: &str,
) -> Result<(String, String, String), Error> {
    let pub_path = with_suffix(ca_path, ".pub");
    let what = format!("--operator-ca {}", pub_path.display());
    let text =
        std::fs::read_to_string(&pub_path).map_err(|e| Error::invalid(format!("{what}: {e}")))?;
    let key = PublicKey::parse(&what, text.lines().next().unwrap_or("").trim())?;
    let drop_in = format!(
        "# /etc/ssh/sshd_config.d/warden-operators.conf for device {id}, written by warden.\n\
         # Operators log in with a certificate from warden's operator CA whose principal is\n\
         # this device's id; it is valid only while their grant is (warden connect {id}).\n\
         TrustedUserCAKeys {dir}/warden_operator_ca.pub\n\
         AuthorizedPrincipalsFile {dir}/warden_principals\n",
        id = d.id,
        dir = dir_on_device,
    );
    Ok((format!("{}\n", key.line()), format!("{}\n", d.id), drop_in))
}
