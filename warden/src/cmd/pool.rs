//! `warden pool add | host-ca | ls`.

use super::Ctx;
use crate::cli::PoolCmd;
use crate::error::Error;
use crate::render::{json, table};
use crate::store;
use crate::types::{Name, PortRange, PublicKey};

pub fn run(ctx: &Ctx, cmd: &PoolCmd) -> Result<String, Error> {
    match cmd {
        PoolCmd::Add {
            name,
            ports,
            require_reason,
        } => {
            let n = Name::parse("pool", name)?;
            let range = PortRange::parse(ports)?;
            ctx.admin(|c| store::pool_add(c, &n, range, *require_reason))?;
            let needs = if *require_reason {
                " (grants need a --reason)"
            } else {
                ""
            };
            Ok(format!("pool {n} ports {range}{needs}\n"))
        }
        PoolCmd::HostCa { name, key } => {
            let n = Name::parse("pool", name)?;
            let key = PublicKey::parse("--key", key)?;
            ctx.admin(|c| store::pool_host_ca(c, &n, &key))?;
            Ok(format!(
                "pool {n} host CA {}: sign its jails (warden jail sign), then write devices' config\n",
                key.fingerprint
            ))
        }
        PoolCmd::Ls => {
            let ps = ctx.admin(store::pools)?;
            if ctx.json {
                return Ok(json(&ps));
            }
            let rows: Vec<Vec<String>> = ps
                .iter()
                .map(|p| vec![p.name.to_string(), p.ports.clone(), p.devices.to_string()])
                .collect();
            Ok(table(&["POOL", "PORTS", "DEVICES"], &rows))
        }
    }
}
