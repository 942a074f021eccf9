//! Operators reaching devices: `warden connect` (a grant, then ssh through the
//! jail that holds the device now), `warden ssh-config`, and the operator
//! certificate authority (`warden ca init`; a user certificate per connect,
//! valid for the grant's window and for that one device).

use crate::cli::{ConnectArgs, SshConfigArgs};
use crate::db::{Conn, DbUrl, Mode};
use crate::error::Error;
use crate::registry::{self, Device, Granted, Jail, Which};
use crate::types::{self, DeviceId, Mac, Name, PublicKey, shell_word};
use ssh_key::certificate::{Builder, CertType};
use ssh_key::private::Ed25519Keypair;
use ssh_key::{Algorithm, LineEnding};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A certificate is valid from this long before its grant, for device clocks
/// a little behind the admin host's.
pub const CERT_CLOCK_SKEW_SECS: i64 = 60;
/// Largest key or certificate file read.
pub const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;
/// The extensions an operator certificate carries: a terminal, nothing else
/// (no agent, X11 or port forwarding on the device).
pub const CERT_EXTENSIONS: &[&str] = &["permit-pty"];
/// File names under the certificate directory.
const JAILS_KNOWN_HOSTS: &str = "jails_known_hosts";

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
        let now = registry::now();
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
    let jail = registry::jail(&mut c, name)?;
    let pool = registry::pool_named(&mut c, &jail.pool)?
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
    let until = registry::rfc3339(cert.valid_before() as i64);
    c.transaction(|c| {
        registry::audit(
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

// ---- files --------------------------------------------------------------------

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Creates `path` with `mode`; fails if it exists.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::runtime(format!("{}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(fail)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(fail)
}

/// Replaces `path` atomically with `bytes` (mode 0600).
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = with_suffix(path, &format!(".{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, bytes, 0o600)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::runtime(format!("{}: {e}", path.display())))
}

/// The operator's public key, from `IDENTITY.pub`: (registry form, ssh-key form).
fn identity_public(identity: &Path) -> Result<(PublicKey, ssh_key::PublicKey), Error> {
    let p = with_suffix(identity, ".pub");
    let what = format!("--identity {}", p.display());
    let meta = std::fs::metadata(&p).map_err(|e| Error::invalid(format!("{what}: {e}")))?;
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(Error::invalid(format!("{what}: not a public key file")));
    }
    let text = std::fs::read_to_string(&p).map_err(|e| Error::invalid(format!("{what}: {e}")))?;
    let line = text.lines().next().unwrap_or("").trim();
    let key = PublicKey::parse(&what, line)?;
    let ssh = ssh_key::PublicKey::from_openssh(&key.line())
        .map_err(|e| Error::invalid(format!("{what}: {e}")))?;
    Ok((key, ssh))
}

/// Where `connect` writes certificates and the jails' known_hosts.
fn cert_dir(given: Option<&Path>) -> Result<PathBuf, Error> {
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => match (
            std::env::var_os("XDG_RUNTIME_DIR"),
            std::env::var_os("HOME"),
        ) {
            (Some(r), _) if !r.is_empty() => PathBuf::from(r).join("warden"),
            (_, Some(h)) if !h.is_empty() => PathBuf::from(h).join(".cache/warden"),
            _ => {
                return Err(Error::invalid(
                    "no $XDG_RUNTIME_DIR or $HOME: give --cert-dir",
                ));
            }
        },
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::runtime(format!("{}: {e}", dir.display())))?;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    Ok(dir)
}

/// The jails' host keys as known_hosts lines (`[host]:port` off port 22).
fn jails_known_hosts(jails: &[Jail]) -> Result<String, Error> {
    let mut out = String::from("# the jails' host keys, written by warden\n");
    for j in jails {
        out.push_str(&crate::render::known_hosts_line(&j.address, &j.host_key));
    }
    Ok(out)
}

// ---- the ssh command ----------------------------------------------------------

fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A path that goes into an ssh option or ssh_config: ssh splits such values
/// at spaces and expands `%` tokens in them, so neither (nor quotes or control
/// characters) is allowed.
fn safe_path(what: &str, p: &Path) -> Result<String, Error> {
    let s = p.display().to_string();
    if s.is_empty()
        || s.contains(|c: char| c.is_whitespace() || c.is_control() || "\"'%".contains(c))
    {
        return Err(Error::invalid(format!(
            "{what} {}: a path without spaces, quotes or %",
            types::quote(&s)
        )));
    }
    Ok(s)
}

/// The registry's values arrive typed (store/row.rs checked each); what is
/// left is what a valid id may still do on ssh's command line.
fn check_device_text(d: &Device) -> Result<(), Error> {
    if d.id.as_str().starts_with('-') {
        return Err(Error::invalid(format!(
            "device {}: an id starting with '-' would be an ssh option",
            d.id
        )));
    }
    Ok(())
}

/// What the route through a jail needs.
struct Route<'a> {
    jail: &'a Jail,
    port: u16,
    identity: Option<&'a Path>,
    known_hosts: Option<&'a Path>,
}

/// `ssh -W localhost:PORT OPUSER@JAIL`, the ProxyCommand: the jail's sshd
/// lets the operator's key open exactly the granted devices' ports.
fn proxy_command(r: &Route) -> Result<Vec<String>, Error> {
    let hp = r.jail.address.clone();
    let mut w: Vec<String> = vec!["ssh".into()];
    if let Some(kh) = r.known_hosts {
        let kh = safe_path("--known-hosts", kh)?;
        w.extend(["-o".into(), format!("UserKnownHostsFile={kh}")]);
        w.extend(["-o".into(), "StrictHostKeyChecking=yes".into()]);
    }
    if let Some(id) = r.identity {
        w.extend([
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-i".into(),
            safe_path("--identity", id)?,
        ]);
    }
    w.extend([
        "-p".into(),
        hp.port.to_string(),
        "-W".into(),
        format!("localhost:{}", r.port),
        format!("{}@{}", r.jail.operator_user, hp.host),
    ]);
    Ok(w)
}

/// The ProxyCommand as ssh reads it: shell words, `%` doubled (ssh expands
/// `%` tokens in it).
fn proxy_line(r: &Route) -> Result<String, Error> {
    Ok(shell_line(&proxy_command(r)?).replace('%', "%%"))
}

// ---- connect ------------------------------------------------------------------

fn which(id: &Option<String>, mac: &Option<String>, verb: &str) -> Result<Which, Error> {
    match (id, mac) {
        (Some(id), _) => Ok(Which::Id(DeviceId::parse(id)?)),
        (None, Some(m)) => Ok(Which::Mac(Mac::parse(m)?)),
        (None, None) => Err(Error::invalid(format!("{verb}: give an ID or --mac MAC"))),
    }
}

/// The operator who connects: `--operator`, else the one whose key `--identity` is.
fn who(c: &mut Conn, a: &ConnectArgs, key: Option<&PublicKey>) -> Result<Name, Error> {
    let owner = match key {
        Some(k) => registry::operator_for_key(c, &k.fingerprint)?.map(|k| k.operator),
        None => None,
    };
    match (&a.operator, owner, key) {
        (Some(n), Some(o), Some(k)) if o != *n.as_str() => Err(Error::invalid(format!(
            "--identity key {} is operator {o}'s, not {n}'s",
            k.fingerprint
        ))),
        (Some(n), None, Some(k)) => Err(Error::invalid(format!(
            "--identity key {} is not operator {n}'s (warden operator add {n} --key ...)",
            k.fingerprint
        ))),
        (Some(n), _, _) => Name::parse("operator", n),
        (None, Some(o), _) => Ok(o),
        (None, None, Some(k)) => Err(Error::invalid(format!(
            "--identity key {} is no operator's",
            k.fingerprint
        ))),
        (None, None, None) => Err(Error::invalid(
            "connect: give --operator NAME or --identity KEY",
        )),
    }
}

/// `warden connect`: checks everything, records the grant, signs a
/// certificate when a CA is given, records the connect, then runs (or prints)
/// `ssh -o ProxyCommand='ssh -W localhost:PORT OPUSER@JAIL' -o HostKeyAlias=ID ... ID`.
pub fn connect(db: &DbUrl, a: &ConnectArgs) -> Result<String, Error> {
    let which = which(&a.id, &a.mac, "connect")?;
    let secs = types::parse_duration(&a.duration)?.as_secs() as i64;
    crate::check_reason(a.reason.as_deref())?;
    let identity = a.identity.as_deref().map(identity_public).transpose()?;
    let ca = match (&a.ca, &identity) {
        (Some(_), None) => return Err(Error::invalid("--ca needs --identity: the key to certify")),
        (Some(p), Some(_)) => Some(load_ca(p)?),
        (None, _) => None,
    };
    if let Some(p) = &a.identity {
        safe_path("--identity", p)?;
    }
    let dir = cert_dir(a.cert_dir.as_deref())?;
    safe_path("--cert-dir", &dir)?;
    let mut c = Conn::open(db, Mode::Admin)?;
    let operator = who(&mut c, a, identity.as_ref().map(|(k, _)| k))?;
    // Everything that goes into the command is checked before the grant is recorded.
    let device = registry::show(&mut c, &which)?;
    check_device_text(&device)?;
    if a.reason.is_none()
        && registry::pools(&mut c)?
            .iter()
            .any(|p| p.name == device.pool && p.require_reason)
    {
        return Err(Error::invalid(format!(
            "pool {} requires a --reason for every grant",
            device.pool
        )));
    }
    let jail = registry::jail_for(&mut c, &device)?;
    let g = registry::grant(&mut c, &which, &operator, secs, a.reason.as_deref())?;
    c.fix_ownership();
    let kh = dir.join(JAILS_KNOWN_HOSTS);
    replace_file(
        &kh,
        jails_known_hosts(&registry::jails(&mut c)?)?.as_bytes(),
    )?;
    let cert = match (&ca, &identity) {
        (Some(ca), Some((_, public))) => {
            let cert = ca.sign(public, &g, operator.as_str())?;
            let path = dir.join(format!("{}-cert.pub", g.device.id));
            let text = cert
                .to_openssh()
                .map_err(|e| Error::runtime(format!("encoding the certificate: {e}")))?;
            replace_file(&path, format!("{text}\n").as_bytes())?;
            Some((path, cert.serial()))
        }
        _ => None,
    };
    let detail = format!(
        "jail {} port {} grant {} {}",
        jail.name,
        g.device.port,
        g.id,
        match &cert {
            Some((_, serial)) => format!(
                "certificate serial {serial} until {}",
                registry::rfc3339(g.expires)
            ),
            None => "no certificate".into(),
        }
    );
    c.transaction(|c| {
        registry::audit_op(
            c,
            "connect",
            Some(g.device.id.as_str()),
            Some(operator.as_str()),
            a.reason.as_deref(),
            Some(&detail),
        )
        .map(|_| ())
    })?;
    let route = Route {
        jail: &jail,
        port: g.device.port,
        identity: a.identity.as_deref(),
        known_hosts: Some(&kh),
    };
    let mut w: Vec<String> = vec![
        "ssh".into(),
        "-o".into(),
        format!("ProxyCommand={}", proxy_line(&route)?),
        "-o".into(),
        format!("HostKeyAlias={}", g.device.id),
    ];
    if let Some(id) = &a.identity {
        w.extend([
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-i".into(),
            safe_path("--identity", id)?,
        ]);
    }
    if let Some((path, _)) = &cert {
        w.extend([
            "-o".into(),
            format!("CertificateFile={}", safe_path("certificate", path)?),
        ]);
    }
    w.push(g.device.id.to_string());
    w.extend(a.ssh_args.iter().cloned());
    let until = registry::rfc3339(g.expires);
    if a.print {
        return Ok(format!("{}\n", shell_line(&w)));
    }
    eprintln!(
        "warden: operator {operator} may reach {} via jail {} until {until}",
        g.device.id, jail.name
    );
    let status = std::process::Command::new(&w[0])
        .args(&w[1..])
        .status()
        .map_err(|e| Error::runtime(format!("cannot run ssh: {e}")))?;
    match status.code() {
        Some(0) => Ok(String::new()),
        Some(code) => Err(Error::Child(code)),
        None => Err(Error::runtime("ssh was killed by a signal")),
    }
}

// ---- ssh-config ---------------------------------------------------------------

/// `warden ssh-config`: one `Host ID [MAC]` stanza per unrevoked device, its
/// ProxyCommand through the jail holding it now (or the pool's first). The
/// grant still decides at login; regenerate after devices move jails.
pub fn ssh_config(db: &DbUrl, a: &SshConfigArgs) -> Result<String, Error> {
    let pool = a
        .pool
        .as_deref()
        .map(|p| Name::parse("pool", p))
        .transpose()?;
    let mut c = Conn::open(db, Mode::Admin)?;
    let jails = registry::jails(&mut c)?;
    if let Some(kh) = &a.known_hosts {
        replace_file(kh, jails_known_hosts(&jails)?.as_bytes())?;
    }
    let devices: Vec<Device> = registry::devices(&mut c, pool.as_ref())?
        .into_iter()
        .filter(|d| !d.revoked)
        .collect();
    let mut out = format!(
        "# ssh_config for warden's devices ({} of them), written at {}.\n\
         # `ssh DEVICE-ID` goes through the device's jail; the jail admits you only\n\
         # while you hold a grant (warden grant / warden connect).\n",
        devices.len(),
        registry::rfc3339(registry::now())
    );
    for d in &devices {
        if let Err(e) = check_device_text(d) {
            eprintln!("warden: ssh-config: left out: {e}");
            continue;
        }
        let Some(jail) = d
            .online
            .as_ref()
            .and_then(|n| jails.iter().find(|j| j.name == *n && j.pool == d.pool))
            .or_else(|| jails.iter().find(|j| j.pool == d.pool))
        else {
            continue;
        };
        let route = Route {
            jail,
            port: d.port,
            identity: a.identity.as_deref(),
            known_hosts: a.known_hosts.as_deref(),
        };
        let names = match &d.mac {
            Some(m) => format!("{} {m}", d.id),
            None => d.id.to_string(),
        };
        out.push_str(&format!(
            "\nHost {names}\n    HostKeyAlias {}\n    ProxyCommand {}\n",
            d.id,
            proxy_line(&route)?
        ));
        if let Some(id) = &a.identity {
            out.push_str(&format!(
                "    IdentityFile {}\n    IdentitiesOnly yes\n",
                safe_path("--identity", id)?
            ));
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("localhost:10000"), "localhost:10000");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("$(reboot)"), "'$(reboot)'");
        // Glob characters and ssh's % tokens are quoted too.
        assert_eq!(shell_word("[::1]"), "'[::1]'");
        assert_eq!(shell_word("a%h"), "'a%h'");
    }
}
