//! `warden enroll | import | device-config | ls | show | revoke`.

use super::{Ctx, name};
use crate::cli::{EnrollArgs, LsArgs};
use crate::error::Error;
use crate::render::{device_rows, json, show_device};
use crate::store::{self, Device, ImportRow, NewDevice, Outcome, Which};
use crate::types::{self, DeviceId, HostPort, Mac, Name, PublicKey};
use crate::{ca, device_config};
use std::collections::BTreeMap;
use std::path::Path;

/// Largest import file accepted (10,000 rows are ~1.2 MB).
pub const MAX_IMPORT_BYTES: u64 = 64 << 20;

pub fn enroll(ctx: &Ctx, a: &EnrollArgs) -> Result<String, Error> {
    let d = NewDevice {
        id: DeviceId::parse(&a.id)?,
        key: PublicKey::parse("--key", &a.key)?,
        mac: a.mac.as_deref().map(Mac::parse).transpose()?,
        pool: name("pool", &a.pool)?,
        target: a
            .target
            .as_deref()
            .map(|t| HostPort::parse("--target", t, None))
            .transpose()?,
        labels: Some(store::parse_labels(&a.labels)?),
    };
    if a.host_keys.len() > store::MAX_HOST_KEYS {
        return Err(Error::invalid(format!(
            "--host-key: at most {} of them",
            store::MAX_HOST_KEYS
        )));
    }
    let host_keys = a
        .host_keys
        .iter()
        .map(|k| PublicKey::parse("--host-key", k))
        .collect::<Result<Vec<_>, _>>()?;
    let (dev, outcome) = ctx.admin(|c| {
        store::enroll_with_host_keys(
            c,
            &d,
            a.replace,
            (!host_keys.is_empty()).then_some(host_keys.as_slice()),
        )
    })?;
    if ctx.json {
        return Ok(json(
            &serde_json::json!({"outcome": outcome, "device": dev}),
        ));
    }
    let what = match outcome {
        Outcome::Enrolled => "enrolled",
        Outcome::Unchanged => "already-enrolled",
        Outcome::Replaced => "replaced",
    };
    Ok(format!(
        "{} {what} pool={} port={}\n",
        dev.id, dev.pool, dev.port
    ))
}

/// Enrols one device (`enroll`, the API's enrol).
pub fn enrol(ctx: &Ctx, d: &NewDevice, replace: bool) -> Result<(Device, Outcome), Error> {
    ctx.admin(|c| store::enroll(c, d, replace))
}

pub fn import(ctx: &Ctx, file: &Path) -> Result<String, Error> {
    let shown = file.display().to_string();
    let meta = std::fs::metadata(file).map_err(|e| Error::invalid(format!("{shown}: {e}")))?;
    if meta.len() > MAX_IMPORT_BYTES {
        return Err(Error::invalid(format!(
            "{shown}: larger than {MAX_IMPORT_BYTES} bytes"
        )));
    }
    let text =
        std::fs::read_to_string(file).map_err(|e| Error::invalid(format!("{shown}: {e}")))?;
    let rows = parse_import(&shown, &text)?;
    let (new, same) = ctx.admin(|c| store::import(c, &shown, &rows))?;
    Ok(format!(
        "{shown}: {new} enrolled, {same} already enrolled\n"
    ))
}

pub fn device_config(
    ctx: &Ctx,
    id: &str,
    out: &Path,
    known_hosts_path: &str,
    operator_ca: Option<&Path>,
) -> Result<String, Error> {
    let id = DeviceId::parse(id)?;
    if !out.is_dir() {
        return Err(Error::invalid(format!(
            "--out {}: not a directory",
            out.display()
        )));
    }
    let (d, jails, host_ca) = ctx.admin(|c| {
        let d = store::show(c, &Which::Id(id))?;
        let jails = store::pool_jails(c, &d.pool)?;
        let host_ca = store::pool_named(c, &d.pool)?.and_then(|p| p.host_ca);
        Ok((d, jails, host_ca))
    })?;
    let (env, kh) = device_config::render(&d, &jails, host_ca.as_ref(), known_hosts_path)?;
    device_config::write_file(out, "jailbird.env", &env)?;
    device_config::write_file(out, "known_hosts", &kh)?;
    if let Some(ca) = operator_ca {
        let dir = Path::new(known_hosts_path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/etc/jailbird".into());
        let (ca_pub, principals, drop_in) = ca::device_trust(ca, &d, &dir)?;
        device_config::write_file(out, "warden_operator_ca.pub", &ca_pub)?;
        device_config::write_file(out, "warden_principals", &principals)?;
        device_config::write_file(out, "warden-operators.conf", &drop_in)?;
    }
    Ok(format!(
        "wrote {} and {} for device {} (port {}, {} jail(s))\n",
        out.join("jailbird.env").display(),
        out.join("known_hosts").display(),
        d.id,
        d.port,
        jails.len()
    ))
}

/// Which devices a listing shows (`ls`, the API's list).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub pool: Option<Name>,
    /// `Some(true)`: online only; `Some(false)`: offline and not revoked.
    pub online: Option<bool>,
    /// Devices carrying every one of these labels.
    pub labels: BTreeMap<String, String>,
    pub mac: Option<Mac>,
}

/// The devices `f` selects, by id.
pub fn list(ctx: &Ctx, f: &Filter) -> Result<Vec<Device>, Error> {
    let all = ctx.admin(|c| {
        if let Some(p) = &f.pool
            && store::pool_named(c, p)?.is_none()
        {
            return Err(Error::invalid(format!("unknown pool {p}")));
        }
        store::devices(c, f.pool.as_ref())
    })?;
    Ok(all.into_iter().filter(|d| f.admits(d)).collect())
}

pub fn ls(ctx: &Ctx, a: &LsArgs) -> Result<String, Error> {
    let f = Filter {
        pool: name("pool", &a.pool)?,
        online: match (a.online, a.offline) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        labels: store::parse_labels(&a.labels)?,
        mac: None,
    };
    let ds = list(ctx, &f)?;
    Ok(if ctx.json {
        json(&ds)
    } else {
        device_rows(&ds)
    })
}

/// One device by id or MAC.
pub fn one(ctx: &Ctx, which: &Which) -> Result<Device, Error> {
    ctx.admin(|c| store::show(c, which))
}

pub fn show(ctx: &Ctx, id: &Option<String>, mac: &Option<String>) -> Result<String, Error> {
    let which = Which::parse(id, mac, "show")?;
    let d = one(ctx, &which)?;
    Ok(if ctx.json { json(&d) } else { show_device(&d) })
}

/// Revokes a device; returns it, revoked (idempotent).
pub fn revoke_device(ctx: &Ctx, id: &DeviceId, reason: Option<&str>) -> Result<Device, Error> {
    types::check_reason(reason)?;
    ctx.admin(|c| store::revoke(c, id, reason))
}

pub fn revoke(ctx: &Ctx, id: &str, reason: Option<&str>) -> Result<String, Error> {
    let d = revoke_device(ctx, &DeviceId::parse(id)?, reason)?;
    Ok(format!(
        "{} revoked: its key is refused from now on (port {} of pool {} stays reserved)\n",
        d.id, d.port, d.pool
    ))
}

/// Parses one import file: every bad row is named (`FILE:LINE: ...`).
pub fn parse_import(file: &str, text: &str) -> Result<Vec<ImportRow>, Error> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut ids = std::collections::BTreeMap::new();
    let mut keys = std::collections::BTreeMap::new();
    let mut macs = std::collections::BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<String> = l
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect();
        if line == 1 && f.first().is_some_and(|s| s.eq_ignore_ascii_case("id")) {
            continue; // header
        }
        if f.len() < 3 || f.len() > 4 {
            errors.push(format!(
                "{file}:{line}: want id,mac,key[,pool], got {} field(s)",
                f.len()
            ));
            continue;
        }
        let parsed = (|| -> Result<NewDevice, Error> {
            Ok(NewDevice {
                id: DeviceId::parse(&f[0])?,
                mac: if f[1].is_empty() {
                    None
                } else {
                    Some(Mac::parse(&f[1])?)
                },
                key: PublicKey::parse("key", &f[2])?,
                pool: match f.get(3) {
                    Some(p) if !p.is_empty() => Some(Name::parse("pool", p)?),
                    _ => None,
                },
                target: None,
                labels: None,
            })
        })();
        match parsed {
            Err(e) => errors.push(format!("{file}:{line}: {e}")),
            Ok(d) => {
                let mut dup =
                    |map: &mut std::collections::BTreeMap<String, usize>, k: String, what: &str| {
                        if let Some(first) = map.insert(k.clone(), line) {
                            errors.push(format!("{file}:{line}: {what} {k} also on line {first}"));
                        }
                    };
                dup(&mut ids, d.id.to_string(), "device id");
                dup(&mut keys, d.key.fingerprint.clone(), "key");
                if let Some(m) = &d.mac {
                    dup(&mut macs, m.as_str().to_string(), "MAC");
                }
                rows.push(ImportRow { line, device: d });
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::bad_rows(errors));
    }
    Ok(rows)
}
