//! What the API reads and writes, as documented in its OpenAPI document:
//! request bodies (unknown fields refused) and answers converted from the
//! store's typed rows (kept apart, so the store knows nothing of OpenAPI).
//! A device serializes exactly as `warden ls --json` prints it.

use crate::store::{AuditEntry, Device, Jail, Pool};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Every error: one line naming the field or the thing at fault.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /api/v1/devices`: enrol a device (the factory's one call).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// Device id: 1-64 of A-Z a-z 0-9 . _ -
    pub id: String,
    /// The device's public key, "ssh-ed25519 AAAA..."
    pub key: String,
    pub mac: Option<String>,
    /// Default: the only pool.
    pub pool: Option<String>,
    /// Where the jail's port leads on the device (default 127.0.0.1:22).
    pub target: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// `POST /api/v1/claims`: a claim token for a production batch.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub pool: String,
    /// How many devices may claim with it (1-100000, default 1).
    pub uses: Option<i64>,
    /// DURATION it is valid for: 90s, 15m, 2h, 1d (default 1d, at most 30d).
    pub expires: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    /// Only MACs starting with these octets, e.g. "b8:27:eb".
    pub mac_prefix: Option<String>,
    /// HOST:PORT the devices' tunnels lead to (default 127.0.0.1:22).
    pub target: Option<String>,
}

/// A claim as `warden claim ls --json` prints it (never its token).
#[derive(Serialize, ToSchema)]
pub struct ClaimOut {
    pub id: String,
    pub pool: String,
    pub uses_total: i64,
    pub uses_left: i64,
    /// RFC 3339.
    pub expires: String,
    pub labels: BTreeMap<String, String>,
    pub mac_prefix: Option<String>,
    pub target: Option<String>,
    pub created: String,
    pub revoked: Option<String>,
}

impl From<&crate::store::Claim> for ClaimOut {
    fn from(c: &crate::store::Claim) -> Self {
        ClaimOut {
            id: c.id.to_string(),
            pool: c.pool.to_string(),
            uses_total: c.uses_total,
            uses_left: c.uses_left,
            expires: c.expires.clone(),
            labels: c.labels.clone(),
            mac_prefix: c.mac_prefix.clone(),
            target: c.target.as_ref().map(|t| t.to_string()),
            created: c.created.clone(),
            revoked: c.revoked.clone(),
        }
    }
}

/// `POST /api/v1/claims`' answer: the token, shown this once, and the claim.
#[derive(Serialize, ToSchema)]
pub struct ClaimCreated {
    /// The claim token for the batch's device images; only its hash is kept.
    pub token: String,
    pub claim: ClaimOut,
}

#[derive(Serialize, ToSchema)]
pub struct ClaimList {
    pub claims: Vec<ClaimOut>,
}

/// `POST /api/v1/devices/{id}/revoke`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub reason: Option<String>,
}

/// `POST /api/v1/grants`: a grant for the token's operator.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// Device id or MAC.
    pub device: String,
    /// DURATION: 90s, 15m, 2h, 1d (default 15m).
    #[serde(rename = "for")]
    pub duration: Option<String>,
    pub reason: Option<String>,
}

/// A recorded grant and the ssh command that uses it.
#[derive(Serialize, ToSchema)]
pub struct GrantOut {
    pub grant: i64,
    pub device: String,
    pub operator: String,
    /// RFC 3339.
    pub expires: String,
    /// The command line (shell words) reaching the device through its jail.
    pub ssh: String,
}

/// A device, as `warden ls --json` prints it.
#[derive(Serialize, ToSchema)]
pub struct DeviceOut {
    pub id: String,
    pub mac: Option<String>,
    pub pool: String,
    pub port: u16,
    pub target: String,
    pub revoked: bool,
    /// The jail holding the device now.
    pub online: Option<String>,
    pub last_seen: Option<String>,
    pub online_since: Option<String>,
    pub offline_since: Option<String>,
    pub enrolled: String,
    pub revoked_at: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub key: String,
    pub fingerprint: String,
}

impl From<&Device> for DeviceOut {
    fn from(d: &Device) -> Self {
        let s = |v: &dyn std::fmt::Display| v.to_string();
        DeviceOut {
            id: s(&d.id),
            mac: d.mac.as_ref().map(|m| s(m)),
            pool: s(&d.pool),
            port: d.port,
            target: s(&d.target),
            revoked: d.revoked,
            online: d.online.as_ref().map(|j| s(j)),
            last_seen: d.last_seen.clone(),
            online_since: d.online_since.clone(),
            offline_since: d.offline_since.clone(),
            enrolled: d.enrolled.clone(),
            revoked_at: d.revoked_at.clone(),
            labels: d.labels.clone(),
            key: s(&d.key),
            fingerprint: d.fingerprint.clone(),
        }
    }
}

/// One page of devices and how many the filters select in all.
#[derive(Serialize, ToSchema)]
pub struct DeviceList {
    pub devices: Vec<DeviceOut>,
    pub total: usize,
}

/// One audit entry, as `warden audit --json` prints it.
#[derive(Serialize, ToSchema)]
pub struct AuditOut {
    pub at: String,
    pub action: String,
    pub device: Option<String>,
    pub operator: Option<String>,
    pub reason: Option<String>,
    pub actor: String,
    pub origin: String,
    pub detail: Option<String>,
}

impl From<&AuditEntry> for AuditOut {
    fn from(e: &AuditEntry) -> Self {
        AuditOut {
            at: e.at.clone(),
            action: e.action.clone(),
            device: e.device.clone(),
            operator: e.operator.clone(),
            reason: e.reason.clone(),
            actor: e.actor.clone(),
            origin: e.origin.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// One page of the audit trail, oldest first.
#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditOut>,
    pub total: usize,
}

/// A pool, as `warden pool ls --json` prints it.
#[derive(Serialize, ToSchema)]
pub struct PoolOut {
    pub name: String,
    pub ports: String,
    pub devices: i64,
    pub require_reason: bool,
    pub host_ca: Option<String>,
}

impl From<&Pool> for PoolOut {
    fn from(p: &Pool) -> Self {
        PoolOut {
            name: p.name.to_string(),
            ports: p.ports.clone(),
            devices: p.devices,
            require_reason: p.require_reason,
            host_ca: p.host_ca.as_ref().map(|k| k.to_string()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PoolList {
    pub pools: Vec<PoolOut>,
}

/// A jail, as `warden jail ls --json` prints it.
#[derive(Serialize, ToSchema)]
pub struct JailOut {
    pub name: String,
    pub pool: String,
    pub address: String,
    pub host_key: String,
    pub user: String,
    pub operator_user: String,
}

impl From<&Jail> for JailOut {
    fn from(j: &Jail) -> Self {
        JailOut {
            name: j.name.to_string(),
            pool: j.pool.to_string(),
            address: j.address.to_string(),
            host_key: j.host_key.to_string(),
            user: j.user.to_string(),
            operator_user: j.operator_user.to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct JailList {
    pub jails: Vec<JailOut>,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}
