//! `warden operator add | disable | ls` and `warden grant`.

use super::Ctx;
use crate::cli::OperatorCmd;
use crate::error::Error;
use crate::render::{json, table};
use crate::store::{self, Which};
use crate::types::{self, Name, PublicKey};

pub fn run(ctx: &Ctx, cmd: &OperatorCmd) -> Result<String, Error> {
    match cmd {
        OperatorCmd::Add { name, key } => {
            let n = Name::parse("operator", name)?;
            let key = PublicKey::parse("--key", key)?;
            ctx.admin(|c| store::operator_add(c, &n, &key))?;
            Ok(format!("operator {n} key {}\n", key.fingerprint))
        }
        OperatorCmd::Disable { name } => {
            let n = Name::parse("operator", name)?;
            ctx.admin(|c| store::operator_disable(c, &n))?;
            Ok(format!("operator {n} disabled\n"))
        }
        OperatorCmd::Ls => {
            let ops = ctx.admin(store::operators)?;
            if ctx.json {
                return Ok(json(&ops));
            }
            let rows: Vec<Vec<String>> = ops
                .iter()
                .map(|o| {
                    let state = if o.disabled { "disabled" } else { "enabled" };
                    vec![o.name.to_string(), state.into(), o.keys.join(",")]
                })
                .collect();
            Ok(table(&["OPERATOR", "STATE", "KEYS"], &rows))
        }
    }
}

pub fn grant(
    ctx: &Ctx,
    id: &Option<String>,
    mac: &Option<String>,
    operator: &str,
    duration: &str,
    reason: Option<&str>,
) -> Result<String, Error> {
    let which = Which::parse(id, mac, "grant")?;
    let operator = Name::parse("operator", operator)?;
    let secs = types::parse_duration(duration)?.as_secs() as i64;
    types::check_reason(reason)?;
    let g = ctx.admin(|c| store::grant(c, &which, &operator, secs, reason))?;
    Ok(format!(
        "operator {operator} may reach {} (port {} of pool {}) until {} (grant {})\n",
        g.device.id,
        g.device.port,
        g.device.pool,
        store::rfc3339(g.expires),
        g.id
    ))
}

/// Records a grant and returns it with the ssh command that uses it
/// (through the jail holding the device now; the operator's own key).
pub fn grant_one(
    ctx: &Ctx,
    which: &Which,
    operator: &Name,
    secs: i64,
    reason: Option<&str>,
) -> Result<(store::Granted, String), Error> {
    types::check_reason(reason)?;
    ctx.admin(|c| {
        let jail = crate::connect::route_checked(c, which, reason.is_some())?;
        let g = store::grant(c, which, operator, secs, reason)?;
        let ssh = crate::connect::ssh_line(&jail, &g.device)?;
        Ok((g, ssh))
    })
}
