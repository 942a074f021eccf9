//! `warden device-config`: the two files a factory station or image builder
//! puts on a device, `jailbird.env` and `known_hosts`, from which jailbird runs
//! unchanged.

use crate::error::Error;
use crate::render;
use crate::store::{Device, Jail};
use crate::types::PublicKey;
use std::path::Path;

/// Where the device keeps the known_hosts file when `--known-hosts-path` is
/// not given (board/rpi-zero and board/openwrt install it there).
pub const DEFAULT_DEVICE_KNOWN_HOSTS: &str = "/etc/jailbird/known_hosts";

/// `(jailbird.env, known_hosts)` for `d`, whose pool's jails are `jails` (in order).
pub fn render(
    d: &Device,
    jails: &[Jail],
    host_ca: Option<&PublicKey>,
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
        kh.push_str(&format!("@cert-authority * {}\n", ca.line()));
    }
    for j in jails {
        dests.push(format!("{}@{}", j.user, j.address));
        // The jails' own keys stay beside the CA line: a jail not signed yet
        // (or whose certificate lapsed) is still known by its key.
        kh.push_str(&render::known_hosts_line(&j.address, &j.host_key));
    }
    let mut env = format!(
        "# /etc/jailbird/jailbird.env for device {id} (pool {pool}, port {port}), written by\n\
         # `warden device-config {id}`. jailbird tries the jails in this order.\n",
        id = d.id,
        pool = d.pool,
        port = d.port,
    );
    env.push_str(&render::env_line("JAILBIRD_DESTINATION", &dests.join(",")));
    env.push_str(&render::env_line(
        "JAILBIRD_REMOTE_FORWARD",
        &format!("{}:{}", d.port, d.target),
    ));
    env.push_str(&render::env_line("JAILBIRD_KNOWN_HOSTS", known_hosts_path));
    Ok((env, kh))
}

/// Writes `name` in `dir` atomically (a factory station's output: 0644).
pub fn write_file(dir: &Path, name: &str, text: &str) -> Result<(), Error> {
    crate::fsio::replace(&dir.join(name), text.as_bytes(), 0o644)
}
