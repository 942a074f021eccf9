//! warden: the fleet side of jailbird.
//!
//! ```text
//! CLI (cli.rs) -> run() below: one function per verb
//!              -> registry.rs (pools, jails, devices, audit; one transaction each)
//!                   -> db.rs (SQLite | PostgreSQL: one SQL, one schema, versioned migrations)
//! sshd -> `warden authorized-keys` (sshd.rs: one indexed lookup, fail closed)
//! jail host -> `warden watch` (watch.rs: /proc/net/tcp -> registry; ends revoked sessions)
//! factory -> `warden device-config` (device_config.rs: jailbird.env + known_hosts)
//! operator -> `warden connect` / `ssh-config` / `ca init` (operator.rs: grant,
//!             certificate, ssh through the jail holding the device now)
//! ```
//!
//! Values are parsed once at the edge into the types of types.rs; a malformed
//! id, MAC, key or range never reaches SQL.

pub mod cli;
pub mod db;
pub mod device_config;
pub mod error;
pub mod operator;
pub mod registry;
pub mod render;
pub mod sshd;
pub mod store;
pub mod types;
pub mod watch;

use cli::{CaCmd, Cli, Cmd, JailCmd, OperatorCmd, PoolCmd};
use db::{Conn, DbUrl, Mode};
use error::Error;
use registry::{Device, NewDevice, Which};
use types::{DeviceId, HostPort, Mac, Name, PortRange, PublicKey, UserName};

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// An aligned table: a header and rows of cells. Every cell is shown on one
/// line (types::one_line): a stored newline cannot forge a row.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| types::one_line(c)).collect())
        .collect();
    let rows = &rows[..];
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn dash<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

fn device_rows(ds: &[Device]) -> String {
    let rows: Vec<Vec<String>> = ds
        .iter()
        .map(|d| {
            let state = if d.revoked {
                "revoked".to_string()
            } else if d.online.is_some() {
                "online".to_string()
            } else {
                "offline".to_string()
            };
            let since = if d.online.is_some() {
                dash(&d.online_since)
            } else {
                dash(&d.offline_since)
            };
            vec![
                d.id.to_string(),
                dash(&d.mac),
                d.pool.to_string(),
                d.port.to_string(),
                state,
                dash(&d.online),
                since,
                dash(&d.last_seen),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "MAC",
            "POOL",
            "PORT",
            "STATE",
            "JAIL",
            "SINCE",
            "LAST SEEN",
        ],
        &rows,
    )
}

fn show_device(d: &Device) -> String {
    let labels: Vec<String> = d
        .labels
        .iter()
        .map(|(k, v)| types::one_line(&format!("{k}={v}")))
        .collect();
    let mut s = String::new();
    for (k, v) in [
        ("id", d.id.to_string()),
        ("mac", dash(&d.mac)),
        ("pool", d.pool.to_string()),
        ("port", d.port.to_string()),
        ("target", d.target.to_string()),
        ("key", d.key.line()),
        ("fingerprint", d.fingerprint.clone()),
        (
            "labels",
            if labels.is_empty() {
                "-".into()
            } else {
                labels.join(",")
            },
        ),
        ("enrolled", d.enrolled.clone()),
        ("revoked", dash(&d.revoked_at)),
        ("online", dash(&d.online)),
        ("online since", dash(&d.online_since)),
        ("offline since", dash(&d.offline_since)),
        ("last seen", dash(&d.last_seen)),
    ] {
        s.push_str(&format!("{k:<14} {}\n", types::one_line(&v)));
    }
    s
}

fn name(what: &str, s: &Option<String>) -> Result<Option<Name>, Error> {
    s.as_deref().map(|s| Name::parse(what, s)).transpose()
}

/// One line per bad row; the last says that nothing was imported.
pub fn import_errors(mut errors: Vec<String>) -> Error {
    let n = errors.len();
    if let Some(last) = errors.last_mut() {
        last.push_str(&format!(" ({n} bad row(s); nothing imported)"));
    }
    Error::invalid(errors.join("\n"))
}

/// Parses one import file: every bad row is named (`FILE:LINE: ...`).
pub fn parse_import(file: &str, text: &str) -> Result<Vec<registry::ImportRow>, Error> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut ids = std::collections::BTreeMap::new();
    let mut keys = std::collections::BTreeMap::new();
    let mut macs = std::collections::BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<String> = l
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect();
        if line == 1 && f.first().is_some_and(|s| s.eq_ignore_ascii_case("id")) {
            continue; // header
        }
        if f.len() < 3 || f.len() > 4 {
            errors.push(format!(
                "{file}:{line}: want id,mac,key[,pool], got {} field(s)",
                f.len()
            ));
            continue;
        }
        let parsed = (|| -> Result<NewDevice, Error> {
            Ok(NewDevice {
                id: DeviceId::parse(&f[0])?,
                mac: if f[1].is_empty() {
                    None
                } else {
                    Some(Mac::parse(&f[1])?)
                },
                key: PublicKey::parse("key", &f[2])?,
                pool: match f.get(3) {
                    Some(p) if !p.is_empty() => Some(Name::parse("pool", p)?),
                    _ => None,
                },
                target: None,
                labels: None,
            })
        })();
        match parsed {
            Err(e) => errors.push(format!("{file}:{line}: {e}")),
            Ok(d) => {
                let mut dup =
                    |map: &mut std::collections::BTreeMap<String, usize>, k: String, what: &str| {
                        if let Some(first) = map.insert(k.clone(), line) {
                            errors.push(format!("{file}:{line}: {what} {k} also on line {first}"));
                        }
                    };
                dup(&mut ids, d.id.to_string(), "device id");
                dup(&mut keys, d.key.fingerprint.clone(), "key");
                if let Some(m) = &d.mac {
                    dup(&mut macs, m.as_str().to_string(), "MAC");
                }
                rows.push(registry::ImportRow { line, device: d });
            }
        }
    }
    if !errors.is_empty() {
        return Err(import_errors(errors));
    }
    Ok(rows)
}

/// Runs one command; returns what to print on stdout.
pub fn run(cli: &Cli) -> Result<String, Error> {
    let db = DbUrl::parse(&cli.db)?;
    if let Cmd::AuthorizedKeys {
        jail,
        user,
        fingerprint,
    } = &cli.cmd
    {
        return match sshd::authorize(&db, jail, user, fingerprint)? {
            Ok(line) => Ok(line + "\n"),
            Err(why) => {
                eprintln!("warden authorized-keys: refused: {why}");
                Ok(String::new())
            }
        };
    }
    // Validate every argument before touching the registry.
    let out = match &cli.cmd {
        Cmd::Pool(PoolCmd::Add {
            name: n,
            ports,
            require_reason,
        }) => {
            let n = Name::parse("pool", n)?;
            let range = PortRange::parse(ports)?;
            let mut c = Conn::open(&db, Mode::Admin)?;
            registry::pool_add(&mut c, &n, range, *require_reason)?;
            c.fix_ownership();
            format!(
                "pool {n} ports {range}{}\n",
                if *require_reason {
                    " (grants need a --reason)"
                } else {
                    ""
                }
            )
        }
        Cmd::Pool(PoolCmd::HostCa { name: n, key }) => {
            let n = Name::parse("pool", n)?;
            let key = PublicKey::parse("--key", key)?;
            let mut c = Conn::open(&db, Mode::Admin)?;
            registry::pool_host_ca(&mut c, &n, &key)?;
            c.fix_ownership();
            format!(
                "pool {n} host CA {}: sign its jails (warden jail sign), then write devices' config\n",
                key.fingerprint
            )
        }
        Cmd::Pool(PoolCmd::Ls) => {
            let mut c = Conn::open(&db, Mode::Admin)?;
            let ps = registry::pools(&mut c)?;
            if cli.json {
                json(&ps)
            } else {
                let rows: Vec<Vec<String>> = ps
                    .iter()
                    .map(|p| vec![p.name.to_string(), p.ports.clone(), p.devices.to_string()])
                    .collect();
                table(&["POOL", "PORTS", "DEVICES"], &rows)
            }
        }
        Cmd::Jail(JailCmd::Add {
            name: n,
            address,
            host_key,
            pool,
            user,
            operator_user,
        }) => {
            let j = registry::NewJail {
                name: Name::parse("jail", n)?,
                address: HostPort::parse("--address", address, Some(22))?,
                host_key: PublicKey::parse("--host-key", host_key)?,
                pool: name("pool", pool)?,
                user: UserName::parse("--user", user)?,
                operator_user: UserName::parse("--operator-user", operator_user)?,
            };
            let mut c = Conn::open(&db, Mode::Admin)?;
            let j = registry::jail_add(&mut c, &j)?;
            c.fix_ownership();
            format!("jail {} pool {} address {}\n", j.name, j.pool, j.address)
        }
        Cmd::Jail(JailCmd::Sign {
            name: n,
            ca,
            valid,
            out,
        }) => {
            let n = Name::parse("jail", n)?;
            operator::jail_sign(&db, &n, ca, valid, out.as_deref())?
        }
        Cmd::Jail(JailCmd::Ls) => {
            let mut c = Conn::open(&db, Mode::Admin)?;
            let js = registry::jails(&mut c)?;
            if cli.json {
                json(&js)
            } else {
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
                table(&["JAIL", "POOL", "ADDRESS", "USER", "HOST KEY"], &rows)
            }
        }
        Cmd::Enroll(a) => {
            let d = NewDevice {
                id: DeviceId::parse(&a.id)?,
                key: PublicKey::parse("--key", &a.key)?,
                mac: a.mac.as_deref().map(Mac::parse).transpose()?,
                pool: name("pool", &a.pool)?,
                target: a
                    .target
                    .as_deref()
                    .map(|t| HostPort::parse("--target", t, None))
                    .transpose()?,
                labels: Some(registry::parse_labels(&a.labels)?),
            };
            let mut c = Conn::open(&db, Mode::Admin)?;
            let (dev, outcome) = registry::enroll(&mut c, &d, a.replace)?;
            c.fix_ownership();
            if cli.json {
                json(&serde_json::json!({"outcome": outcome, "device": dev}))
            } else {
                format!(
                    "{} {} pool={} port={}\n",
                    dev.id,
                    match outcome {
                        registry::Outcome::Enrolled => "enrolled",
                        registry::Outcome::Unchanged => "already-enrolled",
                        registry::Outcome::Replaced => "replaced",
                    },
                    dev.pool,
                    dev.port
                )
            }
        }
        Cmd::Import { file } => {
            let shown = file.display().to_string();
            let meta =
                std::fs::metadata(file).map_err(|e| Error::invalid(format!("{shown}: {e}")))?;
            if meta.len() > MAX_IMPORT_BYTES {
                return Err(Error::invalid(format!(
                    "{shown}: larger than {MAX_IMPORT_BYTES} bytes"
                )));
            }
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::invalid(format!("{shown}: {e}")))?;
            let rows = parse_import(&shown, &text)?;
            let mut c = Conn::open(&db, Mode::Admin)?;
            let (new, same) = registry::import(&mut c, &shown, &rows)?;
            c.fix_ownership();
            format!("{shown}: {new} enrolled, {same} already enrolled\n")
        }
        Cmd::DeviceConfig {
            id,
            out,
            known_hosts_path,
            operator_ca,
        } => {
            let id = DeviceId::parse(id)?;
            if !out.is_dir() {
                return Err(Error::invalid(format!(
                    "--out {}: not a directory",
                    out.display()
                )));
            }
            let mut c = Conn::open(&db, Mode::Admin)?;
            let d = registry::show(&mut c, &Which::Id(id))?;
            let jails = registry::pool_jails(&mut c, &d.pool)?;
            let host_ca = registry::pool_named(&mut c, &d.pool)?.and_then(|p| p.host_ca);
            let (env, kh) = device_config::render(&d, &jails, host_ca.as_ref(), known_hosts_path)?;
            device_config::write_file(out, "jailbird.env", &env)?;
            device_config::write_file(out, "known_hosts", &kh)?;
            if let Some(ca) = operator_ca {
                let dir = std::path::Path::new(known_hosts_path)
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "/etc/jailbird".into());
                let (ca_pub, principals, drop_in) = operator::device_trust(ca, &d, &dir)?;
                device_config::write_file(out, "warden_operator_ca.pub", &ca_pub)?;
                device_config::write_file(out, "warden_principals", &principals)?;
                device_config::write_file(out, "warden-operators.conf", &drop_in)?;
            }
            format!(
                "wrote {} and {} for device {} (port {}, {} jail(s))\n",
                out.join("jailbird.env").display(),
                out.join("known_hosts").display(),
                d.id,
                d.port,
                jails.len()
            )
        }
        Cmd::Ls(a) => {
            let pool = name("pool", &a.pool)?;
            let want = registry::parse_labels(&a.labels)?;
            let mut c = Conn::open(&db, Mode::Admin)?;
            if let Some(p) = &pool
                && registry::pool_named(&mut c, p)?.is_none()
            {
                return Err(Error::invalid(format!("unknown pool {p}")));
            }
            let ds: Vec<Device> = registry::devices(&mut c, pool.as_ref())?
                .into_iter()
                .filter(|d| !a.online || d.online.is_some())
                .filter(|d| !a.offline || (d.online.is_none() && !d.revoked))
                .filter(|d| want.iter().all(|(k, v)| d.labels.get(k) == Some(v)))
                .collect();
            if cli.json {
                json(&ds)
            } else {
                device_rows(&ds)
            }
        }
        Cmd::Show { id, mac } => {
            let which = match (id, mac) {
                (Some(id), _) => Which::Id(DeviceId::parse(id)?),
                (None, Some(m)) => Which::Mac(Mac::parse(m)?),
                (None, None) => return Err(Error::invalid("show: give an ID or --mac MAC")),
            };
            let mut c = Conn::open(&db, Mode::Admin)?;
            let d = registry::show(&mut c, &which)?;
            if cli.json { json(&d) } else { show_device(&d) }
        }
        Cmd::Revoke { id, reason } => {
            let id = DeviceId::parse(id)?;
            check_reason(reason.as_deref())?;
            let mut c = Conn::open(&db, Mode::Admin)?;
            let d = registry::revoke(&mut c, &id, reason.as_deref())?;
            c.fix_ownership();
            format!(
                "{} revoked: its key is refused from now on (port {} of pool {} stays reserved)\n",
                d.id, d.port, d.pool
            )
        }
        Cmd::Operator(OperatorCmd::Add { name: n, key }) => {
            let n = Name::parse("operator", n)?;
            let key = PublicKey::parse("--key", key)?;
            let mut c = Conn::open(&db, Mode::Admin)?;
            registry::operator_add(&mut c, &n, &key)?;
            c.fix_ownership();
            format!("operator {n} key {}\n", key.fingerprint)
        }
        Cmd::Operator(OperatorCmd::Disable { name: n }) => {
            let n = Name::parse("operator", n)?;
            let mut c = Conn::open(&db, Mode::Admin)?;
            registry::operator_disable(&mut c, &n)?;
            c.fix_ownership();
            format!("operator {n} disabled\n")
        }
        Cmd::Operator(OperatorCmd::Ls) => {
            let mut c = Conn::open(&db, Mode::Admin)?;
            let ops = registry::operators(&mut c)?;
            if cli.json {
                json(&ops)
            } else {
                let rows: Vec<Vec<String>> = ops
                    .iter()
                    .map(|o| {
                        vec![
                            o.name.to_string(),
                            if o.disabled { "disabled" } else { "enabled" }.into(),
                            o.keys.join(","),
                        ]
                    })
                    .collect();
                table(&["OPERATOR", "STATE", "KEYS"], &rows)
            }
        }
        Cmd::Grant {
            id,
            mac,
            operator,
            duration,
            reason,
        } => {
            let which = match (id, mac) {
                (Some(id), _) => Which::Id(DeviceId::parse(id)?),
                (None, Some(m)) => Which::Mac(Mac::parse(m)?),
                (None, None) => return Err(Error::invalid("grant: give an ID or --mac MAC")),
            };
            let operator = Name::parse("operator", operator)?;
            let secs = types::parse_duration(duration)?.as_secs() as i64;
            check_reason(reason.as_deref())?;
            let mut c = Conn::open(&db, Mode::Admin)?;
            let g = registry::grant(&mut c, &which, &operator, secs, reason.as_deref())?;
            c.fix_ownership();
            format!(
                "operator {operator} may reach {} (port {} of pool {}) until {} (grant {})\n",
                g.device.id,
                g.device.port,
                g.device.pool,
                registry::rfc3339(g.expires),
                g.id
            )
        }
        Cmd::Audit {
            device,
            operator,
            since,
        } => {
            let device = device.as_deref().map(DeviceId::parse).transpose()?;
            let operator = name("operator", operator)?;
            let since = match since {
                None => None,
                Some(s) => Some(match types::parse_duration(s) {
                    Ok(d) => registry::now() - d.as_secs() as i64,
                    Err(_) => registry::parse_rfc3339(s).ok_or_else(|| {
                        Error::invalid(format!(
                            "--since {}: want YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or a duration such as 1d",
                            types::quote(s)
                        ))
                    })?,
                }),
            };
            let mut c = Conn::open(&db, Mode::Admin)?;
            let es = registry::audit_entries(&mut c, device.as_ref(), operator.as_ref(), since)?;
            if cli.json {
                json(&es)
            } else {
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
                table(
                    &[
                        "AT", "ACTION", "DEVICE", "OPERATOR", "BY", "REASON", "DETAIL",
                    ],
                    &rows,
                )
            }
        }
        Cmd::SshdConfig(a) => {
            let jail = Name::parse("jail", &a.jail)?;
            let binary = match &a.binary {
                Some(b) => b.clone(),
                None => std::env::current_exe().map_err(|e| {
                    Error::runtime(format!(
                        "cannot tell this binary's path ({e}); give --binary"
                    ))
                })?,
            };
            let mut c = Conn::open(&db, Mode::Admin)?;
            c.fix_ownership();
            sshd::sshd_config(
                &mut c,
                &sshd::SshdConfigArgs {
                    jail: &jail,
                    command_user: &a.command_user,
                    tunnel_user: a.tunnel_user.as_deref(),
                    operator_user: a.operator_user.as_deref(),
                    binary: &binary,
                    db: &db,
                    host_certificate: a.host_certificate.as_deref(),
                    sshd: sshd::probe_version(&a.sshd),
                    cores: match a.cores {
                        Some(n) => n,
                        None => std::thread::available_parallelism()
                            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
                    },
                },
            )?
        }
        Cmd::Watch {
            jail,
            interval,
            sshd_pid_file,
            ticks,
        } => {
            let jail = Name::parse("jail", jail)?;
            if *interval == 0 || *interval > 3600 {
                return Err(Error::invalid("--interval: 1-3600 seconds"));
            }
            watch::watch(&watch::WatchArgs {
                db: &db,
                jail: &jail,
                interval: std::time::Duration::from_secs(*interval),
                sshd_pid_file: sshd_pid_file.as_deref(),
                ticks: *ticks,
            })?;
            String::new()
        }
        Cmd::Connect(a) => operator::connect(&db, a)?,
        Cmd::SshConfig(a) => operator::ssh_config(&db, a)?,
        Cmd::Ca(CaCmd::Init { ca }) => operator::ca_init(ca)?,
        Cmd::DbGrants { role, used } => db::grants_sql(
            &db,
            role,
            match used {
                cli::RoleFor::Admin => db::RoleUse::Admin,
                cli::RoleFor::Jail => db::RoleUse::Jail,
            },
        )?,
        Cmd::AuthorizedKeys { .. } => unreachable!("answered above"),
    };
    Ok(out)
}

/// Largest import file accepted (10,000 rows are ~1.2 MB).
pub const MAX_IMPORT_BYTES: u64 = 64 << 20;

/// A `--reason`: up to 512 printable characters.
pub fn check_reason(reason: Option<&str>) -> Result<(), Error> {
    match reason {
        Some(r) if r.chars().any(char::is_control) || r.len() > 512 || r.trim().is_empty() => {
            Err(Error::invalid("--reason: 1 to 512 printable characters"))
        }
        _ => Ok(()),
    }
}
