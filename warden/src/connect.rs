//! Operators reaching devices: `warden connect` (a grant, then ssh through the
//! jail that holds the device now) and `warden ssh-config`.

use crate::ca::{self, MAX_KEY_FILE_BYTES};
use crate::cli::{ConnectArgs, SshConfigArgs};
use crate::error::Error;
use crate::fsio::{replace, with_suffix};
use crate::store::conn::{Conn, DbUrl, Mode};
use crate::store::{self, Device, Jail, Which};
use crate::types::{self, DeviceId, Name, PublicKey, shell_word};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// File names under the certificate directory.
const JAILS_KNOWN_HOSTS: &str = "jails_known_hosts";

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

/// known_hosts lines pinning a device's recorded sshd host keys under the
/// name ssh checks it by, its `HostKeyAlias` (the device id).
fn device_known_hosts(id: &DeviceId, keys: &[PublicKey]) -> Result<String, Error> {
    // An id is [A-Za-z0-9._-]: no pattern characters (* ? ! ,), no spaces.
    let id = DeviceId::parse(id.as_str())?;
    let mut out = String::new();
    for k in keys {
        let k = PublicKey::parse("recorded host key", &k.line())?;
        out.push_str(&format!("{id} {}\n", k.line()));
    }
    Ok(out)
}

/// What an operator is told about a device's host key before ssh runs: the
/// recorded fingerprints (ssh prints the offered one if they differ), or
/// that there are none and ssh trusts on first use.
fn pin_note(id: &DeviceId, keys: &[PublicKey]) -> String {
    if keys.is_empty() {
        format!(
            "warden: device {id} has no recorded sshd host key: ssh trusts it on first use (record it: warden enroll {id} ... --host-key \"TYPE BASE64\")"
        )
    } else {
        let fps: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
        format!(
            "warden: device {id}: sshd host key pinned to {} (recorded in the registry; ssh refuses any other)",
            fps.join(", ")
        )
    }
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

/// The operator who connects: `--operator`, else the one whose key `--identity` is.
fn who(c: &mut Conn, a: &ConnectArgs, key: Option<&PublicKey>) -> Result<Name, Error> {
    let owner = match key {
        Some(k) => store::operator_for_key(c, &k.fingerprint)?.map(|k| k.operator),
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

/// The operator certificate for grant `g`, written beside the jails'
/// known_hosts: (its path, its serial).
fn write_certificate(
    ca: &ca::Ca,
    public: &ssh_key::PublicKey,
    g: &store::Granted,
    dir: &Path,
    operator: &Name,
) -> Result<(PathBuf, u64), Error> {
    let cert = ca.sign(public, g, operator.as_str())?;
    let path = dir.join(format!("{}-cert.pub", g.device.id));
    let text = cert
        .to_openssh()
        .map_err(|e| Error::runtime(format!("encoding the certificate: {e}")))?;
    replace(&path, format!("{text}\n").as_bytes(), 0o600)?;
    Ok((path, cert.serial()))
}

/// The jail through which `which` is reached, after the checks that must
/// pass before a grant is recorded (everything that goes into the command).
pub fn route_checked(c: &mut Conn, which: &Which, has_reason: bool) -> Result<Jail, Error> {
    let device = store::show(c, which)?;
    check_device_text(&device)?;
    if !has_reason && store::pool_named(c, &device.pool)?.is_some_and(|p| p.require_reason) {
        return Err(Error::invalid(format!(
            "pool {} requires a --reason for every grant",
            device.pool
        )));
    }
    store::jail_for(c, &device)
}

/// `ssh -o ProxyCommand=... -o HostKeyAlias=ID [-i KEY] [cert] ID [ARGS...]`.
fn ssh_words(
    route: &Route,
    id: &DeviceId,
    a: &ConnectArgs,
    cert: Option<&Path>,
    pinned: Option<&Path>,
) -> Result<Vec<String>, Error> {
    let mut w: Vec<String> = vec![
        "ssh".into(),
        "-o".into(),
        format!("ProxyCommand={}", proxy_line(route)?),
        "-o".into(),
        format!("HostKeyAlias={id}"),
    ];
    if let Some(kh) = pinned {
        w.extend([
            "-o".into(),
            format!("UserKnownHostsFile={}", safe_path("known_hosts", kh)?),
            "-o".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
        ]);
    }
    if let Some(idf) = &a.identity {
        w.extend([
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-i".into(),
            safe_path("--identity", idf)?,
        ]);
    }
    if let Some(path) = cert {
        w.extend([
            "-o".into(),
            format!("CertificateFile={}", safe_path("certificate", path)?),
        ]);
    }
    w.push(id.to_string());
    w.extend(a.ssh_args.iter().cloned());
    Ok(w)
}

/// The ssh command line that reaches `d` through `jail` with the
/// operator's default key and known_hosts (the HTTP API's grant answer).
pub fn ssh_line(jail: &Jail, d: &Device) -> Result<String, Error> {
    check_device_text(d)?;
    let route = Route {
        jail,
        port: d.port,
        identity: None,
        known_hosts: None,
    };
    let a = ConnectArgs {
        id: Some(d.id.to_string()),
        mac: None,
        operator: None,
        duration: String::new(),
        reason: None,
        identity: None,
        ca: None,
        cert_dir: None,
        print: true,
        ssh_args: Vec::new(),
    };
    Ok(shell_line(&ssh_words(&route, &d.id, &a, None, None)?))
}

/// Runs the ssh command; its exit status becomes warden's.
fn run_ssh(w: &[String]) -> Result<String, Error> {
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

/// `warden connect`: checks everything, records the grant, signs a
/// certificate when a CA is given, records the connect, then runs (or prints)
/// `ssh -o ProxyCommand='ssh -W localhost:PORT OPUSER@JAIL' -o HostKeyAlias=ID ... ID`.
pub fn connect(db: &DbUrl, a: &ConnectArgs) -> Result<String, Error> {
    let which = Which::parse(&a.id, &a.mac, "connect")?;
    let secs = types::parse_duration(&a.duration)?.as_secs() as i64;
    types::check_reason(a.reason.as_deref())?;
    let identity = a.identity.as_deref().map(identity_public).transpose()?;
    let ca = match (&a.ca, &identity) {
        (Some(_), None) => return Err(Error::invalid("--ca needs --identity: the key to certify")),
        (Some(p), Some(_)) => Some(ca::load_ca(p)?),
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
    let jail = route_checked(&mut c, &which, a.reason.is_some())?;
    let g = store::grant(&mut c, &which, &operator, secs, a.reason.as_deref())?;
    c.fix_ownership();
    let kh = dir.join(JAILS_KNOWN_HOSTS);
    replace(
        &kh,
        jails_known_hosts(&store::jails(&mut c)?)?.as_bytes(),
        0o600,
    )?;
    let cert = match (&ca, &identity) {
        (Some(ca), Some((_, public))) => Some(write_certificate(ca, public, &g, &dir, &operator)?),
        _ => None,
    };
    // The device's own sshd key, pinned when the registry has it.
    let host_keys = store::host_keys(&mut c, &g.device.id)?;
    let pinned = if host_keys.is_empty() {
        None
    } else {
        let path = dir.join(format!("{}.known_hosts", g.device.id));
        replace(
            &path,
            device_known_hosts(&g.device.id, &host_keys)?.as_bytes(),
            0o600,
        )?;
        Some(path)
    };
    eprintln!("{}", pin_note(&g.device.id, &host_keys));
    let detail = format!(
        "jail {} port {} grant {} {}",
        jail.name,
        g.device.port,
        g.id,
        match &cert {
            Some((_, serial)) => format!(
                "certificate serial {serial} until {}",
                store::rfc3339(g.expires)
            ),
            None => "no certificate".into(),
        }
    );
    c.transaction(|c| {
        store::audit_op(
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
    let w = ssh_words(
        &route,
        &g.device.id,
        a,
        cert.as_ref().map(|(p, _)| p.as_path()),
        pinned.as_deref(),
    )?;
    let until = store::rfc3339(g.expires);
    if a.print {
        return Ok(format!("{}\n", shell_line(&w)));
    }
    eprintln!(
        "warden: operator {operator} may reach {} via jail {} until {until}",
        g.device.id, jail.name
    );
    run_ssh(&w)
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
    let jails = store::jails(&mut c)?;
    let devices: Vec<Device> = store::devices(&mut c, pool.as_ref())?
        .into_iter()
        .filter(|d| !d.revoked)
        .collect();
    let host_keys = store::all_host_keys(&mut c)?;
    if let Some(kh) = &a.known_hosts {
        let mut text = jails_known_hosts(&jails)?;
        text.push_str("# the devices' own sshd host keys, under their HostKeyAlias (the id)\n");
        for d in &devices {
            if let Some(keys) = host_keys.get(&d.id) {
                text.push_str(&device_known_hosts(&d.id, keys)?);
            }
        }
        replace(kh, text.as_bytes(), 0o600)?;
    }
    let mut out = format!(
        "# ssh_config for warden's devices ({} of them), written at {}.\n\
         # `ssh DEVICE-ID` goes through the device's jail; the jail admits you only\n\
         # while you hold a grant (warden grant / warden connect).\n",
        devices.len(),
        store::rfc3339(store::now())
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
        let keys = host_keys.get(&d.id).map_or(&[][..], Vec::as_slice);
        let fps: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
        match (&a.known_hosts, keys.is_empty()) {
            (_, true) => out.push_str(
                "    # no recorded sshd host key: ssh trusts this device on first use\n",
            ),
            (Some(kh), false) => out.push_str(&format!(
                "    # sshd host key pinned: {}\n    UserKnownHostsFile {}\n    GlobalKnownHostsFile /dev/null\n    StrictHostKeyChecking yes\n",
                fps.join(", "),
                safe_path("--known-hosts", kh)?
            )),
            (None, false) => out.push_str(&format!(
                "    # recorded sshd host key {}: give --known-hosts FILE to pin it\n",
                fps.join(", ")
            )),
        }
    }
    Ok(out)
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
