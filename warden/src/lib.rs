//! warden: the fleet side of jailbird.
//!
//! ```text
//! cli.rs (clap) -> cmd/<group>.rs (parse -> store -> render; no terminal needed)
//!                    -> store/<aggregate>.rs (all SQL; rows decoded by column name
//!                       into checked types, store/row.rs) -> store/conn.rs (SQLite |
//!                       PostgreSQL over TLS: one SQL text, dialect hooks, migrations)
//!                    -> render.rs (tables, JSON, env files, known_hosts lines)
//! sshd -> `warden authorized-keys` -> sshd.rs (a pure decision over typed rows; fail closed)
//! jail host -> `warden watch` (watch.rs: /proc/net/tcp -> presence; ends revoked sessions)
//! factory -> `warden device-config` (device_config.rs: jailbird.env + known_hosts)
//! HTTP clients -> `warden serve` (serve/: axum + rustls; tokens, then cmd/ on blocking threads)
//! operator -> `warden connect` / `ssh-config` (connect.rs) and `ca init`, certificates (ca.rs)
//! ```
//!
//! Values are parsed once at the edge into the types of types.rs, and again
//! on their way out of the registry: nothing the database says reaches a
//! drop-in, a device file, a shell or a key line unchecked.

pub mod ca;
pub mod cli;
pub mod cmd;
pub mod connect;
pub mod device_config;
pub mod error;
pub mod fsio;
pub mod metrics;
pub mod render;
pub mod serve;
pub mod sshd;
pub mod store;
pub mod types;
pub mod watch;
pub mod watch_metrics;

pub use cmd::run;
