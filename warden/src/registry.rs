//! The registry: pools, jails, devices and the audit trail, written once in
//! SQL that both backends run. Every change is one transaction; uniqueness
//! (a key across the fleet, a port within a pool, a MAC) is enforced by the
//! database and a transaction that loses a race is run again.

use crate::db::{Conn, Row, TxError, Value};
use crate::error::Error;
use crate::store::row::Rd;
pub use crate::store::row::{MAX_LABEL_CHARS, MAX_LABELS, parse_labels};
use crate::types::{DeviceId, HostPort, Mac, Name, PortRange, PublicKey, UserName, quote};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The device-side target when `--target` is not given.
pub const DEFAULT_TARGET: &str = "127.0.0.1:22";
/// The jail account devices log in as when `--user` is not given.
pub const DEFAULT_TUNNEL_USER: &str = "tunuser";
/// How stale `last_seen` may get before a login or a watch tick writes it
/// again: logins never queue behind a write for a timestamp.
pub const LAST_SEEN_WRITE_SECS: i64 = 60;

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Who is making a change, and from where (for the audit trail).
pub fn actor() -> (String, String) {
    // Looked up once per process: an import writes 10,000 audit rows, and the
    // passwd lookup may run `getent`.
    static ACTOR: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    ACTOR.get_or_init(look_up_actor).clone()
}

/// Who is acting, from the system, never from the environment: the name of
/// the real uid (`uid:N` without a passwd entry). `SUDO_USER` is only a
/// claim (anyone can set it), so it is kept beside the name, marked so.
fn look_up_actor() -> (String, String) {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let name = crate::db::account(&uid.to_string())
        .filter(|a| a.uid == uid)
        .map_or_else(|| format!("uid:{uid}"), |a| a.name);
    let claim = std::env::var("SUDO_USER")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| crate::types::one_line(&s.chars().take(64).collect::<String>()));
    let who = match claim {
        Some(c) if uid == 0 => format!("{name} (sudo from {c}, claimed)"),
        _ => name,
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let from = match std::env::var("SSH_CLIENT") {
        Ok(c) => format!(
            "{host} (ssh from {})",
            c.split_whitespace().next().unwrap_or("?")
        ),
        Err(_) => host,
    };
    (who, from)
}

/// Appends one audit row (inside the caller's transaction).
pub fn audit(
    c: &mut Conn,
    action: &str,
    device: Option<&str>,
    reason: Option<&str>,
    detail: Option<&str>,
) -> Result<(), TxError> {
    audit_op(c, action, device, None, reason, detail)
}

/// Appends one audit row naming an operator (inside the caller's transaction).
pub fn audit_op(
    c: &mut Conn,
    action: &str,
    device: Option<&str>,
    operator: Option<&str>,
    reason: Option<&str>,
    detail: Option<&str>,
) -> Result<(), TxError> {
    let (who, from) = actor();
    // On PostgreSQL the role the server authenticated is recorded too.
    let actor = c.dialect_actor("$5");
    c.exec(
        &format!(
            "INSERT INTO audit (at, action, device, operator, actor, origin, reason, detail)
             VALUES ($1, $2, $3, $4, {actor}, $6, $7, $8)"
        ),
        &[
            now().into(),
            action.into(),
            Value::opt_text(device),
            Value::opt_text(operator),
            who.into(),
            from.into(),
            Value::opt_text(reason),
            Value::opt_text(detail),
        ],
    )?;
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct Pool {
    pub name: Name,
    pub ports: String,
    #[serde(skip)]
    pub range: PortRange,
    pub devices: i64,
    /// Grants in this pool need a `--reason`.
    pub require_reason: bool,
    /// The CA that signs this pool's jails' host certificates, "TYPE BASE64":
    /// devices then trust it instead of each jail's key.
    pub host_ca: Option<PublicKey>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Jail {
    pub name: Name,
    pub pool: Name,
    pub address: HostPort,
    pub host_key: PublicKey,
    pub user: UserName,
    pub operator_user: UserName,
}

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
const DEVICE_COLS: &str = "d.id, d.mac, d.pool, d.port, d.target, d.revoked, d.online_jail, \
     d.last_seen, d.online_since, d.offline_since, d.enrolled, d.labels, d.key_type, \
     d.key_base64, d.fingerprint, p.port_lo, p.port_hi \
     FROM devices d LEFT JOIN pools p ON p.name = d.pool";

fn opt_time(rd: &Rd, col: &str) -> Result<Option<String>, Error> {
    Ok(rd.opt_int(col)?.map(rfc3339))
}

fn device_from(r: &Row) -> Result<Device, Error> {
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

fn devices_from(rows: &[Row]) -> Result<Vec<Device>, Error> {
    rows.iter().map(device_from).collect()
}

const JAIL_COLS: &str = "name, pool, address, host_key, tunnel_user, operator_user";

fn jail_from(r: &Row) -> Result<Jail, Error> {
    let rd = Rd::new("jails", "name", r);
    let j = Jail {
        name: rd.name("name")?,
        pool: rd.name("pool")?,
        address: rd.host_port("address", Some(22))?,
        host_key: rd.key_line("host_key")?,
        user: rd.user("tunnel_user")?,
        operator_user: rd.user("operator_user")?,
    };
    if j.user == j.operator_user {
        return Err(rd.bad(
            "operator_user",
            "the same account as tunnel_user: devices and operators need separate accounts",
        ));
    }
    Ok(j)
}

fn pool_from(r: &Row) -> Result<Pool, Error> {
    let rd = Rd::new("pools", "name", r);
    let range = rd.port_range("port_lo", "port_hi")?;
    Ok(Pool {
        name: rd.name("name")?,
        ports: range.to_string(),
        range,
        devices: rd.int("devices")?,
        require_reason: rd.flag("require_reason")?,
        host_ca: rd.opt_key_line("host_ca")?,
    })
}

// ---- pools and jails ----------------------------------------------------

pub fn pools(c: &mut Conn) -> Result<Vec<Pool>, Error> {
    let rows = c.query(
        "SELECT p.name, p.port_lo, p.port_hi,
                (SELECT count(*) FROM devices d WHERE d.pool = p.name) AS devices,
                p.require_reason, p.host_ca
         FROM pools p ORDER BY p.name",
        &[],
    )?;
    rows.iter().map(pool_from).collect()
}

/// One pool by name.
pub fn pool_named(c: &mut Conn, name: &Name) -> Result<Option<Pool>, Error> {
    let rows = c.query(
        "SELECT p.name, p.port_lo, p.port_hi,
                (SELECT count(*) FROM devices d WHERE d.pool = p.name) AS devices,
                p.require_reason, p.host_ca
         FROM pools p WHERE p.name = $1",
        &[name.as_str().into()],
    )?;
    rows.first().map(pool_from).transpose()
}

pub fn pool_add(
    c: &mut Conn,
    name: &Name,
    range: PortRange,
    require_reason: bool,
) -> Result<(), Error> {
    c.transaction(|c| {
        if c.is_postgres() {
            // The overlap check below must see every concurrent add.
            c.batch("LOCK TABLE pools IN SHARE ROW EXCLUSIVE MODE")?;
        }
        for p in pools(c)? {
            if p.name == *name {
                if p.range == range && p.require_reason == require_reason {
                    return Ok(()); // already there, the same: nothing to do
                }
                if p.range == range {
                    return Err(Error::invalid(format!(
                        "pool {name} already exists {} --require-reason",
                        if p.require_reason { "with" } else { "without" }
                    ))
                    .into());
                }
                return Err(Error::invalid(format!(
                    "pool {name} already exists with ports {}",
                    p.range
                ))
                .into());
            }
            if p.range.overlaps(&range) {
                return Err(Error::invalid(format!(
                    "ports {range} overlap pool {} ({})",
                    p.name, p.range
                ))
                .into());
            }
        }
        c.exec(
            "INSERT INTO pools (name, port_lo, port_hi, created, require_reason) VALUES ($1, $2, $3, $4, $5)",
            &[
                name.as_str().into(),
                range.lo.into(),
                range.hi.into(),
                now().into(),
                i64::from(require_reason).into(),
            ],
        )?;
        let detail = format!(
            "{name} {range}{}",
            if require_reason { " require-reason" } else { "" }
        );
        audit(c, "pool-add", None, None, Some(&detail))?;
        Ok(())
    })
}

/// Sets the CA that signs `pool`'s jails' host certificates.
pub fn pool_host_ca(c: &mut Conn, pool: &Name, key: &PublicKey) -> Result<(), Error> {
    c.transaction(|c| {
        if pool_named(c, pool)?.is_none() {
            return Err(Error::invalid(format!("unknown pool {pool}")).into());
        }
        c.exec(
            "UPDATE pools SET host_ca = $1 WHERE name = $2",
            &[key.line().into(), pool.as_str().into()],
        )?;
        audit(
            c,
            "pool-host-ca",
            None,
            None,
            Some(&format!("{pool} CA {}", key.fingerprint)),
        )?;
        Ok(())
    })
}

/// The pool named, or the only pool there is.
fn resolve_pool(c: &mut Conn, name: Option<&Name>) -> Result<Pool, TxError> {
    if let Some(n) = name {
        return pool_named(c, n)?.ok_or_else(|| Error::invalid(format!("unknown pool {n}")).into());
    }
    let mut all = pools(c)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(Error::invalid("no pool yet: warden pool add NAME [--ports LO-HI]").into()),
        _ => Err(Error::invalid(format!(
            "several pools ({}): name one with --pool",
            all.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
    }
}

pub struct NewJail {
    pub name: Name,
    pub address: HostPort,
    pub host_key: PublicKey,
    pub pool: Option<Name>,
    pub user: UserName,
    pub operator_user: UserName,
}

pub fn jail_add(c: &mut Conn, j: &NewJail) -> Result<Jail, Error> {
    if j.user == j.operator_user {
        return Err(Error::invalid(format!(
            "--user and --operator-user are both {}: devices and operators need separate accounts",
            j.user
        )));
    }
    c.transaction(|c| {
        let pool = resolve_pool(c, j.pool.as_ref())?;
        let new = Jail {
            name: j.name.clone(),
            pool: pool.name.clone(),
            address: j.address.clone(),
            host_key: j.host_key.clone(),
            user: j.user.clone(),
            operator_user: j.operator_user.clone(),
        };
        if let Some(old) = jail_named(c, &j.name)? {
            if old.pool == new.pool
                && old.address == new.address
                && old.host_key == new.host_key
                && old.user == new.user
                && old.operator_user == new.operator_user
            {
                return Ok(old);
            }
            return Err(Error::invalid(format!(
                "jail {} already exists (pool {}, address {})",
                old.name, old.pool, old.address
            ))
            .into());
        }
        c.exec(
            "INSERT INTO jails (name, pool, address, host_key, tunnel_user, operator_user, created)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                new.name.as_str().into(),
                new.pool.as_str().into(),
                new.address.to_string().into(),
                new.host_key.line().into(),
                new.user.as_str().into(),
                new.operator_user.as_str().into(),
                now().into(),
            ],
        )?;
        audit(
            c,
            "jail-add",
            None,
            None,
            Some(&format!(
                "{} pool={} address={}",
                new.name, new.pool, new.address
            )),
        )?;
        Ok(new)
    })
}

/// Every jail, each pool's in the order they were added (the order devices try them).
pub fn jails(c: &mut Conn) -> Result<Vec<Jail>, Error> {
    let rows = c.query(
        &format!("SELECT {JAIL_COLS} FROM jails ORDER BY pool, created, name"),
        &[],
    )?;
    rows.iter().map(jail_from).collect()
}

/// The jails of one pool, in the order devices try them.
pub fn pool_jails(c: &mut Conn, pool: &Name) -> Result<Vec<Jail>, Error> {
    let rows = c.query(
        &format!("SELECT {JAIL_COLS} FROM jails WHERE pool = $1 ORDER BY created, name"),
        &[pool.as_str().into()],
    )?;
    rows.iter().map(jail_from).collect()
}

/// One jail by name, if there is one.
pub fn jail_named(c: &mut Conn, name: &Name) -> Result<Option<Jail>, Error> {
    let rows = c.query(
        &format!("SELECT {JAIL_COLS} FROM jails WHERE name = $1"),
        &[name.as_str().into()],
    )?;
    rows.first().map(jail_from).transpose()
}

pub fn jail(c: &mut Conn, name: &Name) -> Result<Jail, Error> {
    jail_named(c, name)?.ok_or_else(|| Error::invalid(format!("unknown jail {name}")))
}

// ---- devices --------------------------------------------------------------

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

fn device_row(c: &mut Conn, col: &str, v: Value) -> Result<Option<Device>, Error> {
    let rows = c.query(&format!("SELECT {DEVICE_COLS} WHERE d.{col} = $1"), &[v])?;
    rows.first().map(device_from).transpose()
}

type DbErr = crate::db::DbError;

/// Deletes a device row and every grant for it (a later device with the same
/// id must not inherit them).
fn drop_device(c: &mut Conn, id: &DeviceId) -> Result<(), DbErr> {
    c.exec(
        "DELETE FROM grants WHERE device = $1",
        &[id.as_str().into()],
    )?;
    c.exec("DELETE FROM devices WHERE id = $1", &[id.as_str().into()])?;
    Ok(())
}

/// Why `key` may never be a device's key: revoked once, or an operator's.
fn key_refused(c: &mut Conn, fingerprint: &str) -> Result<Option<String>, Error> {
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
fn full(pool: &Pool, prefix: &str) -> Error {
    Error::runtime(format!(
        "{prefix}pool {} is full: all {} ports of {} are taken",
        pool.name,
        pool.range.size(),
        pool.range
    ))
}

/// The lowest free port of `range`, not in `used`.
fn free_port(range: PortRange, used: &BTreeSet<u16>) -> Option<u16> {
    (range.lo..=range.hi).find(|p| !used.contains(p))
}

/// The ports taken in `pool`. A stored port that is no port at all is an
/// error, not skipped: skipping it could hand the same port out twice.
fn used_ports(c: &mut Conn, pool: &Name) -> Result<BTreeSet<u16>, Error> {
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
fn lock_pool(c: &mut Conn, pool: &Name) -> Result<(), DbErr> {
    if c.is_postgres() {
        c.query(
            "SELECT name FROM pools WHERE name = $1 FOR UPDATE",
            &[pool.as_str().into()],
        )?;
    }
    Ok(())
}

fn insert_device(
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
fn conflicts(
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

/// Enrols one device (or confirms it is enrolled exactly so).
pub fn enroll(c: &mut Conn, d: &NewDevice, replace: bool) -> Result<(Device, Outcome), Error> {
    c.transaction(|c| {
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
                // Keep the port unless the device moves to another pool.
                let port = if old.pool == pool.name {
                    old.port
                } else {
                    let mut used = used_ports(c, &pool.name)?;
                    used.remove(&old.port);
                    free_port(pool.range, &used).ok_or_else(|| full(&pool, ""))?
                };
                drop_device(c, &old.id)?;
                let mut merged = d.clone();
                if merged.mac.is_none() && by_mac.is_none() {
                    merged.mac = old.mac.clone();
                }
                if merged.target.is_none() {
                    merged.target = Some(old.target.clone());
                }
                if merged.labels.as_ref().is_none_or(BTreeMap::is_empty) {
                    merged.labels = Some(old.labels.clone());
                }
                insert_device(c, &merged, &pool.name, port, at)?;
                detail.push(format!(
                    "was {} port {} key {}",
                    old.pool, old.port, old.fingerprint
                ));
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
    })
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
            return Err(crate::import_errors(errors).into());
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
            return Err(Error::invalid(format!("unknown device {id}")).into());
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
        c.exec(
            "INSERT INTO revoked_keys (fingerprint, device, at)
             SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM revoked_keys WHERE fingerprint = $1)",
            &[d.fingerprint.clone().into(), id.as_str().into(), at.into()],
        )?;
        c.exec("DELETE FROM grants WHERE device = $1", &[id.as_str().into()])?;
        audit(
            c,
            "revoke",
            Some(id.as_str()),
            reason,
            Some(&format!("key {}", d.fingerprint)),
        )?;
        Ok(device_row(c, "id", id.as_str().into())?.unwrap_or(d))
    })
}

/// A device by id or MAC.
pub enum Which {
    Id(DeviceId),
    Mac(Mac),
}

pub fn show(c: &mut Conn, which: &Which) -> Result<Device, Error> {
    let (col, v, shown) = match which {
        Which::Id(id) => ("id", id.as_str(), format!("device {id}")),
        Which::Mac(m) => ("mac", m.as_str(), format!("device with MAC {}", m.as_str())),
    };
    device_row(c, col, v.into())?.ok_or_else(|| Error::invalid(format!("unknown {shown}")))
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

// ---- operators and grants -----------------------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct Operator {
    pub name: Name,
    pub disabled: bool,
    pub keys: Vec<String>,
}

/// Adds an operator (if new) and one of its keys; idempotent for the same key.
pub fn operator_add(c: &mut Conn, name: &Name, key: &PublicKey) -> Result<(), Error> {
    c.transaction(|c| {
        if let Some(d) = device_row(c, "fingerprint", key.fingerprint.clone().into())? {
            return Err(Error::invalid(format!(
                "key {} is device {}'s: an operator needs a key of its own",
                key.fingerprint, d.id
            ))
            .into());
        }
        let revoked = c.query(
            "SELECT device FROM revoked_keys WHERE fingerprint = $1",
            &[key.fingerprint.clone().into()],
        )?;
        if let Some(r) = revoked.first() {
            return Err(Error::invalid(format!(
                "key {} was revoked (device {}): it is never trusted again",
                key.fingerprint,
                Rd::new("revoked_keys", "fingerprint", r).device_id("device")?
            ))
            .into());
        }
        let owner = c.query(
            "SELECT operator FROM operator_keys WHERE fingerprint = $1",
            &[key.fingerprint.clone().into()],
        )?;
        if let Some(r) = owner.first() {
            let o = Rd::new("operator_keys", "fingerprint", r).name("operator")?;
            if o == *name {
                return Ok(());
            }
            return Err(Error::invalid(format!(
                "key {} already belongs to operator {o}",
                key.fingerprint
            ))
            .into());
        }
        let at = now();
        let exists = !c
            .query(
                "SELECT name FROM operators WHERE name = $1",
                &[name.as_str().into()],
            )?
            .is_empty();
        if !exists {
            c.exec(
                "INSERT INTO operators (name, disabled, created) VALUES ($1, NULL, $2)",
                &[name.as_str().into(), at.into()],
            )?;
        }
        c.exec(
            "INSERT INTO operator_keys (fingerprint, operator, key_type, key_base64, added)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                key.fingerprint.clone().into(),
                name.as_str().into(),
                key.kind.clone().into(),
                key.base64.clone().into(),
                at.into(),
            ],
        )?;
        audit_op(
            c,
            "operator-add",
            None,
            Some(name.as_str()),
            None,
            Some(&format!("key {}", key.fingerprint)),
        )?;
        Ok(())
    })
}

/// Disables an operator: no key of theirs logs in from now on.
pub fn operator_disable(c: &mut Conn, name: &Name) -> Result<(), Error> {
    c.transaction(|c| {
        let n = c.exec(
            "UPDATE operators SET disabled = $1 WHERE name = $2 AND disabled IS NULL",
            &[now().into(), name.as_str().into()],
        )?;
        if n == 0 && operators(c)?.iter().all(|o| o.name != *name) {
            return Err(Error::invalid(format!("unknown operator {name}")).into());
        }
        if n > 0 {
            audit_op(c, "operator-disable", None, Some(name.as_str()), None, None)?;
        }
        Ok(())
    })
}

pub fn operators(c: &mut Conn) -> Result<Vec<Operator>, Error> {
    let ops = c.query("SELECT name, disabled FROM operators ORDER BY name", &[])?;
    let keys = c.query(
        "SELECT operator, fingerprint FROM operator_keys ORDER BY added",
        &[],
    )?;
    let mut by_op: BTreeMap<Name, Vec<String>> = BTreeMap::new();
    for k in &keys {
        let rd = Rd::new("operator_keys", "fingerprint", k);
        by_op
            .entry(rd.name("operator")?)
            .or_default()
            .push(rd.fingerprint("fingerprint")?);
    }
    ops.iter()
        .map(|r| {
            let rd = Rd::new("operators", "name", r);
            let name = rd.name("name")?;
            Ok(Operator {
                disabled: rd.is_set("disabled")?,
                keys: by_op.remove(&name).unwrap_or_default(),
                name,
            })
        })
        .collect()
}

/// A recorded grant.
#[derive(Clone, Debug)]
pub struct Granted {
    pub device: Device,
    /// Its row id: the serial of a certificate issued for it.
    pub id: i64,
    pub granted: i64,
    pub expires: i64,
}

/// Lets `operator` reach `device` until now + `for_secs` (one transaction:
/// the grant and its audit entry). A pool with `require_reason` refuses a
/// grant without one.
pub fn grant(
    c: &mut Conn,
    which: &Which,
    operator: &Name,
    for_secs: i64,
    reason: Option<&str>,
) -> Result<Granted, Error> {
    c.transaction(|c| {
        let d = show(c, which)?;
        if d.revoked {
            return Err(Error::invalid(format!("device {} is revoked", d.id)).into());
        }
        let op = operators(c)?
            .into_iter()
            .find(|o| o.name == *operator)
            .ok_or_else(|| Error::invalid(format!("unknown operator {operator}")))?;
        if op.disabled {
            return Err(Error::invalid(format!("operator {operator} is disabled")).into());
        }
        let pool = pools(c)?.into_iter().find(|p| p.name == d.pool);
        if pool.is_some_and(|p| p.require_reason) && reason.is_none() {
            return Err(Error::invalid(format!(
                "pool {} requires a --reason for every grant",
                d.pool
            ))
            .into());
        }
        let at = now();
        let expires = at + for_secs;
        let rows = c.query(
            "INSERT INTO grants (operator, device, granted, expires, reason) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                operator.as_str().into(),
                d.id.as_str().into(),
                at.into(),
                expires.into(),
                Value::opt_text(reason),
            ],
        )?;
        let id = rows
            .first()
            .and_then(|r| r.get("id"))
            .and_then(Value::int)
            .ok_or_else(|| Error::runtime("the new grant has no id"))?;
        let detail = format!("grant {id} until {}", rfc3339(expires));
        audit_op(c, "grant", Some(d.id.as_str()), Some(operator.as_str()), reason, Some(&detail))?;
        Ok(Granted {
            device: d,
            id,
            granted: at,
            expires,
        })
    })
}

/// The jail an operator reaches `d` through: the one `watch` last saw holding
/// its port, or else the pool's first jail (by when it was added).
pub fn jail_for(c: &mut Conn, d: &Device) -> Result<Jail, Error> {
    let mut in_pool = pool_jails(c, &d.pool)?;
    let now_at = d
        .online
        .as_ref()
        .and_then(|name| in_pool.iter().position(|j| j.name == *name));
    match now_at {
        Some(i) => Ok(in_pool.swap_remove(i)),
        None if !in_pool.is_empty() => Ok(in_pool.swap_remove(0)),
        None => Err(Error::invalid(format!(
            "pool {} has no jail: warden jail add",
            d.pool
        ))),
    }
}

/// An operator key as `authorized-keys` needs it.
pub struct OperatorKey {
    pub operator: Name,
    pub disabled: bool,
    /// The stored key, whose fingerprint was checked against the stored one.
    pub key: PublicKey,
}

pub fn operator_for_key(c: &mut Conn, fingerprint: &str) -> Result<Option<OperatorKey>, Error> {
    let rows = c.query(
        "SELECT k.fingerprint, o.name, o.disabled, k.key_type, k.key_base64 FROM operator_keys k
         JOIN operators o ON o.name = k.operator WHERE k.fingerprint = $1",
        &[fingerprint.into()],
    )?;
    rows.first()
        .map(|r| {
            let rd = Rd::new("operator_keys", "fingerprint", r);
            Ok(OperatorKey {
                operator: rd.name("name")?,
                disabled: rd.is_set("disabled")?,
                key: rd.key("key_type", "key_base64", "fingerprint")?,
            })
        })
        .transpose()
}

/// The (device, port) pairs `operator` holds a live grant for in `pool`, for
/// unrevoked devices, at time `at`.
pub fn granted_ports(
    c: &mut Conn,
    operator: &Name,
    pool: &Name,
    at: i64,
) -> Result<Vec<(DeviceId, u16)>, Error> {
    let rows = c.query(
        "SELECT DISTINCT d.id, d.port, p.port_lo, p.port_hi FROM grants g
         JOIN devices d ON d.id = g.device JOIN pools p ON p.name = d.pool
         WHERE g.operator = $1 AND g.expires > $2 AND d.pool = $3 AND d.revoked IS NULL
         ORDER BY d.port",
        &[operator.as_str().into(), at.into(), pool.as_str().into()],
    )?;
    rows.iter()
        .map(|r| {
            let rd = Rd::new("devices", "id", r);
            let range = rd.port_range("port_lo", "port_hi")?;
            Ok((rd.device_id("id")?, rd.port_in("port", range)?))
        })
        .collect()
}

/// Device ports of `pool` an operator may be connected to at `at`: an
/// unrevoked device holding at least one live grant of an enabled operator,
/// with the device's id.
pub fn granted_devices_by_port(
    c: &mut Conn,
    pool: &Name,
    at: i64,
) -> Result<BTreeMap<u16, DeviceId>, Error> {
    let rows = c.query(
        "SELECT DISTINCT d.port, d.id FROM grants g JOIN devices d ON d.id = g.device
         JOIN operators o ON o.name = g.operator
         WHERE g.expires > $1 AND d.pool = $2 AND d.revoked IS NULL AND o.disabled IS NULL",
        &[at.into(), pool.as_str().into()],
    )?;
    rows.iter()
        .map(|r| {
            let rd = Rd::new("devices", "id", r);
            Ok((rd.port("port")?, rd.device_id("id")?))
        })
        .collect()
}

/// The device of `pool` at `port`, and whether it is revoked.
pub fn device_at_port(
    c: &mut Conn,
    pool: &Name,
    port: u16,
) -> Result<Option<(DeviceId, bool)>, Error> {
    let rows = c.query(
        "SELECT id, revoked FROM devices WHERE pool = $1 AND port = $2",
        &[pool.as_str().into(), i64::from(port).into()],
    )?;
    rows.first()
        .map(|r| {
            let rd = Rd::new("devices", "id", r);
            Ok((rd.device_id("id")?, rd.is_set("revoked")?))
        })
        .transpose()
}

// ---- the audit trail ----------------------------------------------------------

/// One audit entry.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub at: String,
    pub action: String,
    pub device: Option<String>,
    pub operator: Option<String>,
    pub reason: Option<String>,
    pub actor: String,
    pub origin: String,
    pub detail: Option<String>,
}

/// Audit entries, oldest first, optionally for one device or operator and
/// from a time on (Unix seconds).
pub fn audit_entries(
    c: &mut Conn,
    device: Option<&DeviceId>,
    operator: Option<&Name>,
    since: Option<i64>,
) -> Result<Vec<AuditEntry>, Error> {
    let rows = c.query(
        "SELECT seq, at, action, device, operator, reason, actor, origin, detail FROM audit
         WHERE ($1 = '' OR device = $1) AND ($2 = '' OR operator = $2) AND at >= $3
         ORDER BY seq",
        &[
            device.map_or("", DeviceId::as_str).into(),
            operator.map_or("", Name::as_str).into(),
            since.unwrap_or(i64::MIN).into(),
        ],
    )?;
    // The trail keeps what was written, even text warden would refuse now:
    // every field is bounded here and printed through types::one_line.
    rows.iter()
        .map(|r| {
            let rd = Rd::new("audit", "seq", r);
            let text = |col| Ok::<_, Error>(rd.opt_free_text(col)?.unwrap_or_default());
            Ok(AuditEntry {
                at: rfc3339(rd.int("at")?),
                action: text("action")?,
                device: rd.opt_free_text("device")?,
                operator: rd.opt_free_text("operator")?,
                reason: rd.opt_free_text("reason")?,
                actor: text("actor")?,
                origin: text("origin")?,
                detail: rd.opt_free_text("detail")?,
            })
        })
        .collect()
}

/// Unix seconds of `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z')?)),
        None => (s, None),
    };
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [y, m, day] = d[..] else { return None };
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || !(1970..=9999).contains(&y) {
        return None;
    }
    let secs = match time {
        Some(t) => {
            let h: Vec<i64> = t
                .split(':')
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            let [hh, mm, ss] = h[..] else { return None };
            if hh > 23 || mm > 59 || ss > 60 || hh < 0 || mm < 0 || ss < 0 {
                return None;
            }
            hh * 3600 + mm * 60 + ss
        }
        None => 0,
    };
    // Howard Hinnant's days_from_civil.
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * 86400 + secs;
    // Round trip, so 2026-02-31 is refused rather than rolled over.
    (rfc3339(t)[..10] == *date).then_some(t)
}

// ---- the hot path: sshd's question ------------------------------------------

/// What `authorized-keys` needs to answer for one fingerprint at one jail.
pub struct Login {
    pub jail: Jail,
    pub device: Option<Device>,
}

pub fn login_lookup(c: &mut Conn, jail: &str, fingerprint: &str) -> Result<Login, Error> {
    let name = Name::parse("--jail", jail)?;
    let jail = jail_named(c, &name)?
        .ok_or_else(|| Error::runtime(format!("unknown jail {}", quote(jail))))?;
    let device = device_row(c, "fingerprint", fingerprint.into())?;
    Ok(Login { jail, device })
}

/// Records a login, at most once per [`LAST_SEEN_WRITE_SECS`], and never
/// waits for a lock to do it (a busy registry skips the write).
pub fn touch_last_seen(c: &mut Conn, id: &DeviceId, at: i64) {
    if let Conn::Sqlite { conn, .. } = c {
        let _ = conn.busy_timeout(std::time::Duration::ZERO);
    } else {
        let _ = c.batch("SET lock_timeout = 100");
    }
    let _ = c.exec(
        "UPDATE devices SET last_seen = $1 WHERE id = $2 AND (last_seen IS NULL OR last_seen < $3)",
        &[
            at.into(),
            id.as_str().into(),
            (at - LAST_SEEN_WRITE_SECS).into(),
        ],
    );
}

// ---- presence (watch) -------------------------------------------------------

/// What one watch tick changed and found.
#[derive(Debug, Default)]
pub struct Tick {
    pub came_online: Vec<DeviceId>,
    pub went_offline: Vec<DeviceId>,
    /// Revoked devices still holding their port here: (id, port).
    pub revoked_holding: Vec<(DeviceId, u16)>,
    /// Ports of the pool held here that belong to no device.
    pub strays: Vec<u16>,
    /// Rows of the pool that failed their check (each error names its row);
    /// their ports count as belonging to no device.
    pub bad_rows: Vec<String>,
}

/// Records which devices of `jail`'s pool hold their port here now.
pub fn record_presence(c: &mut Conn, jail: &Jail, held: &BTreeSet<u16>) -> Result<Tick, Error> {
    c.transaction(|c| {
        let at = now();
        let mut tick = Tick::default();
        let rows = c.query(
            "SELECT d.id, d.port, d.revoked, d.online_jail, d.last_seen, p.port_lo, p.port_hi
             FROM devices d JOIN pools p ON p.name = d.pool WHERE d.pool = $1",
            &[jail.pool.as_str().into()],
        )?;
        let mut known = BTreeSet::new();
        for r in &rows {
            let rd = Rd::new("devices", "id", r);
            let row = (|| {
                let range = rd.port_range("port_lo", "port_hi")?;
                Ok::<_, Error>((
                    rd.device_id("id")?,
                    rd.port_in("port", range)?,
                    rd.is_set("revoked")?,
                    rd.opt_name("online_jail")?,
                    rd.opt_int("last_seen")?.unwrap_or(0),
                ))
            })();
            let (id, port, revoked, online, last_seen) = match row {
                Ok(v) => v,
                Err(e) => {
                    tick.bad_rows.push(e.to_string());
                    continue;
                }
            };
            known.insert(port);
            let here = online.as_ref() == Some(&jail.name);
            let present = held.contains(&port);
            if present && revoked {
                tick.revoked_holding.push((id.clone(), port));
            }
            if present && !revoked && !here {
                c.exec(
                    "UPDATE devices SET online_jail = $1, online_since = $2, last_seen = $2, offline_since = NULL WHERE id = $3",
                    &[jail.name.as_str().into(), at.into(), id.as_str().into()],
                )?;
                tick.came_online.push(id);
            } else if present && !revoked && last_seen < at - LAST_SEEN_WRITE_SECS {
                c.exec(
                    "UPDATE devices SET last_seen = $1 WHERE id = $2",
                    &[at.into(), id.as_str().into()],
                )?;
            } else if here && (!present || revoked) {
                c.exec(
                    "UPDATE devices SET online_jail = NULL, offline_since = $1 WHERE id = $2",
                    &[at.into(), id.as_str().into()],
                )?;
                tick.went_offline.push(id);
            }
        }
        tick.strays = held.difference(&known).copied().collect();
        Ok(tick)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_979_045), "2026-11-29T19:04:05Z");
    }

    #[test]
    fn rfc3339_round_trips() {
        for t in [0, 951_782_400, 1_795_979_045] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("2026-11-29"), Some(1_795_910_400));
        for bad in [
            "2026-02-31",
            "2026-13-01",
            "2026-11-29T25:00:00Z",
            "yesterday",
            "2026-11-29T10:00:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn lowest_free_port() {
        let r = PortRange { lo: 10, hi: 12 };
        assert_eq!(free_port(r, &BTreeSet::new()), Some(10));
        assert_eq!(free_port(r, &[10, 12].into()), Some(11));
        assert_eq!(free_port(r, &[10, 11, 12].into()), None);
    }

    #[test]
    fn labels() {
        let l = parse_labels(&["site=berlin".into(), "hw=pi0".into()]).unwrap();
        assert_eq!(l["site"], "berlin");
        for bad in ["x", "=v", "a b=c", "k=v\n"] {
            assert!(parse_labels(&[bad.into()]).is_err(), "{bad:?}");
        }
    }
}
