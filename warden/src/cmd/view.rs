//! What the web view's pages read: each page's rows from the store in one
//! registry connection, the same typed values the CLI and the API print.

use super::Ctx;
use super::device::Filter;
use crate::error::Error;
use crate::store::{self, AuditEntry, Device, GrantRow, Jail, Pool, Which};
use crate::types::DeviceId;

/// The whole fleet: every device (by id), pool and jail.
pub struct Fleet {
    pub devices: Vec<Device>,
    pub pools: Vec<Pool>,
    pub jails: Vec<Jail>,
}

/// The fleet, for the fleet and the jails-and-pools pages.
pub fn fleet(ctx: &Ctx) -> Result<Fleet, Error> {
    ctx.admin(|c| {
        Ok(Fleet {
            devices: store::devices(c, None)?,
            pools: store::pools(c)?,
            jails: store::jails(c)?,
        })
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
}

/// Device `id` and its jails, trail and grants.
pub fn device(ctx: &Ctx, id: &DeviceId) -> Result<DeviceView, Error> {
    ctx.admin(|c| {
        let device = store::show(c, &Which::Id(id.clone()))?;
        Ok(DeviceView {
            jails: store::pool_jails(c, &device.pool)?,
            audit: store::audit_entries(c, Some(id), None, None)?,
            grants: store::device_grants(c, id)?,
            device,
        })
    })
}
