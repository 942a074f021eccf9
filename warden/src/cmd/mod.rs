//! The command layer: one module per command group, each a function from
//! parsed arguments to what to print, callable without a terminal (the CLI
//! today; an HTTP API or a web view can call the same functions).
//!
//! ```text
//! cli.rs (clap) -> cmd::run -> cmd/<group>.rs: parse -> store -> render
//! ```

pub mod audit;
pub mod claim;
pub mod device;
pub mod hook;
pub mod jail;
pub mod operator;
pub mod pool;
pub mod token;
pub mod view;

use crate::cli::{Cli, Cmd};
use crate::error::Error;
use crate::store::conn::{Conn, DbUrl, Mode};
use crate::types::Name;

/// What every command gets: the registry and the output form.
pub struct Ctx {
    pub db: DbUrl,
    pub json: bool,
    /// Who acts and from where, for the audit trail, when not this
    /// process's user (the HTTP API: a token's name and the client's address).
    pub actor: Option<(String, String)>,
}

impl Ctx {
    /// Opens the registry for an administrative command, runs `body`, and
    /// leaves the SQLite files usable by the command user (the one place
    /// that opens and fixes ownership).
    pub fn admin<T>(&self, body: impl FnOnce(&mut Conn) -> Result<T, Error>) -> Result<T, Error> {
        let mut c = Conn::open(&self.db, Mode::Admin)?;
        let out = match &self.actor {
            Some((who, from)) => crate::store::acting_as(who, from, || body(&mut c)),
            None => body(&mut c),
        };
        c.fix_ownership();
        out
    }
}

/// Runs one command; returns what to print on stdout.
pub fn run(cli: &Cli) -> Result<String, Error> {
    let ctx = Ctx {
        db: DbUrl::parse(&cli.db)?,
        json: cli.json,
        actor: None,
    };
    match &cli.cmd {
        Cmd::Pool(c) => pool::run(&ctx, c),
        Cmd::Jail(c) => jail::run(&ctx, c),
        Cmd::AuthorizedKeys {
            jail,
            user,
            fingerprint,
            key_type,
            key_base64,
            metrics_socket,
        } => {
            let offered = key_type.as_deref().zip(key_base64.as_deref());
            jail::authorized_keys(
                &ctx,
                jail,
                user,
                fingerprint,
                offered,
                metrics_socket.as_deref(),
            )
        }
        Cmd::SshdConfig(a) => jail::sshd_config(&ctx, a),
        Cmd::Watch {
            jail,
            interval,
            sshd_pid_file,
            ticks,
            metrics_listen,
            metrics_socket,
        } => {
            if let Some(listen) = metrics_listen {
                jail::watch_metrics(jail, listen, metrics_socket.as_deref())?;
            }
            jail::watch(&ctx, jail, *interval, sshd_pid_file.as_deref(), *ticks)
        }
        Cmd::DbGrants { role, used } => jail::db_grants(&ctx, role, used),
        Cmd::Enroll(a) => device::enroll(&ctx, a),
        Cmd::Import { file } => device::import(&ctx, file),
        Cmd::DeviceConfig {
            id,
            out,
            known_hosts_path,
            operator_ca,
        } => device::device_config(&ctx, id, out, known_hosts_path, operator_ca.as_deref()),
        Cmd::Ls(a) => device::ls(&ctx, a),
        Cmd::Show { id, mac } => device::show(&ctx, id, mac),
        Cmd::Revoke { id, reason } => device::revoke(&ctx, id, reason.as_deref()),
        Cmd::Operator(c) => operator::run(&ctx, c),
        Cmd::Grant {
            id,
            mac,
            operator,
            duration,
            reason,
        } => operator::grant(&ctx, id, mac, operator, duration, reason.as_deref()),
        Cmd::Connect(a) => crate::connect::connect(&ctx.db, a),
        Cmd::SshConfig(a) => crate::connect::ssh_config(&ctx.db, a),
        Cmd::Ca(crate::cli::CaCmd::Init { ca }) => crate::ca::ca_init(ca),
        Cmd::Audit {
            device,
            operator,
            since,
        } => audit::run(&ctx, device, operator, since),
        Cmd::Token(c) => token::run(&ctx, c),
        Cmd::Claim(c) => claim::run(&ctx, c),
        Cmd::ClaimServe { jail } => claim::serve(&ctx, jail),
        Cmd::Hook(c) => hook::run(&ctx, c),
        Cmd::Serve(a) => crate::serve::serve(ctx, a),
    }
}

/// An optional name argument.
pub fn name(what: &str, s: &Option<String>) -> Result<Option<Name>, Error> {
    s.as_deref().map(|s| Name::parse(what, s)).transpose()
}
