//! The two registry backends behind one small interface: SQLite (rusqlite,
//! the embedded default) and PostgreSQL (the `postgres` crate), speaking the
//! same SQL with `$1`-style parameters, the same schema and the same versioned
//! migrations. Everything above this module is written once.
//!
//! Why not an ORM or sqlx: every command is short-lived and synchronous, and
//! the hot path (`authorized-keys`, once per SSH login) must open one
//! connection, run one indexed query and exit: no async runtime, no pool, no
//! migrations. Both crates are the standard drivers for their database.

use crate::error::Error;
use crate::types::quote;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The schema this build reads and writes: the last migration's.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Versioned migrations, shared by both backends. `{serial}` is the one
/// dialect difference: an auto-numbered primary key.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE pools (
        name TEXT PRIMARY KEY,
        port_lo BIGINT NOT NULL,
        port_hi BIGINT NOT NULL,
        created BIGINT NOT NULL
    );
    CREATE TABLE jails (
        name TEXT PRIMARY KEY,
        pool TEXT NOT NULL REFERENCES pools(name),
        address TEXT NOT NULL,
        host_key TEXT NOT NULL,
        tunnel_user TEXT NOT NULL,
        created BIGINT NOT NULL
    );
    CREATE INDEX jails_pool ON jails(pool, created, name);
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        mac TEXT UNIQUE,
        key_type TEXT NOT NULL,
        key_base64 TEXT NOT NULL,
        fingerprint TEXT NOT NULL UNIQUE,
        pool TEXT NOT NULL REFERENCES pools(name),
        port BIGINT NOT NULL,
        target TEXT NOT NULL,
        labels TEXT NOT NULL,
        enrolled BIGINT NOT NULL,
        revoked BIGINT,
        last_seen BIGINT,
        online_jail TEXT,
        online_since BIGINT,
        offline_since BIGINT,
        UNIQUE (pool, port)
    );
    CREATE TABLE audit (
        seq {serial},
        at BIGINT NOT NULL,
        action TEXT NOT NULL,
        device TEXT,
        operator TEXT,
        actor TEXT NOT NULL,
        origin TEXT NOT NULL,
        reason TEXT,
        detail TEXT
    );
    CREATE INDEX audit_device ON audit(device, at);
    CREATE INDEX audit_at ON audit(at);",
    ),
    (
        2,
        "ALTER TABLE jails ADD COLUMN operator_user TEXT NOT NULL DEFAULT 'operator';
    CREATE TABLE operators (
        name TEXT PRIMARY KEY,
        disabled BIGINT,
        created BIGINT NOT NULL
    );
    CREATE TABLE operator_keys (
        fingerprint TEXT PRIMARY KEY,
        operator TEXT NOT NULL REFERENCES operators(name),
        key_type TEXT NOT NULL,
        key_base64 TEXT NOT NULL,
        added BIGINT NOT NULL
    );
    CREATE INDEX operator_keys_operator ON operator_keys(operator);
    CREATE TABLE grants (
        id {serial},
        operator TEXT NOT NULL REFERENCES operators(name),
        device TEXT NOT NULL,
        granted BIGINT NOT NULL,
        expires BIGINT NOT NULL,
        reason TEXT
    );
    CREATE INDEX grants_operator ON grants(operator, expires);
    CREATE INDEX grants_device ON grants(device);
    CREATE TABLE revoked_keys (
        fingerprint TEXT PRIMARY KEY,
        device TEXT NOT NULL,
        at BIGINT NOT NULL
    );",
    ),
    (
        3,
        "ALTER TABLE pools ADD COLUMN require_reason BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE pools ADD COLUMN host_ca TEXT;
    {append_only_audit}",
    ),
    (
        4,
        "CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL,
        operator TEXT REFERENCES operators(name),
        created BIGINT NOT NULL,
        expires BIGINT,
        revoked BIGINT
    );",
    ),
    (
        5,
        "ALTER TABLE jails ADD COLUMN claim_user TEXT NOT NULL DEFAULT 'claim';
    CREATE TABLE claims (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        pool TEXT NOT NULL REFERENCES pools(name),
        uses_total BIGINT NOT NULL,
        uses_left BIGINT NOT NULL,
        expires BIGINT NOT NULL,
        labels TEXT NOT NULL,
        mac_prefix TEXT,
        target TEXT,
        created BIGINT NOT NULL,
        revoked BIGINT,
        CHECK (uses_left >= 0 AND uses_left <= uses_total)
    );
    CREATE TABLE claim_uses (
        claim TEXT NOT NULL REFERENCES claims(id),
        fingerprint TEXT NOT NULL,
        device TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (claim, fingerprint)
    );
    CREATE TABLE claim_refusals (
        source TEXT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE INDEX claim_refusals_source ON claim_refusals(source, at);
    CREATE TABLE device_host_keys (
        device TEXT NOT NULL,
        key_type TEXT NOT NULL,
        key_base64 TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        PRIMARY KEY (device, fingerprint)
    );",
    ),
    (
        6,
        "CREATE INDEX audit_action ON audit(action);
    CREATE TABLE hooks (
        id {serial},
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        secret TEXT NOT NULL,
        created BIGINT NOT NULL
    );
    CREATE TABLE outbox (
        seq {serial},
        hook BIGINT NOT NULL,
        event TEXT NOT NULL,
        device TEXT NOT NULL,
        at BIGINT NOT NULL,
        body TEXT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        next_at BIGINT NOT NULL,
        delivered BIGINT,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox(delivered, next_at);
    CREATE INDEX outbox_order ON outbox(hook, device, seq);",
    ),
];

/// The audit table refuses UPDATE and DELETE (and, on PostgreSQL, TRUNCATE)
/// from every role, the owner included: no code path changes an entry, and a
/// mistaken statement fails instead of rewriting history. (A superuser can
/// still drop the trigger: on PostgreSQL, `warden db-grants` prints the
/// privileges that keep warden's own role at INSERT/SELECT on the table.)
const APPEND_ONLY_AUDIT_SQLITE: &str = "
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
        WHEN NEW.seq IN (SELECT seq FROM audit)
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;";
const APPEND_ONLY_AUDIT_PG: &str = "
    CREATE FUNCTION warden_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'audit is append-only'; END $$;
    CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION warden_audit_append_only();";

/// How long a skippable write on PostgreSQL waits for a row lock.
pub const SKIPPABLE_LOCK_WAIT_MS: u64 = 100;

/// How long an administrative command waits for another writer (40 `enroll`
/// processes at once queue behind each other within this).
pub const ADMIN_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `authorized-keys` waits for the database: sshd's login is waiting.
pub const HOT_PATH_TIMEOUT: Duration = Duration::from_secs(3);
/// How many times a transaction that lost a race (unique violation,
/// serialization failure, busy) is run again before giving up.
pub const MAX_TX_ATTEMPTS: u32 = 64;
/// Attempts for the one write on the hot path (an operator login's audit entry).
pub const HOT_PATH_TX_ATTEMPTS: u32 = 2;

/// A column value: the registry uses only integers and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl Value {
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn opt_text(v: Option<&str>) -> Value {
        v.map_or(Value::Null, |s| Value::Text(s.to_string()))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<u16> for Value {
    fn from(i: u16) -> Self {
        Value::Int(i64::from(i))
    }
}

/// One result row: its values and the names of its columns, so that rows
/// are decoded by column name (store/row.rs), never by position.
#[derive(Clone, Debug)]
pub struct Row {
    cols: std::sync::Arc<[String]>,
    vals: Vec<Value>,
}

impl Row {
    /// The value of column `col`, or `None` if the query has no such column.
    pub fn get(&self, col: &str) -> Option<&Value> {
        self.cols
            .iter()
            .position(|c| c == col)
            .and_then(|i| self.vals.get(i))
    }
}

/// Where the registry lives: `sqlite:///path/registry.db` or
/// `postgres://USER@HOST[:PORT]/DB` (the password never in the URL).
#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

/// What a PostgreSQL role is for (`warden db-grants --for`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleUse {
    /// The admin host: every command (enrol, revoke, grant, pools, jails).
    Admin,
    /// A jail host: `authorized-keys`, `watch` and `sshd-config`, nothing else.
    Jail,
    /// A jail's claim account: `claim-serve`, nothing else.
    Claim,
}

/// `warden db-grants --role R --for admin|jail`: the SQL that gives the role
/// what that use needs and no more. Each starts by revoking everything on the
/// registry's tables and sequences (column privileges go with them), so it
/// also moves a role from one use to the other. On the audit table neither
/// gets more than SELECT and INSERT, so not even a bug or a stolen registry
/// password can rewrite an entry. (Schema changes stay with the owner: run
/// one admin command as the owner after each upgrade, then warden runs as
/// `role`.)
///
/// The jail role reads what `authorized-keys` (sshd.rs `authorize`: the jail,
/// the device by fingerprint, an operator's key, live grants, the last few
/// seconds of operator logins), `watch` (watch.rs: the jail, its pool, the
/// pool's devices, live grants, the device at a port) and `sshd-config` read;
/// it writes only the presence columns of `devices` and new audit rows. It
/// cannot enrol, revoke or un-revoke, grant, or change an operator, a jail or
/// a pool, and it does not see the revoked-keys list or the API tokens.
pub fn grants_sql(db: &DbUrl, role: &str, used: RoleUse) -> Result<String, Error> {
    if matches!(db, DbUrl::Sqlite(_)) {
        return Err(Error::invalid(
            "db-grants: SQLite has no roles; the file's owner and mode are its access control",
        ));
    }
    let ok = !role.is_empty()
        && role.len() <= 63
        && role.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(Error::invalid(format!(
            "--role {}: want a lower-case PostgreSQL identifier",
            crate::types::quote(role)
        )));
    }
    let revoke = format!(
        "-- Run as the registry's owner once the schema exists, and again after an upgrade.\n\
         -- (PostgreSQL 15 and later give PUBLIC no CREATE on schema public; on an older\n\
         -- server also run: REVOKE CREATE ON SCHEMA public FROM PUBLIC;)\n\
         REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role};\n\
         REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role};\n"
    );
    Ok(match used {
        RoleUse::Admin => format!(
            "-- PostgreSQL privileges for role {role}, which warden connects as on the admin\n\
             -- host (enrol, revoke, grant, pools, jails, operators). Give it to no jail host.\n\
             {revoke}\
             GRANT SELECT ON warden_schema TO {role};\n\
             GRANT SELECT, INSERT, UPDATE, DELETE ON pools, jails, devices, operators, operator_keys, grants, revoked_keys, tokens, claims, claim_uses, claim_refusals, device_host_keys, hooks, outbox TO {role};\n\
             -- The audit trail is append-only for {role}: no UPDATE, DELETE or TRUNCATE.\n\
             GRANT SELECT, INSERT ON audit TO {role};\n\
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};\n"
        ),
        RoleUse::Jail => format!(
            "-- PostgreSQL privileges for role {role}, which a jail host's warden connects as:\n\
             -- authorized-keys (sshd's AuthorizedKeysCommand), watch and sshd-config, no more.\n\
             {revoke}\
             GRANT SELECT ON warden_schema, pools, jails, devices, operators, operator_keys, grants TO {role};\n\
             -- Presence only: which jail holds a device, since when, when last seen.\n\
             GRANT UPDATE (last_seen, online_jail, online_since, offline_since) ON devices TO {role};\n\
             -- Operator logins and ended sessions are appended; of the trail, only what\n\
             -- de-duplicates a login is read back.\n\
             GRANT SELECT (at, action, operator, detail), INSERT ON audit TO {role};\n\
             GRANT USAGE ON SEQUENCE audit_seq_seq TO {role};\n\
             -- Presence changes queue webhook events: which hooks want which events\n\
             -- (never their URLs or secrets), and new outbox rows.\n\
             GRANT SELECT (id, events) ON hooks TO {role};\n\
             GRANT INSERT ON outbox TO {role};\n\
             GRANT USAGE ON SEQUENCE outbox_seq_seq TO {role};\n"
        ),
        RoleUse::Claim => format!(
            "-- PostgreSQL privileges for role {role}, which a jail's claim account connects as:\n\
             -- claim-serve (sshd's forced command for devices holding a claim token): check\n\
             -- the token, spend one use, add the device with its host keys; nothing else.\n\
             -- It can add devices (that is its job), not revoke, change or delete one.\n\
             {revoke}\
             GRANT SELECT ON warden_schema, pools, jails, devices, revoked_keys TO {role};\n\
             -- A device key must not be an operator's: which operator holds a fingerprint.\n\
             GRANT SELECT (fingerprint, operator) ON operator_keys TO {role};\n\
             -- A port is chosen under the pool's row lock (SELECT ... FOR UPDATE needs an\n\
             -- UPDATE privilege: on the one column nothing reads back).\n\
             GRANT UPDATE (created) ON pools TO {role};\n\
             GRANT INSERT ON devices TO {role};\n\
             GRANT SELECT, INSERT, DELETE ON device_host_keys TO {role};\n\
             GRANT SELECT, UPDATE (uses_left) ON claims TO {role};\n\
             GRANT SELECT, INSERT ON claim_uses TO {role};\n\
             GRANT SELECT, INSERT, DELETE ON claim_refusals TO {role};\n\
             GRANT INSERT ON audit TO {role};\n\
             GRANT USAGE ON SEQUENCE audit_seq_seq TO {role};\n\
             GRANT SELECT (id, events) ON hooks TO {role};\n\
             GRANT INSERT ON outbox TO {role};\n\
             GRANT USAGE ON SEQUENCE outbox_seq_seq TO {role};\n"
        ),
    })
}

/// The default registry (contract).
pub const DEFAULT_DB: &str = "sqlite:///var/lib/warden/registry.db";

impl DbUrl {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::invalid(format!("--db {}: {why}", quote(s)));
        if s.contains(['\n', '\r', '\0', ' ']) {
            return Err(bad("holds a space or a line break"));
        }
        if let Some(rest) = s.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(bad("no path; want sqlite:///var/lib/warden/registry.db"));
            }
            return Ok(DbUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let rest = s.split_once("://").map_or("", |x| x.1);
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            let has_password = authority
                .rsplit_once('@')
                .is_some_and(|(userinfo, _)| userinfo.contains(':'))
                || s.contains("password=");
            if has_password {
                // The URL itself is not repeated: it holds the secret.
                return Err(Error::invalid(
                    "--db: the PostgreSQL URL holds a password; give it in PGPASSWORD or ~/.pgpass, never on the command line",
                ));
            }
            // Checked here, before anything connects: a host that is not
            // this machine gets TLS or an explicit sslmode=disable.
            pg_target(s)?;
            return Ok(DbUrl::Postgres(s.to_string()));
        }
        Err(bad("want sqlite:///PATH or postgres://USER@HOST[:PORT]/DB"))
    }
}

impl std::fmt::Display for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            DbUrl::Postgres(u) => f.write_str(u),
        }
    }
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// What a connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Administrative commands: create the registry if absent, run migrations,
    /// wait for other writers.
    Admin,
    /// `authorized-keys`: the registry must exist at the current schema;
    /// nothing is created or migrated; short timeouts.
    HotPath,
}

/// A failed statement: lost a race (run the transaction again) or failed.
#[derive(Debug)]
pub enum DbError {
    Conflict(String),
    Failed(String),
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        match e {
            DbError::Conflict(m) => Error::runtime(format!("registry busy: {}", one_line(&m))),
            DbError::Failed(m) => Error::runtime(format!("registry: {}", one_line(&m))),
        }
    }
}

/// A driver's message on one line.
pub fn one_line(m: &str) -> String {
    m.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One connection to the registry.
pub enum Conn {
    Sqlite {
        conn: rusqlite::Connection,
        path: PathBuf,
    },
    Postgres(Box<postgres::Client>),
}

/// The outcome of a transaction body: `Retry` runs it again from the start.
pub enum TxError {
    Retry(String),
    Fail(Error),
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Fail(e)
    }
}

impl From<DbError> for TxError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict(m) => TxError::Retry(m),
            e => TxError::Fail(e.into()),
        }
    }
}

fn sqlite_err(e: rusqlite::Error) -> DbError {
    use rusqlite::ErrorCode::*;
    match &e {
        // Lost races only: a unique or primary key taken meanwhile, or the
        // database busy. Other constraint failures are bugs, not retried.
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, DatabaseBusy | DatabaseLocked)
                || matches!(
                    f.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
        {
            DbError::Conflict(e.to_string())
        }
        _ => DbError::Failed(e.to_string()),
    }
}

fn pg_err(e: postgres::Error) -> DbError {
    use postgres::error::SqlState;
    match e.code() {
        Some(c)
            if *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            DbError::Conflict(e.to_string())
        }
        _ => {
            // The driver's Display for a server error is "db error"; the
            // server's own message is in the source.
            let m = match e.as_db_error() {
                Some(d) => d.message().to_string(),
                None => match std::error::Error::source(&e) {
                    Some(s) => format!("{e}: {s}"),
                    None => e.to_string(),
                },
            };
            DbError::Failed(m)
        }
    }
}

/// `$1` -> `?1`: SQLite's numbered parameters, so one SQL text serves both.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            Value::Int(i) => i.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
        }
    }
    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
    postgres::types::to_sql_checked!();
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn pg_value(row: &postgres::Row, i: usize) -> Result<Value, DbError> {
    use postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    let conv = |e: postgres::Error| DbError::Failed(e.to_string());
    Ok(if ty == Type::VOID {
        Value::Null
    } else if ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)
            .map_err(conv)?
            .map_or(Value::Null, Value::Int)
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)
            .map_err(conv)?
            .map_or(Value::Null, |v| Value::Int(v.into()))
    } else if ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(i)
            .map_err(conv)?
            .map_or(Value::Null, |v| Value::Int(v.into()))
    } else {
        row.try_get::<_, Option<String>>(i)
            .map_err(conv)?
            .map_or(Value::Null, Value::Text)
    })
}

/// The command user's home directory: `HOME`, or (sshd runs
/// AuthorizedKeysCommand with a bare environment) the account's from passwd.
fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .or_else(|| account(&euid().to_string()).map(|a| PathBuf::from(a.home)))
}

/// How a PostgreSQL connection is protected (libpq's `sslmode`, of which
/// warden takes two values):
/// - `verify-full`: TLS, the server's certificate checked against the CA
///   certificates in `sslrootcert=FILE` (an absolute path; default
///   `~/.postgresql/root.crt`, as libpq) and its name against the URL's host;
/// - `disable`: no TLS, said explicitly.
///
/// Without `sslmode`, a loopback or unix-socket host gets no TLS and any other
/// host is refused before anything connects. `require`, `verify-ca`, `prefer`
/// and `allow` are refused too: each lets a server that is not the registry
/// (any certificate, or any name under the CA) read the logins and answer them.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PgTls {
    Off,
    VerifyFull { root: PathBuf },
}

/// A `postgres://` URL read: the driver's settings (without `sslmode` and
/// `sslrootcert`, which the driver does not take in libpq's sense), the TLS
/// to use, and the host(s) and port for messages (never the user or a secret).
struct PgTarget {
    cfg: postgres::Config,
    tls: PgTls,
    host: String,
}

/// `%XX` decoded, as libpq decodes URL parameters.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Where the connection goes: hosts (or socket directories) and the port.
fn pg_host(cfg: &postgres::Config) -> String {
    use postgres::config::Host;
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let addrs: Vec<String> = cfg
        .get_hostaddrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    match (hosts.is_empty(), addrs.is_empty()) {
        (_, true) => format!("{}:{port}", hosts.join(",")),
        (true, false) => format!("{}:{port}", addrs.join(",")),
        (false, false) => format!("{}:{port} (hostaddr {})", hosts.join(","), addrs.join(",")),
    }
}

/// Every address the connection may go to is this machine: a unix socket,
/// `localhost`, or a loopback address (`hostaddr`, where given, is where it
/// goes).
fn pg_loopback(cfg: &postgres::Config) -> bool {
    use postgres::config::Host;
    let (hosts, addrs) = (cfg.get_hosts(), cfg.get_hostaddrs());
    (0..hosts.len().max(addrs.len())).all(|i| match (addrs.get(i), hosts.get(i)) {
        (Some(a), _) => a.to_canonical().is_loopback(),
        (None, Some(Host::Unix(_))) | (None, None) => true,
        (None, Some(Host::Tcp(h))) => {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h.eq_ignore_ascii_case("localhost")
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.to_canonical().is_loopback())
        }
    })
}

/// Reads a `postgres://` URL: libpq's TLS parameters out, the rest to the
/// driver, and the TLS rule (see [`PgTls`]) applied. Nothing connects.
/// `sslmode=verify-full`: the CA file (`sslrootcert`, else libpq's
/// `~/.postgresql/root.crt`), absolute, and a TCP host to verify.
fn verify_full(cfg: &postgres::Config, host: &str, root: Option<String>) -> Result<PgTls, Error> {
    let root = match root {
        Some(r) => PathBuf::from(r),
        None => home_dir()
            .map(|h| h.join(".postgresql/root.crt"))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "--db {host}: sslmode=verify-full needs sslrootcert=FILE (no home directory for ~/.postgresql/root.crt)"
                ))
            })?,
    };
    if !root.is_absolute() {
        return Err(Error::invalid(format!(
            "--db {host}: sslrootcert={}: give an absolute path (sshd runs warden from /)",
            root.display()
        )));
    }
    if cfg
        .get_hosts()
        .iter()
        .any(|h| matches!(h, postgres::config::Host::Unix(_)))
    {
        return Err(Error::invalid(format!(
            "--db {host}: sslmode=verify-full needs a TCP host name, not a socket directory"
        )));
    }
    Ok(PgTls::VerifyFull { root })
}

fn pg_target(url: &str) -> Result<PgTarget, Error> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            "sslmode" => &mut mode,
            "sslrootcert" => &mut root,
            _ => {
                kept.push(pair);
                continue;
            }
        };
        let v = percent_decode(v)
            .ok_or_else(|| Error::invalid(format!("--db: {k}: bad %-encoding")))?;
        if slot.replace(v).is_some() {
            return Err(Error::invalid(format!("--db: {k} given twice")));
        }
    }
    let driver_url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let cfg = driver_url.parse::<postgres::Config>().map_err(|e| {
        Error::invalid(format!(
            "--db {}: not a PostgreSQL URL ({})",
            quote(url),
            one_line(&e.to_string())
        ))
    })?;
    let host = pg_host(&cfg);
    let tls = match mode.as_deref() {
        Some("disable") => PgTls::Off,
        Some("verify-full") => verify_full(&cfg, &host, root.take())?,
        Some(m @ ("require" | "verify-ca" | "prefer" | "allow")) => {
            return Err(Error::invalid(format!(
                "--db {host}: sslmode={m} does not check that the server is the registry: use sslmode=verify-full with sslrootcert=FILE (or sslmode=disable)"
            )));
        }
        Some(m) => {
            return Err(Error::invalid(format!(
                "--db {host}: sslmode={}: want verify-full or disable",
                quote(m)
            )));
        }
        None if root.is_some() => {
            return Err(Error::invalid(format!(
                "--db {host}: sslrootcert without sslmode=verify-full"
            )));
        }
        None if pg_loopback(&cfg) => PgTls::Off,
        None => {
            return Err(Error::invalid(format!(
                "--db {host}: not this machine, and the URL asks for no TLS: add sslmode=verify-full&sslrootcert=CA_FILE (or, to send the registry's traffic in clear, sslmode=disable)"
            )));
        }
    };
    if root.is_some() && tls == PgTls::Off {
        return Err(Error::invalid(format!(
            "--db {host}: sslrootcert with sslmode=disable"
        )));
    }
    Ok(PgTarget { cfg, tls, host })
}

/// The TLS connector for `sslmode=verify-full`: rustls (ring), trusting only
/// the CA certificates in `root`; rustls checks the server's name.
fn pg_tls(root: &Path, host: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, Error> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let bad = |why: String| {
        Error::runtime(format!(
            "registry {host}: sslrootcert {}: {}",
            root.display(),
            one_line(&why)
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a CA certificate ({e})")))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    // ring, as the agent uses: rustls marks its ring provider deprecated
    // because it has no post-quantum key exchange (aws-lc-rs has; a C/asm
    // build warden does without). X25519 and the P-curves remain.
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The PostgreSQL password for `cfg`, from `PGPASSWORD` or the `.pgpass` file
/// (`PGPASSFILE` or `~/.pgpass`, `host:port:db:user:password`, `*` wildcards),
/// as libpq does; never from the command line.
fn pg_password(cfg: &postgres::Config) -> Option<String> {
    if let Ok(p) = std::env::var("PGPASSWORD") {
        return Some(p);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| home_dir().map(|h| h.join(".pgpass")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let host = match cfg.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432).to_string();
    let db = cfg.get_dbname().unwrap_or("").to_string();
    let user = cfg.get_user().unwrap_or("").to_string();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.splitn(5, ':').collect();
        if f.len() == 5
            && [&host, &port, &db, &user]
                .iter()
                .zip(&f)
                .all(|(want, got)| *got == "*" || *got == want.as_str())
        {
            return Some(f[4].to_string());
        }
    }
    None
}

impl Conn {
    /// Opens the registry at `url`. In [`Mode::Admin`] a missing SQLite file is
    /// created and migrations run; in [`Mode::HotPath`] neither happens and
    /// the schema must be exactly [`SCHEMA_VERSION`].
    pub fn open(url: &DbUrl, mode: Mode) -> Result<Conn, Error> {
        let mut conn = match url {
            DbUrl::Sqlite(path) => Self::open_sqlite(path, mode)?,
            DbUrl::Postgres(u) => {
                let PgTarget { mut cfg, tls, host } = pg_target(u)?;
                if cfg.get_password().is_none()
                    && let Some(p) = pg_password(&cfg)
                {
                    cfg.password(p);
                }
                cfg.connect_timeout(match mode {
                    Mode::Admin => Duration::from_secs(10),
                    Mode::HotPath => HOT_PATH_TIMEOUT,
                });
                if cfg.get_application_name().is_none() {
                    cfg.application_name("warden");
                }
                use postgres::config::SslMode;
                let connected = match &tls {
                    PgTls::Off => cfg.ssl_mode(SslMode::Disable).connect(postgres::NoTls),
                    // Require: a server without TLS is an error, never a fallback.
                    PgTls::VerifyFull { root } => {
                        cfg.ssl_mode(SslMode::Require).connect(pg_tls(root, &host)?)
                    }
                };
                let client = connected.map_err(|e| {
                    let m = match pg_err(e) {
                        DbError::Conflict(m) | DbError::Failed(m) => one_line(&m),
                    };
                    let against = match &tls {
                        PgTls::VerifyFull { root } if m.contains("certificate") => {
                            format!(" (checked against sslrootcert {})", root.display())
                        }
                        _ => String::new(),
                    };
                    Error::runtime(format!("registry {host} unreachable: {m}{against}"))
                })?;
                Conn::Postgres(Box::new(client))
            }
        };
        match mode {
            Mode::Admin => conn.migrate()?,
            Mode::HotPath => {
                if let DbUrl::Postgres(_) = url {
                    let ms = HOT_PATH_TIMEOUT.as_millis();
                    conn.batch(&format!("SET statement_timeout = {ms}"))?;
                }
                let v = conn.schema_version()?;
                if v != SCHEMA_VERSION {
                    return Err(Error::runtime(format!(
                        "registry {url} has schema version {v}, this warden reads {SCHEMA_VERSION}: run any admin command of a matching warden"
                    )));
                }
            }
        }
        Ok(conn)
    }

    fn open_sqlite(path: &Path, mode: Mode) -> Result<Conn, Error> {
        use rusqlite::OpenFlags as F;
        // No symbolic link anywhere in the registry's files: whoever owns the
        // directory (the unprivileged command user) must not point root's
        // writes, or the ownership fix-up below, at another file.
        let mut flags =
            F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_NO_MUTEX | F::SQLITE_OPEN_NOFOLLOW;
        refuse_links(path)?;
        if mode == Mode::Admin {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(dir) = dir
                && !dir.is_dir()
            {
                return Err(Error::runtime(format!(
                    "registry directory {} does not exist (create it owned by the command user, e.g. install -d -o warden -g warden -m 0750 {})",
                    dir.display(),
                    dir.display()
                )));
            }
            flags |= F::SQLITE_OPEN_CREATE;
        } else if !path.exists() {
            return Err(Error::runtime(format!(
                "registry {} does not exist",
                path.display()
            )));
        }
        let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(|e| {
            Error::runtime(format!("registry {}: cannot open: {e}", path.display()))
        })?;
        let busy = match mode {
            Mode::Admin => ADMIN_BUSY_TIMEOUT,
            Mode::HotPath => HOT_PATH_TIMEOUT,
        };
        conn.busy_timeout(busy)
            .and_then(|_| conn.pragma_update(None, "foreign_keys", "ON"))
            .map_err(|e| Error::runtime(format!("registry {}: {e}", path.display())))?;
        if mode == Mode::HotPath {
            // One process per SSH login: its close must not checkpoint the WAL
            // into the database and fsync (the last connection to close does,
            // by default); an administrative command or the WAL's own
            // auto-checkpoint does that. The throttled last-seen write needs no
            // fsync of its own (WAL + NORMAL survives a crash of the process;
            // a power cut may lose the newest timestamp, nothing else).
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .and_then(|_| conn.pragma_update(None, "synchronous", "NORMAL"))
            .map_err(|e| Error::runtime(format!("registry {}: {e}", path.display())))?;
        }
        if mode == Mode::Admin {
            // WAL: readers (every SSH login) never wait for a writer. The mode
            // is stored in the file, so it is set once, here.
            let jm: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
                .map_err(|e| Error::runtime(format!("registry {}: {e}", path.display())))?;
            if !jm.eq_ignore_ascii_case("wal") {
                return Err(Error::runtime(format!(
                    "registry {}: cannot use WAL journal (got {jm})",
                    path.display()
                )));
            }
        }
        Ok(Conn::Sqlite {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The audit actor as an SQL expression over the parameter `param`: on
    /// PostgreSQL with the role the server authenticated (`session_user`),
    /// which no client can forge.
    pub fn dialect_actor(&self, param: &str) -> String {
        match self {
            Conn::Sqlite { .. } => param.to_string(),
            Conn::Postgres(_) => format!("{param} || ' [db role ' || session_user || ']'"),
        }
    }

    /// Inside a transaction: makes other writers of `table` wait until it
    /// ends (PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds the only
    /// write lock). `table` is one of warden's own table names.
    pub fn lock_table_for_writers(&mut self, table: &str) -> Result<(), DbError> {
        match self {
            Conn::Sqlite { .. } => Ok(()),
            Conn::Postgres(_) => {
                self.batch(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
            }
        }
    }

    /// Inside a transaction: serialises writers of one row (PostgreSQL's
    /// `SELECT ... FOR UPDATE`; nothing to do on SQLite, see above).
    pub fn lock_row_for_writers(
        &mut self,
        table: &str,
        key_col: &str,
        key: &str,
    ) -> Result<(), DbError> {
        match self {
            Conn::Sqlite { .. } => Ok(()),
            Conn::Postgres(_) => self
                .query(
                    &format!("SELECT {key_col} FROM {table} WHERE {key_col} = $1 FOR UPDATE"),
                    &[key.into()],
                )
                .map(drop),
        }
    }

    /// Later statements give up on another writer's lock instead of
    /// queueing behind it (a write the hot path may skip): at once on
    /// SQLite, after [`SKIPPABLE_LOCK_WAIT_MS`] on PostgreSQL (whose 0 means
    /// "wait forever"). Best effort.
    pub fn give_up_on_locks(&mut self) {
        match self {
            Conn::Sqlite { conn, .. } => {
                let _ = conn.busy_timeout(Duration::ZERO);
            }
            Conn::Postgres(_) => {
                let _ = self.batch(&format!("SET lock_timeout = {SKIPPABLE_LOCK_WAIT_MS}"));
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Postgres(_))
    }

    /// Runs statements without parameters or results (`;`-separated).
    pub fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Conn::Sqlite { conn, .. } => conn.execute_batch(sql).map_err(sqlite_err),
            Conn::Postgres(c) => c.batch_execute(sql).map_err(pg_err),
        }
    }

    /// One statement; returns the number of rows it changed.
    pub fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match self {
            Conn::Sqlite { conn, .. } => {
                let mut st = conn.prepare_cached(&sqlite_sql(sql)).map_err(sqlite_err)?;
                st.execute(rusqlite::params_from_iter(params.iter()))
                    .map(|n| n as u64)
                    .map_err(sqlite_err)
            }
            Conn::Postgres(c) => {
                let p: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|v| v as _).collect();
                c.execute(sql, &p).map_err(pg_err)
            }
        }
    }

    /// One query; every row as a vector of values.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match self {
            Conn::Sqlite { conn, .. } => {
                let mut st = conn.prepare_cached(&sqlite_sql(sql)).map_err(sqlite_err)?;
                let n = st.column_count();
                let cols: std::sync::Arc<[String]> =
                    st.column_names().iter().map(|c| c.to_string()).collect();
                let mut rows = st
                    .query(rusqlite::params_from_iter(params.iter()))
                    .map_err(sqlite_err)?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(sqlite_err)? {
                    let mut row = Vec::with_capacity(n);
                    for i in 0..n {
                        use rusqlite::types::ValueRef;
                        row.push(match r.get_ref(i).map_err(sqlite_err)? {
                            ValueRef::Null => Value::Null,
                            ValueRef::Integer(v) => Value::Int(v),
                            ValueRef::Text(t) => {
                                Value::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            ValueRef::Real(f) => Value::Int(f as i64),
                            ValueRef::Blob(b) => {
                                Value::Text(String::from_utf8_lossy(b).into_owned())
                            }
                        });
                    }
                    out.push(Row {
                        cols: cols.clone(),
                        vals: row,
                    });
                }
                Ok(out)
            }
            Conn::Postgres(c) => {
                let p: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    params.iter().map(|v| v as _).collect();
                let rows = c.query(sql, &p).map_err(pg_err)?;
                let Some(first) = rows.first() else {
                    return Ok(Vec::new());
                };
                let cols: std::sync::Arc<[String]> = first
                    .columns()
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect();
                rows.iter()
                    .map(|r| {
                        Ok(Row {
                            cols: cols.clone(),
                            vals: (0..r.len())
                                .map(|i| pg_value(r, i))
                                .collect::<Result<_, _>>()?,
                        })
                    })
                    .collect()
            }
        }
    }

    /// Runs `body` as one transaction, committing if it returns `Ok`, rolling
    /// back otherwise; a body that lost a race is run again (bounded).
    pub fn transaction<T>(
        &mut self,
        body: impl FnMut(&mut Conn) -> Result<T, TxError>,
    ) -> Result<T, Error> {
        self.transaction_within(MAX_TX_ATTEMPTS, body)
    }

    /// [`Conn::transaction`] with at most `attempts` runs (the hot path: sshd's
    /// login is waiting).
    pub fn transaction_within<T>(
        &mut self,
        attempts: u32,
        mut body: impl FnMut(&mut Conn) -> Result<T, TxError>,
    ) -> Result<T, Error> {
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                // Spread the retries of processes that collided.
                let jitter = u64::from(std::process::id() % 7 + attempt.min(10));
                std::thread::sleep(Duration::from_millis(jitter * 3));
            }
            let begin = match self {
                // IMMEDIATE: take the write lock up front, so two writers queue
                // (busy_timeout) instead of deadlocking on a lock upgrade.
                Conn::Sqlite { .. } => "BEGIN IMMEDIATE",
                Conn::Postgres(_) => "BEGIN",
            };
            match self.batch(begin) {
                Ok(()) => {}
                Err(DbError::Conflict(m)) => {
                    last = m;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let r = body(self);
            match r {
                Ok(v) => match self.batch("COMMIT") {
                    Ok(()) => return Ok(v),
                    Err(DbError::Conflict(m)) => {
                        let _ = self.batch("ROLLBACK");
                        last = m;
                    }
                    Err(e) => {
                        let _ = self.batch("ROLLBACK");
                        return Err(e.into());
                    }
                },
                Err(TxError::Retry(m)) => {
                    let _ = self.batch("ROLLBACK");
                    last = m;
                }
                Err(TxError::Fail(e)) => {
                    let _ = self.batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        Err(Error::runtime(format!(
            "registry busy: gave up after {attempts} attempts ({last})"
        )))
    }

    fn schema_version(&mut self) -> Result<i64, Error> {
        match self.query("SELECT max(version) AS version FROM warden_schema", &[]) {
            Ok(rows) => Ok(rows
                .first()
                .and_then(|r| r.get("version"))
                .and_then(Value::int)
                .unwrap_or(0)),
            Err(_) => Err(Error::runtime(
                "registry is not initialised (no schema): run an admin command such as `warden pool add` first",
            )),
        }
    }

    fn migrate(&mut self) -> Result<(), Error> {
        // Up to date: nothing to create (and a role without CREATE on the
        // schema, as `warden db-grants` sets up, works).
        if self.schema_version().is_ok_and(|v| v == SCHEMA_VERSION) {
            return Ok(());
        }
        let pg = self.is_postgres();
        self.transaction(|c| {
            if pg {
                // One migrator at a time, even when 40 processes start at once
                // on an empty database.
                c.query("SELECT pg_advisory_xact_lock(2026112901)", &[])?;
            }
            c.batch("CREATE TABLE IF NOT EXISTS warden_schema (version BIGINT NOT NULL)")?;
            let rows = c.query("SELECT max(version) AS version FROM warden_schema", &[])?;
            let have = rows
                .first()
                .and_then(|r| r.get("version"))
                .and_then(Value::int)
                .unwrap_or(0);
            if have > SCHEMA_VERSION {
                return Err(Error::runtime(format!(
                    "registry has schema version {have}, newer than this warden ({SCHEMA_VERSION}): upgrade warden"
                ))
                .into());
            }
            for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > have) {
                let serial = if pg {
                    "BIGSERIAL PRIMARY KEY"
                } else {
                    "INTEGER PRIMARY KEY AUTOINCREMENT"
                };
                let append_only = if pg {
                    APPEND_ONLY_AUDIT_PG
                } else {
                    APPEND_ONLY_AUDIT_SQLITE
                };
                c.batch(
                    &sql.replace("{serial}", serial)
                        .replace("{append_only_audit}", append_only),
                )?;
                c.exec("INSERT INTO warden_schema (version) VALUES ($1)", &[Value::Int(*v)])?;
            }
            Ok(())
        })?;
        self.fix_ownership();
        Ok(())
    }

    /// SQLite only: when run as root, hand the database and its WAL/SHM files
    /// to the owner of their directory, so that the unprivileged user sshd
    /// runs `authorized-keys` as can still read and write them. Each file is
    /// opened without following a link, must be a regular file with one link,
    /// and the open file is what changes owner: a file swapped for a link
    /// meanwhile is left alone.
    pub fn fix_ownership(&self) {
        let Conn::Sqlite { path, .. } = self else {
            return;
        };
        if euid() != 0 {
            return;
        }
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => d.to_path_buf(),
            None => PathBuf::from("."),
        };
        let Ok(dm) = std::fs::metadata(&dir) else {
            return;
        };
        for p in sqlite_files(path) {
            let Ok(f) = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(&p)
            else {
                continue;
            };
            let Ok(m) = f.metadata() else { continue };
            if !m.is_file() || m.nlink() != 1 {
                continue;
            }
            if m.uid() != dm.uid() || m.gid() != dm.gid() {
                let _ = std::os::unix::fs::fchown(&f, Some(dm.uid()), Some(dm.gid()));
            }
            // A group-writable directory (0770: the claim account, group
            // warden, enrols into it): the files group read-write too.
            use std::os::unix::fs::PermissionsExt;
            if dm.mode() & 0o020 != 0 && m.mode() & 0o060 != 0o060 {
                let mode = (m.mode() & 0o7777) | 0o060;
                let _ = f.set_permissions(std::fs::Permissions::from_mode(mode));
            }
        }
    }
}

/// The database file and the files SQLite keeps beside it.
fn sqlite_files(path: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            PathBuf::from(p)
        })
        .collect()
}

/// Refuses a registry whose files are links (symbolic, or hard links to a
/// file elsewhere) or not regular files.
fn refuse_links(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    for p in sqlite_files(path) {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let why = if m.file_type().is_symlink() {
            "is a symbolic link"
        } else if !m.is_file() {
            "is not a regular file"
        } else if m.nlink() != 1 {
            "has another hard link"
        } else {
            continue;
        };
        return Err(Error::runtime(format!(
            "registry file {} {why}: refused (someone with write access to {} may be aiming warden at another file)",
            p.display(),
            path.parent()
                .map_or_else(|| ".".into(), |d| d.display().to_string())
        )));
    }
    Ok(())
}

/// A local account: (name, uid, home).
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub home: String,
}

/// The passwd entry for a user name or a numeric uid, from `getent` (NSS-aware)
/// or /etc/passwd.
pub fn account(name_or_uid: &str) -> Option<Account> {
    let text = std::process::Command::new("getent")
        .args(["passwd", name_or_uid])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .or_else(|| std::fs::read_to_string("/etc/passwd").ok())?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 5 && (f[0] == name_or_uid || f[2] == name_or_uid)).then(|| Account {
            name: f[0].to_string(),
            uid: f[2].parse().unwrap_or(u32::MAX),
            home: f[5].to_string(),
        })
    })
}

/// The effective uid (the agent's reading of /proc; `u32::MAX` without /proc).
pub fn euid() -> u32 {
    jailbird::identity::effective_uid().unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            DbUrl::parse(DEFAULT_DB).unwrap(),
            DbUrl::Sqlite("/var/lib/warden/registry.db".into())
        );
        assert!(matches!(
            DbUrl::parse("postgres://warden@127.0.0.1:5432/warden").unwrap(),
            DbUrl::Postgres(_)
        ));
        for s in [
            "postgres://warden:secret@127.0.0.1/warden",
            "postgres://warden@127.0.0.1/warden?password=x",
            "mysql://x",
            "sqlite:",
            "sqlite:///a b",
            "",
        ] {
            assert!(DbUrl::parse(s).is_err(), "{s:?} accepted");
        }
        // TLS: off only on this machine or when asked; libpq's parameters
        // are taken (and kept from the driver, which knows neither).
        for ok in [
            "postgres://w@localhost/db",
            "postgres://w@[::1]:5433/db",
            "postgres://w@127.0.0.2/db?connect_timeout=3",
            "postgres://w@db.example/db?sslmode=disable",
            "postgres://w@db.example/db?sslmode=verify-full&sslrootcert=/etc/warden/ca.pem",
            "postgres://w@db.example/db?sslrootcert=%2Fetc%2Fca.pem&sslmode=verify-full",
            "postgres://w@/db?host=/run/postgresql",
            "postgres://w@db.example/db?hostaddr=127.0.0.1",
        ] {
            assert!(DbUrl::parse(ok).is_ok(), "{ok}: {:?}", DbUrl::parse(ok));
        }
        for (bad, why) in [
            ("postgres://w@10.1.2.3/db", "no TLS"),
            ("postgres://w@db.example:5432/db", "no TLS"),
            ("postgres://w@localhost,db.example/db", "no TLS"),
            ("postgres://w@localhost/db?hostaddr=10.1.2.3", "no TLS"),
            ("postgres://w@db.example/db?sslmode=require", "verify-full"),
            (
                "postgres://w@db.example/db?sslmode=verify-ca",
                "verify-full",
            ),
            ("postgres://w@db.example/db?sslmode=prefer", "verify-full"),
            (
                "postgres://w@db.example/db?sslmode=bogus",
                "want verify-full",
            ),
            (
                "postgres://w@db.example/db?sslmode=verify-full&sslrootcert=ca.pem",
                "absolute",
            ),
            (
                "postgres://w@db.example/db?sslrootcert=/ca.pem",
                "without sslmode",
            ),
            (
                "postgres://w@db.example/db?sslmode=disable&sslmode=disable",
                "twice",
            ),
            (
                "postgres://w@/db?host=/run/pg&sslmode=verify-full&sslrootcert=/ca.pem",
                "socket",
            ),
        ] {
            let e = DbUrl::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert_eq!(e.lines().count(), 1, "{bad}: {e}");
        }
        let e = DbUrl::parse("postgres://warden:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "password echoed: {e}");
    }
}
