//! What the web view's pages read: each page's rows from the store in one
//! registry connection, the same typed values the CLI and the API print.

use super::Ctx;
use super::device::Filter;
use crate::error::Error;
use crate::store::{
    self, AuditEntry, Device, DevicePage, DeviceQuery, GrantRow, Jail, Pool, Presence, Which,
};
use crate::types::DeviceId;

/// Pools and jails, and how many devices are where.
pub struct Fleet {
    pub pools: Vec<Pool>,
    pub jails: Vec<Jail>,
    pub presence: Presence,
}

/// One page of the fleet as the fleet page shows it.
pub struct FleetPage {
    pub fleet: Fleet,
    pub page: DevicePage,
}

fn fleet_in(c: &mut crate::store::conn::Conn) -> Result<Fleet, Error> {
    Ok(Fleet {
        pools: store::pools(c)?,
        jails: store::jails(c)?,
        presence: store::presence_counts(c)?,
    })
}

/// Pools, jails and presence counts (the jails-and-pools page).
pub fn fleet(ctx: &Ctx) -> Result<Fleet, Error> {
    ctx.admin(fleet_in)
}

/// The page of devices `q` selects (paged in SQL: a page decodes its own
/// rows only), with the counts at the top; past the last page, the last.
pub fn fleet_page(ctx: &Ctx, q: &DeviceQuery) -> Result<FleetPage, Error> {
    ctx.admin(|c| {
        let fleet = fleet_in(c)?;
        if let Some(p) = &q.pool
            && !fleet.pools.iter().any(|x| x.name == *p)
        {
            return Err(Error::invalid(format!("unknown pool {p}")));
        }
        let mut page = store::devices_page(c, q)?;
        if page.devices.is_empty() && page.total > 0 && q.limit > 0 {
            let last = (page.total - 1) / q.limit * q.limit;
            page = store::devices_page(
                c,
                &DeviceQuery {
                    offset: last,
                    ..q.clone()
                },
            )?;
        }
        // The label test in SQL is a text search: checked again, decoded.
        page.devices
            .retain(|d| q.labels.iter().all(|(k, v)| d.labels.get(k) == Some(v)));
        Ok(FleetPage { fleet, page })
    })
}

impl Filter {
    /// Whether device `d` is one this filter selects (the same test as `ls`).
    pub fn admits(&self, d: &Device) -> bool {
        self.pool.as_ref().is_none_or(|p| d.pool == *p)
            && match self.online {
                None => true,
                Some(true) => d.online.is_some(),
                Some(false) => d.online.is_none() && !d.revoked,
            }
            && (self.mac.is_none() || d.mac == self.mac)
            && self.labels.iter().all(|(k, v)| d.labels.get(k) == Some(v))
    }
}

/// One device with what its page shows.
pub struct DeviceView {
    pub device: Device,
    /// The jails of its pool, in the order devices try them.
    pub jails: Vec<Jail>,
    /// Its audit trail, oldest first.
    pub audit: Vec<AuditEntry>,
    /// Its newest grants, newest first.
    pub grants: Vec<GrantRow>,
    /// Its own sshd host keys, as recorded by a claim or `enroll --host-key`.
    pub host_keys: Vec<crate::types::PublicKey>,
}

/// Device `id` and its jails, trail and grants.
pub fn device(ctx: &Ctx, id: &DeviceId) -> Result<DeviceView, Error> {
    ctx.admin(|c| {
        let device = store::show(c, &Which::Id(id.clone()))?;
        Ok(DeviceView {
            jails: store::pool_jails(c, &device.pool)?,
            audit: store::audit_entries(c, Some(id), None, None)?,
            grants: store::device_grants(c, id)?,
            host_keys: store::host_keys(c, id)?,
            device,
        })
    })
}
