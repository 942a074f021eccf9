//! Fleet figures for `/metrics`, read at scrape time: a few aggregate
//! queries whose cost does not grow with a per-device loop (GROUP BY over
//! the devices table, the pools and jails lists, and counts of audit
//! actions over the `audit_action` index).

use super::conn::Conn;
use super::row::Rd;
use crate::error::Error;
use crate::types::Name;
use std::collections::BTreeMap;

/// What one scrape reads from the registry.
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Unrevoked devices per pool (every pool, zeros included).
    pub enrolled: BTreeMap<Name, i64>,
    /// Devices online per (pool, jail) (every jail, zeros included).
    pub online: BTreeMap<(Name, Name), i64>,
    /// Revoked devices per pool.
    pub revoked: BTreeMap<Name, i64>,
    /// Audit entries per action (enroll, import, replace, revoke, grant).
    pub actions: BTreeMap<String, i64>,
    /// Webhook deliveries not yet acknowledged.
    pub outbox_pending: i64,
}

/// The audit actions counted as `warden_*_total` counters.
pub const COUNTED_ACTIONS: &[&str] = &["enroll", "import", "replace", "revoke", "grant"];

pub fn fleet_stats(c: &mut Conn) -> Result<FleetStats, Error> {
    let mut s = FleetStats::default();
    for r in &c.query("SELECT name FROM pools", &[])? {
        let p = Rd::new("pools", "name", r).name("name")?;
        s.enrolled.insert(p.clone(), 0);
        s.revoked.insert(p, 0);
    }
    for r in &c.query("SELECT name, pool FROM jails", &[])? {
        let rd = Rd::new("jails", "name", r);
        s.online.insert((rd.name("pool")?, rd.name("name")?), 0);
    }
    let rows = c.query(
        "SELECT pool, online_jail, CASE WHEN revoked IS NULL THEN 0 ELSE 1 END AS gone, count(*) AS n
         FROM devices GROUP BY pool, online_jail, CASE WHEN revoked IS NULL THEN 0 ELSE 1 END",
        &[],
    )?;
    for r in &rows {
        let rd = Rd::new("devices", "pool", r);
        let (pool, jail, gone, n) = (
            rd.name("pool")?,
            rd.opt_name("online_jail")?,
            rd.int("gone")? != 0,
            rd.int("n")?,
        );
        if gone {
            *s.revoked.entry(pool).or_default() += n;
            continue;
        }
        *s.enrolled.entry(pool.clone()).or_default() += n;
        if let Some(j) = jail {
            *s.online.entry((pool, j)).or_default() += n;
        }
    }
    let actions = COUNTED_ACTIONS
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ");
    for r in &c.query(
        &format!(
            "SELECT action, count(*) AS n FROM audit WHERE action IN ({actions}) GROUP BY action"
        ),
        &[],
    )? {
        let rd = Rd::new("audit", "action", r);
        let a = rd.text("action")?;
        if let Some(known) = COUNTED_ACTIONS.iter().find(|k| **k == a) {
            s.actions.insert((*known).to_string(), rd.int("n")?);
        }
    }
    if let Some(r) = c
        .query(
            "SELECT count(*) AS n FROM outbox WHERE delivered IS NULL",
            &[],
        )?
        .first()
    {
        s.outbox_pending = Rd::new("outbox", "n", r).int("n")?;
    }
    Ok(s)
}
