//! The fleet at a glance, paged in SQL (the web view's fleet page at 10,000
//! devices decodes one page of rows, not the fleet): a filtered page of
//! devices with the total it was cut from, and presence counts per pool and
//! jail. The same SQL text on both backends (`replace` for substring tests:
//! case-sensitive on both, unlike LIKE on SQLite).

use super::conn::{Conn, Value};
use super::device::{DEVICE_COLS, device_from};
use super::row::Rd;
use super::*;
use crate::error::Error;
use crate::types::{Mac, Name};
use std::collections::BTreeMap;

/// Which devices a fleet page shows, and which page of them.
#[derive(Clone, Debug, Default)]
pub struct DeviceQuery {
    pub pool: Option<Name>,
    /// `Some(true)`: online; `Some(false)`: offline and not revoked.
    pub online: Option<bool>,
    /// Online at this jail.
    pub jail: Option<Name>,
    /// Carrying every one of these labels.
    pub labels: BTreeMap<String, String>,
    /// With this MAC, or (when `id_part` is given too) this MAC or an id
    /// holding `id_part`.
    pub mac: Option<Mac>,
    /// An id holding this text (compared lowercase).
    pub id_part: Option<String>,
    /// Rows to skip and to return.
    pub offset: usize,
    pub limit: usize,
}

/// One page of devices (by id) and how many match in all.
pub struct DevicePage {
    pub devices: Vec<Device>,
    pub total: usize,
}

/// The WHERE clause and its parameters for `q`.
fn where_clause(q: &DeviceQuery) -> (String, Vec<Value>) {
    let mut params: Vec<Value> = vec![
        q.pool.as_ref().map_or("", Name::as_str).into(),
        match q.online {
            None => -1i64,
            Some(false) => 0,
            Some(true) => 1,
        }
        .into(),
        q.jail.as_ref().map_or("", Name::as_str).into(),
        q.mac.as_ref().map_or("", Mac::as_str).into(),
        q.id_part
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase()
            .into(),
    ];
    let mut sql = String::from(
        "WHERE ($1 = '' OR d.pool = $1)
           AND (CAST($2 AS BIGINT) = -1
                OR (CAST($2 AS BIGINT) = 1 AND d.online_jail IS NOT NULL)
                OR (CAST($2 AS BIGINT) = 0 AND d.online_jail IS NULL AND d.revoked IS NULL))
           AND ($3 = '' OR d.online_jail = $3)
           AND (($4 = '' AND $5 = '')
                OR ($4 <> '' AND d.mac = $4)
                OR ($5 <> '' AND replace(lower(d.id), $5, '') <> lower(d.id)))",
    );
    // Labels are stored as compact JSON: `"key":"value"` appears exactly
    // for a label held (a quote inside a value is escaped); rows are checked
    // again after decoding by the caller.
    for (k, v) in &q.labels {
        let needle = format!(
            "{}:{}",
            serde_json::to_string(k).unwrap_or_default(),
            serde_json::to_string(v).unwrap_or_default()
        );
        params.push(needle.into());
        let n = params.len();
        sql.push_str(&format!(" AND replace(d.labels, ${n}, '') <> d.labels"));
    }
    (sql, params)
}

/// The devices `q` selects, one page of them, by id.
pub fn devices_page(c: &mut Conn, q: &DeviceQuery) -> Result<DevicePage, Error> {
    let (cond, mut params) = where_clause(q);
    let rows = c.query(
        &format!("SELECT count(*) AS n FROM devices d {cond}"),
        &params,
    )?;
    let total = rows
        .first()
        .and_then(|r| r.get("n"))
        .and_then(Value::int)
        .unwrap_or(0);
    params.push(i64::try_from(q.limit).unwrap_or(i64::MAX).into());
    params.push(i64::try_from(q.offset).unwrap_or(i64::MAX).into());
    let (l, o) = (params.len() - 1, params.len());
    let rows = c.query(
        &format!("SELECT {DEVICE_COLS} {cond} ORDER BY d.id LIMIT ${l} OFFSET ${o}"),
        &params,
    )?;
    Ok(DevicePage {
        devices: rows.iter().map(device_from).collect::<Result<_, _>>()?,
        total: usize::try_from(total).unwrap_or(0),
    })
}

/// How many devices of a pool are where: (pool, jail they are online at or
/// `None`, revoked) -> count.
pub type Presence = BTreeMap<(Name, Option<Name>, bool), usize>;

/// Devices counted by pool, the jail they are online at, and revocation.
pub fn presence_counts(c: &mut Conn) -> Result<Presence, Error> {
    let rows = c.query(
        "SELECT pool, online_jail, CASE WHEN revoked IS NULL THEN 0 ELSE 1 END AS rev, count(*) AS n
         FROM devices GROUP BY pool, online_jail, CASE WHEN revoked IS NULL THEN 0 ELSE 1 END",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            let rd = Rd::new("devices", "pool", r);
            let n = usize::try_from(rd.int("n")?).map_err(|_| rd.bad("n", "a negative count"))?;
            Ok((
                (
                    rd.name("pool")?,
                    rd.opt_name("online_jail")?,
                    rd.int("rev")? != 0,
                ),
                n,
            ))
        })
        .collect()
}
