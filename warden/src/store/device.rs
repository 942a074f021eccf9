//! Devices: enrolment (one transaction, ports unique per pool), import, revoke, lookups.

use super::conn::{Conn, DbError, Row, TxError, Value};
use super::row::Rd;
use super::*;
use crate::error::Error;
use crate::types::{DeviceId, HostPort, Mac, Name, PortRange, PublicKey};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The device-side target when `--target` is not given.
pub const DEFAULT_TARGET: &str = "127.0.0.1:22";

#[derive(Clone, Debug, Serialize)]
pub struct Device {
    pub id: DeviceId,
    pub mac: Option<Mac>,
    pub pool: Name,
    pub port: u16,
    pub target: HostPort,
    pub revoked: bool,
    pub online: Option<Name>,
    pub last_seen: Option<String>,
    pub online_since: Option<String>,
    pub offline_since: Option<String>,
    pub enrolled: String,
    pub revoked_at: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub key: PublicKey,
    pub fingerprint: String,
}

/// A device's columns, and its pool's range (its port must lie in it).
pub(super) const DEVICE_COLS: &str = "d.id, d.mac, d.pool, d.port, d.target, d.revoked, d.online_jail, \
     d.last_seen, d.online_since, d.offline_since, d.enrolled, d.labels, d.key_type, \
     d.key_base64, d.fingerprint, p.port_lo, p.port_hi \
     FROM devices d LEFT JOIN pools p ON p.name = d.pool";

pub(super) fn opt_time(rd: &Rd, col: &str) -> Result<Option<String>, Error> {
    Ok(rd.opt_int(col)?.map(rfc3339))
}

pub(super) fn device_from(r: &Row) -> Result<Device, Error> {
    let rd = Rd::new("devices", "id", r);
    if rd.opt_int("port_lo")?.is_none() {
        return Err(rd.bad("pool", "names no pool that exists"));
    }
    let range = rd.port_range("port_lo", "port_hi")?;
    let key = rd.key("key_type", "key_base64", "fingerprint")?;
    Ok(Device {
        id: rd.device_id("id")?,
        mac: rd.opt_mac("mac")?,
        pool: rd.name("pool")?,
        port: rd.port_in("port", range)?,
        target: rd.host_port("target", None)?,
        revoked: rd.is_set("revoked")?,
        revoked_at: opt_time(&rd, "revoked")?,
        online: rd.opt_name("online_jail")?,
        last_seen: opt_time(&rd, "last_seen")?,
        online_since: opt_time(&rd, "online_since")?,
        offline_since: opt_time(&rd, "offline_since")?,
        enrolled: rfc3339(rd.int("enrolled")?),
        labels: rd.labels("labels")?,
        fingerprint: key.fingerprint.clone(),
        key,
    })
}

pub(super) fn devices_from(rows: &[Row]) -> Result<Vec<Device>, Error> {
    rows.iter().map(device_from).collect()
}

/// What `enroll` (and each `import` row) asks for.
#[derive(Clone, Debug)]
pub struct NewDevice {
    pub id: DeviceId,
    pub key: PublicKey,
    pub mac: Option<Mac>,
    pub pool: Option<Name>,
    pub target: Option<HostPort>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// What `enroll` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Enrolled,
    Unchanged,
    Replaced,
}

pub(super) fn device_row(c: &mut Conn, col: &str, v: Value) -> Result<Option<Device>, Error> {
    let rows = c.query(&format!("SELECT {DEVICE_COLS} WHERE d.{col} = $1"), &[v])?;
    rows.first().map(device_from).transpose()
}

type DbErr = DbError;

/// Deletes a device row and every grant for it (a later device with the same
/// id must not inherit them).
pub(super) fn drop_device(c: &mut Conn, id: &DeviceId) -> Result<(), DbErr> {
    c.exec(
        "DELETE FROM grants WHERE device = $1",
        &[id.as_str().into()],
    )?;
    c.exec(
        "DELETE FROM device_host_keys WHERE device = $1",
        &[id.as_str().into()],
    )?;
    c.exec("DELETE FROM devices WHERE id = $1", &[id.as_str().into()])?;
    Ok(())
}

/// Why `key` may never be a device's key: revoked once, or an operator's.
pub(super) fn key_refused(c: &mut Conn, fingerprint: &str) -> Result<Option<String>, Error> {
    let revoked = c.query(
        "SELECT device FROM revoked_keys WHERE fingerprint = $1",
        &[fingerprint.into()],
    )?;
    if let Some(r) = revoked.first() {
        return Ok(Some(format!(
            "key {fingerprint} was revoked (device {}): a revoked key is never enrolled again",
            Rd::new("revoked_keys", "fingerprint", r).device_id("device")?
        )));
    }
    let op = c.query(
        "SELECT operator FROM operator_keys WHERE fingerprint = $1",
        &[fingerprint.into()],
    )?;
    op.first()
        .map(|r| {
            Ok(format!(
                "key {fingerprint} is operator {}'s: a device needs a key of its own",
                Rd::new("operator_keys", "fingerprint", r).name("operator")?
            ))
        })
        .transpose()
}

/// The error for a pool whose every port is taken.
pub(super) fn full(pool: &Pool, prefix: &str) -> Error {
    Error::runtime(format!(
        "{prefix}pool {} is full: all {} ports of {} are taken",
        pool.name,
        pool.range.size(),
        pool.range
    ))
}

/// The lowest free port of `range`, not in `used`.
pub(super) fn free_port(range: PortRange, used: &BTreeSet<u16>) -> Option<u16> {
    (range.lo..=range.hi).find(|p| !used.contains(p))
}

/// The ports taken in `pool`. A stored port that is no port at all is an
/// error, not skipped: skipping it could hand the same port out twice.
pub(super) fn used_ports(c: &mut Conn, pool: &Name) -> Result<BTreeSet<u16>, Error> {
    c.query(
        "SELECT id, port FROM devices WHERE pool = $1",
        &[pool.as_str().into()],
    )?
    .iter()
    .map(|r| Rd::new("devices", "id", r).port("port"))
    .collect()
}

/// Serialises allocators of one pool on PostgreSQL (SQLite's `BEGIN
/// IMMEDIATE` already holds the only write lock).
pub(super) fn lock_pool(c: &mut Conn, pool: &Name) -> Result<(), DbErr> {
    c.lock_row_for_writers("pools", "name", pool.as_str())
}

pub(super) fn insert_device(
    c: &mut Conn,
    d: &NewDevice,
    pool: &Name,
    port: u16,
    at: i64,
) -> Result<(), DbErr> {
    let labels = serde_json::to_string(&d.labels.clone().unwrap_or_default()).unwrap_or_default();
    let target = d
        .target
        .as_ref()
        .map_or(DEFAULT_TARGET.to_string(), |t| t.to_string());
    c.exec(
        "INSERT INTO devices (id, mac, key_type, key_base64, fingerprint, pool, port, target, labels, enrolled)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            d.id.as_str().into(),
            Value::opt_text(d.mac.as_ref().map(Mac::as_str)),
            d.key.kind.clone().into(),
            d.key.base64.clone().into(),
            d.key.fingerprint.clone().into(),
            pool.as_str().into(),
            port.into(),
            target.into(),
            labels.into(),
            at.into(),
        ],
    )?;
    Ok(())
}

/// Why a device cannot be enrolled as asked, or `None` if it is already
/// enrolled exactly so (idempotent), checked against what the registry holds.
pub(super) fn conflicts(
    d: &NewDevice,
    pool: &Name,
    by_id: Option<&Device>,
    by_key: Option<&Device>,
    by_mac: Option<&Device>,
) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(old) = by_id {
        if old.fingerprint != d.key.fingerprint {
            why.push(format!(
                "device {} is enrolled with another key ({}); --replace re-keys it",
                d.id, old.fingerprint
            ));
        }
        if old.revoked {
            why.push(format!(
                "device {} was revoked; --replace re-enrols it",
                d.id
            ));
        }
        if old.pool != *pool {
            why.push(format!(
                "device {} is in pool {}, not {pool}; --replace moves it",
                d.id, old.pool
            ));
        }
        if let Some(m) = &d.mac
            && old.mac.as_ref() != Some(m)
        {
            why.push(format!(
                "device {} has MAC {}; --replace changes it",
                d.id,
                old.mac.as_ref().map_or("(none)", Mac::as_str)
            ));
        }
        if let Some(t) = &d.target
            && old.target != *t
        {
            why.push(format!(
                "device {} has target {}; --replace changes it",
                d.id, old.target
            ));
        }
        if let Some(l) = &d.labels
            && !l.is_empty()
            && &old.labels != l
        {
            why.push(format!(
                "device {} has other labels; --replace changes them",
                d.id
            ));
        }
    }
    if let Some(other) = by_key.filter(|o| o.id != d.id) {
        why.push(format!(
            "key {} already belongs to device {}; --replace moves it",
            d.key.fingerprint, other.id
        ));
    }
    if let Some(other) = by_mac.filter(|o| o.id != d.id) {
        why.push(format!(
            "MAC {} already belongs to device {}; --replace moves it",
            other.mac.as_ref().map_or("", Mac::as_str),
            other.id
        ));
    }
    why
}

/// Remembers `fingerprint` as revoked (device `id`'s): it is never enrolled again.
fn remember_revoked(c: &mut Conn, fingerprint: &str, id: &DeviceId, at: i64) -> Result<(), DbErr> {
    c.exec(
        "INSERT INTO revoked_keys (fingerprint, device, at)
         SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM revoked_keys WHERE fingerprint = $1)",
        &[fingerprint.into(), id.as_str().into(), at.into()],
    )?;
    Ok(())
}

/// When device `id`'s current key was enrolled (Unix seconds).
fn enrolled_at(c: &mut Conn, id: &DeviceId) -> Result<i64, TxError> {
    let rows = c.query(
        "SELECT id, enrolled FROM devices WHERE id = $1",
        &[id.as_str().into()],
    )?;
    let r = rows
        .first()
        .ok_or_else(|| Error::runtime(format!("device {id} vanished")))?;
    Ok(Rd::new("devices", "id", r).int("enrolled")?)
}

/// `enroll --replace` of an enrolled device: its row anew, keeping the port
/// (unless it moves pool) and what the request leaves unsaid. Returns the
/// audit detail of what it was.
fn replace_row(
    c: &mut Conn,
    d: &NewDevice,
    pool: &Pool,
    old: &Device,
    keep_mac: bool,
    at: i64,
) -> Result<String, TxError> {
    // Keep the port unless the device moves to another pool.
    let port = if old.pool == pool.name {
        old.port
    } else {
        // The old port is in another pool: it frees nothing here.
        let used = used_ports(c, &pool.name)?;
        free_port(pool.range, &used).ok_or_else(|| full(pool, ""))?
    };
    // Sessions belong to keys: `enrolled` is when the current key was
    // enrolled (watch ends any session of the device that started before it),
    // so it moves only with a new key or a new port.
    // A new key counts from the next whole second: a session that started in
    // the second of the re-key is taken for the old key's, never the reverse.
    let rekeyed = old.fingerprint != d.key.fingerprint;
    if rekeyed {
        remember_revoked(c, &old.fingerprint, &old.id, at)?;
    }
    let at = if rekeyed || port != old.port {
        at + 1
    } else {
        enrolled_at(c, &old.id)?
    };
    drop_device(c, &old.id)?;
    let mut merged = d.clone();
    if merged.mac.is_none() && keep_mac {
        merged.mac = old.mac.clone();
    }
    if merged.target.is_none() {
        merged.target = Some(old.target.clone());
    }
    if merged.labels.as_ref().is_none_or(BTreeMap::is_empty) {
        merged.labels = Some(old.labels.clone());
    }
    insert_device(c, &merged, &pool.name, port, at)?;
    Ok(format!(
        "was {} port {} key {}",
        old.pool, old.port, old.fingerprint
    ))
}

/// Enrols one device (or confirms it is enrolled exactly so).
pub fn enroll(c: &mut Conn, d: &NewDevice, replace: bool) -> Result<(Device, Outcome), Error> {
    enroll_with_host_keys(c, d, replace, None)
}

/// Enrols one device and, if given, records its own sshd host keys (one
/// transaction).
pub fn enroll_with_host_keys(
    c: &mut Conn,
    d: &NewDevice,
    replace: bool,
    host_keys: Option<&[PublicKey]>,
) -> Result<(Device, Outcome), Error> {
    c.transaction(|c| {
        let out = enroll_in(c, d, replace)?;
        if let Some(keys) = host_keys {
            set_host_keys(c, &out.0.id, keys)?;
        }
        Ok(out)
    })
}

/// Device sshd host keys a device may have recorded.
pub const MAX_HOST_KEYS: usize = 4;

/// Replaces device `id`'s recorded sshd host keys with `keys` (inside the
/// caller's transaction); audits a change.
pub fn set_host_keys(c: &mut Conn, id: &DeviceId, keys: &[PublicKey]) -> Result<(), TxError> {
    if keys.len() > MAX_HOST_KEYS {
        return Err(Error::invalid(format!("more than {MAX_HOST_KEYS} host keys")).into());
    }
    let old = host_keys(c, id)?;
    let same = old.len() == keys.len() && keys.iter().all(|k| old.contains(k));
    if same {
        return Ok(());
    }
    c.exec(
        "DELETE FROM device_host_keys WHERE device = $1",
        &[id.as_str().into()],
    )?;
    for k in keys {
        c.exec(
            "INSERT INTO device_host_keys (device, key_type, key_base64, fingerprint)
             SELECT $1, $2, $3, $4
             WHERE NOT EXISTS (SELECT 1 FROM device_host_keys WHERE device = $1 AND fingerprint = $4)",
            &[
                id.as_str().into(),
                k.kind.clone().into(),
                k.base64.clone().into(),
                k.fingerprint.clone().into(),
            ],
        )?;
    }
    let fps: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
    audit(
        c,
        "host-key",
        Some(id.as_str()),
        None,
        Some(&format!("sshd host key(s) {}", fps.join(" "))),
    )?;
    Ok(())
}

/// Device `id`'s recorded sshd host keys (checked on the way out), oldest
/// type first.
pub fn host_keys(c: &mut Conn, id: &DeviceId) -> Result<Vec<PublicKey>, Error> {
    let rows = c.query(
        "SELECT device, key_type, key_base64, fingerprint FROM device_host_keys
         WHERE device = $1 ORDER BY key_type, fingerprint",
        &[id.as_str().into()],
    )?;
    rows.iter()
        .take(MAX_HOST_KEYS)
        .map(|r| {
            Rd::new("device_host_keys", "device", r).key("key_type", "key_base64", "fingerprint")
        })
        .collect()
}

/// Every device's recorded sshd host keys, by device (checked on the way out).
pub fn all_host_keys(c: &mut Conn) -> Result<BTreeMap<DeviceId, Vec<PublicKey>>, Error> {
    let rows = c.query(
        "SELECT device, key_type, key_base64, fingerprint FROM device_host_keys
         ORDER BY device, key_type, fingerprint",
        &[],
    )?;
    let mut out: BTreeMap<DeviceId, Vec<PublicKey>> = BTreeMap::new();
    for r in &rows {
        let rd = Rd::new("device_host_keys", "device", r);
        let keys = out.entry(rd.device_id("device")?).or_default();
        if keys.len() < MAX_HOST_KEYS {
            keys.push(rd.key("key_type", "key_base64", "fingerprint")?);
        }
    }
    Ok(out)
}

/// [`enroll`]'s body, inside the caller's transaction (a claim enrols in
/// the same transaction that spends its use).
pub fn enroll_in(c: &mut Conn, d: &NewDevice, replace: bool) -> Result<(Device, Outcome), TxError> {
    {
        let pool = resolve_pool(c, d.pool.as_ref())?;
        lock_pool(c, &pool.name)?;
        let by_id = device_row(c, "id", d.id.as_str().into())?;
        let by_key = device_row(c, "fingerprint", d.key.fingerprint.clone().into())?;
        let by_mac = match &d.mac {
            Some(m) => device_row(c, "mac", m.as_str().into())?,
            None => None,
        };
        if let Some(why) = key_refused(c, &d.key.fingerprint)? {
            return Err(Error::invalid(why).into());
        }
        let why = conflicts(
            d,
            &pool.name,
            by_id.as_ref(),
            by_key.as_ref(),
            by_mac.as_ref(),
        );
        if why.is_empty() {
            if let Some(old) = by_id {
                return Ok((old, Outcome::Unchanged));
            }
        } else if !replace {
            return Err(Error::invalid(why.join("; ")).into());
        }
        let at = now();
        let mut detail = Vec::new();
        if let Some(other) = by_key.as_ref().filter(|o| o.id != d.id) {
            drop_device(c, &other.id)?;
            detail.push(format!("key moved from device {}", other.id));
            audit(
                c,
                "replace",
                Some(other.id.as_str()),
                None,
                Some(&format!("key moved to device {}", d.id)),
            )?;
        }
        if let Some(other) = by_mac.as_ref().filter(|o| o.id != d.id) {
            c.exec(
                "UPDATE devices SET mac = NULL WHERE id = $1",
                &[other.id.as_str().into()],
            )?;
            detail.push(format!("MAC moved from device {}", other.id));
        }
        let outcome = match &by_id {
            Some(old) => {
                detail.push(replace_row(c, d, &pool, old, by_mac.is_none(), at)?);
                Outcome::Replaced
            }
            None => {
                let used = used_ports(c, &pool.name)?;
                let port = free_port(pool.range, &used).ok_or_else(|| full(&pool, ""))?;
                insert_device(c, d, &pool.name, port, at)?;
                Outcome::Enrolled
            }
        };
        let action = if outcome == Outcome::Replaced {
            "replace"
        } else {
            "enroll"
        };
        detail.push(format!("key {}", d.key.fingerprint));
        audit(
            c,
            action,
            Some(d.id.as_str()),
            None,
            Some(&detail.join("; ")),
        )?;
        let dev = device_row(c, "id", d.id.as_str().into())?
            .ok_or_else(|| Error::runtime("enrolled device vanished"))?;
        Ok((dev, outcome))
    }
}

/// One parsed row of an import file, with where it came from.
pub struct ImportRow {
    pub line: usize,
    pub device: NewDevice,
}

/// Imports every row in one transaction, or nothing: rows already enrolled
/// exactly so are skipped; any conflict names its row. Returns (new, unchanged).
pub fn import(c: &mut Conn, file: &str, rows: &[ImportRow]) -> Result<(usize, usize), Error> {
    c.transaction(|c| {
        let mut by_id = BTreeMap::new();
        let mut by_key = BTreeMap::new();
        let mut by_mac = BTreeMap::new();
        for r in c.query(&format!("SELECT {DEVICE_COLS}"), &[])? {
            let d = device_from(&r)?;
            by_key.insert(d.fingerprint.clone(), d.clone());
            if let Some(m) = &d.mac {
                by_mac.insert(m.clone(), d.clone());
            }
            by_id.insert(d.id.clone(), d);
        }
        let all_pools = pools(c)?;
        let mut used: BTreeMap<Name, BTreeSet<u16>> = BTreeMap::new();
        for d in by_id.values() {
            used.entry(d.pool.clone()).or_default().insert(d.port);
        }
        let mut errors = Vec::new();
        let mut plan = Vec::new();
        let mut unchanged = 0;
        for r in rows {
            let d = &r.device;
            let pool = match &d.pool {
                Some(n) => all_pools.iter().find(|p| p.name == *n),
                None if all_pools.len() == 1 => all_pools.first(),
                None => None,
            };
            let Some(pool) = pool else {
                errors.push(format!(
                    "{file}:{}: {}",
                    r.line,
                    match &d.pool {
                        Some(n) => format!("unknown pool {n}"),
                        None => "no pool column and not exactly one pool".to_string(),
                    }
                ));
                continue;
            };
            let mut why = conflicts(
                d,
                &pool.name,
                by_id.get(d.id.as_str()),
                by_key.get(&d.key.fingerprint),
                d.mac.as_ref().and_then(|m| by_mac.get(m.as_str())),
            );
            if let Some(refused) = key_refused(c, &d.key.fingerprint)? {
                why.push(refused);
            }
            if !why.is_empty() {
                errors.push(format!("{file}:{}: {}", r.line, why.join("; ")));
            } else if by_id.contains_key(d.id.as_str()) {
                unchanged += 1;
            } else {
                plan.push((d, pool));
            }
        }
        if !errors.is_empty() {
            return Err(Error::bad_rows(errors).into());
        }
        let at = now();
        for (d, pool) in &plan {
            lock_pool(c, &pool.name)?;
            let set = used.entry(pool.name.clone()).or_default();
            let port = free_port(pool.range, set)
                .ok_or_else(|| full(pool, &format!("{file}: nothing imported; ")))?;
            set.insert(port);
            insert_device(c, d, &pool.name, port, at)?;
            audit(
                c,
                "import",
                Some(d.id.as_str()),
                None,
                Some(&format!("key {} from {file}", d.key.fingerprint)),
            )?;
        }
        Ok((plan.len(), unchanged))
    })
}

pub fn revoke(c: &mut Conn, id: &DeviceId, reason: Option<&str>) -> Result<Device, Error> {
    c.transaction(|c| {
        let Some(d) = device_row(c, "id", id.as_str().into())? else {
            return Err(Error::NotFound(format!("unknown device {id}")).into());
        };
        if d.revoked {
            return Ok(d);
        }
        let at = now();
        c.exec(
            "UPDATE devices SET revoked = $1 WHERE id = $2",
            &[at.into(), id.as_str().into()],
        )?;
        // The key stays refused even if the device row is later replaced.
        remember_revoked(c, &d.fingerprint, id, at)?;
        c.exec(
            "DELETE FROM grants WHERE device = $1",
            &[id.as_str().into()],
        )?;
        audit(
            c,
            "revoke",
            Some(id.as_str()),
            reason,
            Some(&format!("key {}", d.fingerprint)),
        )?;
        super::hook::enqueue(
            c,
            "device.revoked",
            id,
            serde_json::json!({"pool": d.pool.as_str(), "reason": reason.unwrap_or("")}),
        )?;
        Ok(device_row(c, "id", id.as_str().into())?.unwrap_or(d))
    })
}

/// A device by id or MAC.
pub enum Which {
    Id(DeviceId),
    Mac(Mac),
}

impl Which {
    /// A device named by id or by `--mac` (the one copy of this resolution).
    pub fn parse(id: &Option<String>, mac: &Option<String>, verb: &str) -> Result<Which, Error> {
        match (id, mac) {
            (Some(id), _) => Ok(Which::Id(DeviceId::parse(id)?)),
            (None, Some(m)) => Ok(Which::Mac(Mac::parse(m)?)),
            (None, None) => Err(Error::invalid(format!("{verb}: give an ID or --mac MAC"))),
        }
    }
}

pub fn show(c: &mut Conn, which: &Which) -> Result<Device, Error> {
    let (col, v, shown) = match which {
        Which::Id(id) => ("id", id.as_str(), format!("device {id}")),
        Which::Mac(m) => ("mac", m.as_str(), format!("device with MAC {}", m.as_str())),
    };
    device_row(c, col, v.into())?.ok_or_else(|| Error::NotFound(format!("unknown {shown}")))
}

pub fn devices(c: &mut Conn, pool: Option<&Name>) -> Result<Vec<Device>, Error> {
    let rows = match pool {
        Some(p) => c.query(
            &format!("SELECT {DEVICE_COLS} WHERE d.pool = $1 ORDER BY d.id"),
            &[p.as_str().into()],
        )?,
        None => c.query(&format!("SELECT {DEVICE_COLS} ORDER BY d.id"), &[])?,
    };
    devices_from(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_port() {
        let r = PortRange { lo: 10, hi: 12 };
        assert_eq!(free_port(r, &BTreeSet::new()), Some(10));
        assert_eq!(free_port(r, &[10, 12].into()), Some(11));
        assert_eq!(free_port(r, &[10, 11, 12].into()), None);
    }
}
