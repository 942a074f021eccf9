//! The jail side: sshd's hot-path lookup and `watch`'s presence records.

use super::conn::Conn;
use super::row::Rd;
use super::*;
use crate::error::Error;
use crate::types::{DeviceId, Name, quote};
use std::collections::BTreeSet;

/// The jail account devices log in as when `--user` is not given.
pub const DEFAULT_TUNNEL_USER: &str = "tunuser";
/// How stale `last_seen` may get before a login or a watch tick writes it
/// again: logins never queue behind a write for a timestamp.
pub const LAST_SEEN_WRITE_SECS: i64 = 60;

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
    c.give_up_on_locks();
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
    /// Unrevoked devices holding their port here: (id, port, when their
    /// current key was enrolled, Unix seconds). A session that started before
    /// that belongs to an older key, or to the port's previous owner.
    pub holding: Vec<(DeviceId, u16, i64)>,
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
            "SELECT d.id, d.port, d.revoked, d.online_jail, d.last_seen, d.enrolled, p.port_lo, p.port_hi
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
                    rd.int("enrolled")?,
                ))
            })();
            let (id, port, revoked, online, last_seen, enrolled) = match row {
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
            } else if present {
                tick.holding.push((id.clone(), port, enrolled));
            }
            if present && !revoked && !here {
                c.exec(
                    "UPDATE devices SET online_jail = $1, online_since = $2, last_seen = $2, offline_since = NULL WHERE id = $3",
                    &[jail.name.as_str().into(), at.into(), id.as_str().into()],
                )?;
                super::hook::enqueue(
                    c,
                    "device.online",
                    &id,
                    serde_json::json!({"jail": jail.name.as_str()}),
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
                super::hook::enqueue(
                    c,
                    "device.offline",
                    &id,
                    serde_json::json!({"jail": jail.name.as_str()}),
                )?;
                tick.went_offline.push(id);
            }
        }
        tick.strays = held.difference(&known).copied().collect();
        Ok(tick)
    })
}
