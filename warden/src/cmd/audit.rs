//! `warden audit`: the trail, filtered, as the CLI and `--json` show it.

use super::{Ctx, name};
use crate::error::Error;
use crate::render::{dash, json, table};
use crate::store;
use crate::types::{self, DeviceId};

/// `--since`: a date, a time, or a duration back from now.
pub fn since(s: &str) -> Result<i64, Error> {
    match types::parse_duration(s) {
        Ok(d) => Ok(store::now() - d.as_secs() as i64),
        Err(_) => store::parse_rfc3339(s).ok_or_else(|| {
            Error::invalid(format!(
                "--since {}: want YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or a duration such as 1d",
                types::quote(s)
            ))
        }),
    }
}

pub fn run(
    ctx: &Ctx,
    device: &Option<String>,
    operator: &Option<String>,
    since_arg: &Option<String>,
) -> Result<String, Error> {
    let device = device.as_deref().map(DeviceId::parse).transpose()?;
    let operator = name("operator", operator)?;
    let since = since_arg.as_deref().map(since).transpose()?;
    let es = entries(ctx, device.as_ref(), operator.as_ref(), since)?;
    if ctx.json {
        return Ok(json(&es));
    }
    let rows: Vec<Vec<String>> = es
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                e.action.clone(),
                dash(&e.device),
                dash(&e.operator),
                e.actor.clone(),
                dash(&e.reason),
                dash(&e.detail),
            ]
        })
        .collect();
    Ok(table(
        &[
            "AT", "ACTION", "DEVICE", "OPERATOR", "BY", "REASON", "DETAIL",
        ],
        &rows,
    ))
}

/// Audit entries, oldest first (`audit`, the API's audit).
pub fn entries(
    ctx: &Ctx,
    device: Option<&DeviceId>,
    operator: Option<&crate::types::Name>,
    since: Option<i64>,
) -> Result<Vec<store::AuditEntry>, Error> {
    ctx.admin(|c| store::audit_entries(c, device, operator, since))
}
