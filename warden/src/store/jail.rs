//! Jails: one sshd host each, in a pool; decoded and checked on the way out.

use super::conn::{Conn, Row};
use super::row::Rd;
use super::*;
use crate::error::Error;
use crate::types::{HostPort, Name, PublicKey, UserName};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Jail {
    pub name: Name,
    pub pool: Name,
    pub address: HostPort,
    pub host_key: PublicKey,
    pub user: UserName,
    pub operator_user: UserName,
    /// The account devices holding a claim token log in as.
    pub claim_user: UserName,
}

pub(super) const JAIL_COLS: &str =
    "name, pool, address, host_key, tunnel_user, operator_user, claim_user";

/// Why three jail accounts cannot serve, if they cannot: each must be its own.
pub fn accounts_clash(
    user: &UserName,
    operator_user: &UserName,
    claim_user: &UserName,
) -> Option<String> {
    if user == operator_user {
        Some(format!(
            "tunnel and operator accounts are both {user}: devices and operators need separate accounts"
        ))
    } else if claim_user == user || claim_user == operator_user {
        Some(format!(
            "the claim account {claim_user} is also the tunnel or operator account: claims need an account of their own"
        ))
    } else {
        None
    }
}

pub(super) fn jail_from(r: &Row) -> Result<Jail, Error> {
    let rd = Rd::new("jails", "name", r);
    let j = Jail {
        name: rd.name("name")?,
        pool: rd.name("pool")?,
        address: rd.host_port("address", Some(22))?,
        host_key: rd.key_line("host_key")?,
        user: rd.user("tunnel_user")?,
        operator_user: rd.user("operator_user")?,
        claim_user: rd.user("claim_user")?,
    };
    if let Some(why) = accounts_clash(&j.user, &j.operator_user, &j.claim_user) {
        return Err(rd.bad("operator_user", why));
    }
    Ok(j)
}

pub struct NewJail {
    pub name: Name,
    pub address: HostPort,
    pub host_key: PublicKey,
    pub pool: Option<Name>,
    pub user: UserName,
    pub operator_user: UserName,
    pub claim_user: UserName,
}

pub fn jail_add(c: &mut Conn, j: &NewJail) -> Result<Jail, Error> {
    if let Some(why) = accounts_clash(&j.user, &j.operator_user, &j.claim_user) {
        return Err(Error::invalid(format!(
            "--user, --operator-user, --claim-user: {why}"
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
            claim_user: j.claim_user.clone(),
        };
        if let Some(old) = jail_named(c, &j.name)? {
            if old.pool == new.pool
                && old.address == new.address
                && old.host_key == new.host_key
                && old.user == new.user
                && old.operator_user == new.operator_user
                && old.claim_user == new.claim_user
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
            "INSERT INTO jails (name, pool, address, host_key, tunnel_user, operator_user, claim_user, created)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                new.name.as_str().into(),
                new.pool.as_str().into(),
                new.address.to_string().into(),
                new.host_key.line().into(),
                new.user.as_str().into(),
                new.operator_user.as_str().into(),
                new.claim_user.as_str().into(),
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
