//! `warden jail add | sign | ls` and what runs on a jail host:
//! `sshd-config`, `authorized-keys`, `watch`, `db-grants`.

use super::{Ctx, name};
use crate::cli::{JailCmd, RoleFor, SshdConfigArgs};
use crate::error::Error;
use crate::render::{json, table};
use crate::store::conn::{self as db, Conn};
use crate::store::{self, NewJail};
use crate::types::{HostPort, Name, PublicKey, UserName};
use crate::{sshd, watch as watcher};
use std::path::Path;

pub fn run(ctx: &Ctx, cmd: &JailCmd) -> Result<String, Error> {
    match cmd {
        JailCmd::Add {
            name: n,
            address,
            host_key,
            pool,
            user,
            operator_user,
            claim_user,
        } => {
            let j = NewJail {
                name: Name::parse("jail", n)?,
                address: HostPort::parse("--address", address, Some(22))?,
                host_key: PublicKey::parse("--host-key", host_key)?,
                pool: name("pool", pool)?,
                user: UserName::parse("--user", user)?,
                operator_user: UserName::parse("--operator-user", operator_user)?,
                claim_user: UserName::parse("--claim-user", claim_user)?,
            };
            let j = ctx.admin(|c| store::jail_add(c, &j))?;
            Ok(format!(
                "jail {} pool {} address {}\n",
                j.name, j.pool, j.address
            ))
        }
        JailCmd::Sign {
            name: n,
            ca,
            valid,
            out,
        } => {
            let n = Name::parse("jail", n)?;
            crate::ca::jail_sign(&ctx.db, &n, ca, valid, out.as_deref())
        }
        JailCmd::Ls => {
            let js = ctx.admin(store::jails)?;
            if ctx.json {
                return Ok(json(&js));
            }
            let rows: Vec<Vec<String>> = js
                .iter()
                .map(|j| {
                    vec![
                        j.name.to_string(),
                        j.pool.to_string(),
                        j.address.to_string(),
                        j.user.to_string(),
                        j.host_key.fingerprint.clone(),
                    ]
                })
                .collect();
            Ok(table(
                &["JAIL", "POOL", "ADDRESS", "USER", "HOST KEY"],
                &rows,
            ))
        }
    }
}

/// sshd's `AuthorizedKeysCommand`: one verified line, or nothing and the
/// reason on stderr (exit 0 either way: sshd reads a refusal from silence).
pub fn authorized_keys(
    ctx: &Ctx,
    jail: &str,
    user: &str,
    fingerprint: &str,
    offered: Option<(&str, &str)>,
    metrics_socket: Option<&Path>,
) -> Result<String, Error> {
    use crate::watch_metrics::{Outcome, default_socket, report_lookup};
    let start = std::time::Instant::now();
    let answer = sshd::authorize(&ctx.db, jail, user, fingerprint, offered);
    let (outcome, reason) = match &answer {
        Ok(Ok(_)) => (Outcome::Allowed, "-"),
        Ok(Err(r)) => (Outcome::Refused, r.reason),
        Err(_) => (Outcome::Error, "-"),
    };
    let socket = match (metrics_socket, Name::parse("--jail", jail)) {
        (Some(p), _) => Some(p.to_path_buf()),
        (None, Ok(j)) => Some(default_socket(&j)),
        (None, Err(_)) => None,
    };
    if let Some(s) = socket {
        report_lookup(&s, outcome, reason, start.elapsed());
    }
    match answer? {
        Ok(line) => Ok(line + "\n"),
        Err(why) => {
            eprintln!("warden authorized-keys: refused: {why}");
            Ok(String::new())
        }
    }
}

/// `watch --metrics-listen`: the jail host's figures (watch_metrics.rs).
pub fn watch_metrics(jail: &str, listen: &str, socket: Option<&Path>) -> Result<(), Error> {
    let jail = Name::parse("jail", jail)?;
    let socket = socket.map_or_else(
        || crate::watch_metrics::default_socket(&jail),
        Path::to_path_buf,
    );
    crate::watch_metrics::start(&jail, listen, &socket)
}

pub fn sshd_config(ctx: &Ctx, a: &SshdConfigArgs) -> Result<String, Error> {
    let jail = Name::parse("jail", &a.jail)?;
    let binary = match &a.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| {
            Error::runtime(format!(
                "cannot tell this binary's path ({e}); give --binary"
            ))
        })?,
    };
    let cores = match a.cores {
        Some(n) => n,
        None => std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
    };
    let args = sshd::SshdConfigArgs {
        jail: &jail,
        command_user: &a.command_user,
        tunnel_user: a.tunnel_user.as_deref(),
        operator_user: a.operator_user.as_deref(),
        binary: &binary,
        db: &ctx.db,
        host_certificate: a.host_certificate.as_deref(),
        sshd: sshd::probe_version(&a.sshd),
        cores,
    };
    ctx.admin(|c: &mut Conn| sshd::sshd_config(c, &args))
}

pub fn watch(
    ctx: &Ctx,
    jail: &str,
    interval: u64,
    sshd_pid_file: Option<&Path>,
    ticks: Option<u64>,
) -> Result<String, Error> {
    let jail = Name::parse("jail", jail)?;
    if interval == 0 || interval > 3600 {
        return Err(Error::invalid("--interval: 1-3600 seconds"));
    }
    watcher::watch(&watcher::WatchArgs {
        db: &ctx.db,
        jail: &jail,
        interval: std::time::Duration::from_secs(interval),
        sshd_pid_file,
        ticks,
    })?;
    Ok(String::new())
}

pub fn db_grants(ctx: &Ctx, role: &str, used: &RoleFor) -> Result<String, Error> {
    let used = match used {
        RoleFor::Admin => db::RoleUse::Admin,
        RoleFor::Jail => db::RoleUse::Jail,
        RoleFor::Claim => db::RoleUse::Claim,
    };
    db::grants_sql(&ctx.db, role, used)
}
