//! `warden device-config`: the two files a factory station or image builder
//! puts on a device, `jailbird.env` and `known_hosts`, from which jailbird runs
//! unchanged.

use crate::error::Error;
use crate::registry::{Device, Jail};
use std::path::Path;

/// Where the device keeps the known_hosts file when `--known-hosts-path` is
/// not given (board/rpi-zero and board/openwrt install it there).
pub const DEFAULT_DEVICE_KNOWN_HOSTS: &str = "/etc/jailbird/known_hosts";

/// `(jailbird.env, known_hosts)` for `d`, whose pool's jails are `jails` (in order).
pub fn render(
    d: &Device,
    jails: &[Jail],
    host_ca: Option<&str>,
    known_hosts_path: &str,
) -> Result<(String, String), Error> {
    if d.revoked {
        return Err(Error::invalid(format!("device {} is revoked", d.id)));
    }
    if jails.is_empty() {
        return Err(Error::invalid(format!(
            "pool {} has no jail yet: warden jail add NAME --address HOST[:PORT] --host-key ... --pool {}",
            d.pool, d.pool
        )));
    }
    if !known_hosts_path.starts_with('/')
        || known_hosts_path.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid(format!(
            "--known-hosts-path {}: want an absolute path without spaces",
            crate::types::quote(known_hosts_path)
        )));
    }
    let mut dests = Vec::new();
    let mut kh = format!(
        "# known_hosts for device {} (pool {}), written by warden: the pool's jails.\n",
        d.id, d.pool
    );
    if let Some(ca) = host_ca {
        // One line for every jail of the pool, now and later: a jail added or
        // rebuilt with a certificate from this CA needs no device change.
        kh.push_str(&format!("@cert-authority * {ca}\n"));
    }
    for j in jails {
        dests.push(format!("{}@{}", j.user, j.host_port()?));
        // The jails' own keys stay beside the CA line: a jail not signed yet
        // (or whose certificate lapsed) is still known by its key.
        let hp = j.host_port()?;
        let host = if hp.host.contains(':') {
            format!("[{}]", hp.host)
        } else {
            hp.host.clone()
        };
        let name = if hp.port == 22 {
            host
        } else {
            jailbird::hostkey::known_hosts_name(&hp.host, hp.port)
        };
        kh.push_str(&format!("{name} {}\n", j.host_key));
    }
    let env = format!(
        "# /etc/jailbird/jailbird.env for device {id} (pool {pool}, port {port}), written by\n\
         # `warden device-config {id}`. jailbird tries the jails in this order.\n\
         JAILBIRD_DESTINATION={dest}\n\
         JAILBIRD_REMOTE_FORWARD={port}:{target}\n\
         JAILBIRD_KNOWN_HOSTS={kh_path}\n",
        id = d.id,
        pool = d.pool,
        port = d.port,
        dest = dests.join(","),
        target = d.target,
        kh_path = known_hosts_path,
    );
    Ok((env, kh))
}

/// Writes `name` in `dir` atomically (temp file, fsync, rename).
pub fn write_file(dir: &Path, name: &str, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.warden-tmp"));
    let fail = |e: std::io::Error| Error::runtime(format!("{}: {e}", path.display()));
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)
}
