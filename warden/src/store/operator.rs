//! Operators, their keys and their grants.

use super::conn::{Conn, Value};
use super::row::Rd;
use super::*;
use crate::error::Error;
use crate::types::{DeviceId, Name, PublicKey};
use serde::Serialize;
use std::collections::BTreeMap;

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
        super::hook::enqueue(
            c,
            "grant.created",
            &d.id,
            serde_json::json!({
                "grant": id.to_string(),
                "operator": operator.as_str(),
                "expires": rfc3339(expires),
                "reason": reason.unwrap_or(""),
            }),
        )?;
        Ok(Granted {
            device: d,
            id,
            granted: at,
            expires,
        })
    })
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

/// The operators holding a live grant for each granted port of `pool`.
pub fn grantees_by_port(
    c: &mut Conn,
    pool: &Name,
    at: i64,
) -> Result<BTreeMap<u16, Vec<Name>>, Error> {
    let rows = c.query(
        "SELECT DISTINCT d.port, d.id, g.operator FROM grants g JOIN devices d ON d.id = g.device
         JOIN operators o ON o.name = g.operator
         WHERE g.expires > $1 AND d.pool = $2 AND d.revoked IS NULL AND o.disabled IS NULL",
        &[at.into(), pool.as_str().into()],
    )?;
    let mut out: BTreeMap<u16, Vec<Name>> = BTreeMap::new();
    for r in &rows {
        let rd = Rd::new("devices", "id", r);
        out.entry(rd.port("port")?)
            .or_default()
            .push(rd.name("operator")?);
    }
    Ok(out)
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

/// The most grants of one device the web view lists (newest first).
pub const MAX_LISTED_GRANTS: i64 = 100;

/// A recorded grant of one device, as listed (expired ones too).
#[derive(Clone, Debug, Serialize)]
pub struct GrantRow {
    pub id: i64,
    pub operator: Name,
    pub granted: String,
    pub expires: String,
    #[serde(skip)]
    pub expires_at: i64,
    pub reason: Option<String>,
}

/// The newest [`MAX_LISTED_GRANTS`] grants of `device`, newest first.
pub fn device_grants(c: &mut Conn, device: &DeviceId) -> Result<Vec<GrantRow>, Error> {
    let rows = c.query(
        "SELECT id, operator, granted, expires, reason FROM grants
         WHERE device = $1 ORDER BY id DESC LIMIT $2",
        &[device.as_str().into(), MAX_LISTED_GRANTS.into()],
    )?;
    rows.iter()
        .map(|r| {
            let rd = Rd::new("grants", "id", r);
            let expires_at = rd.int("expires")?;
            Ok(GrantRow {
                id: rd.int("id")?,
                operator: rd.name("operator")?,
                granted: rfc3339(rd.int("granted")?),
                expires: rfc3339(expires_at),
                expires_at,
                reason: rd.opt_free_text("reason")?,
            })
        })
        .collect()
}
