//! Pools: a port range shared by jails; a point lookup and the list.

use super::conn::{Conn, Row, TxError};
use super::row::Rd;
use super::*;
use crate::error::Error;
use crate::types::{Name, PortRange, PublicKey};
use serde::Serialize;

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

pub(super) fn pool_from(r: &Row) -> Result<Pool, Error> {
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
        // The overlap check below must see every concurrent add.
        c.lock_table_for_writers("pools")?;
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
pub(super) fn resolve_pool(c: &mut Conn, name: Option<&Name>) -> Result<Pool, TxError> {
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
