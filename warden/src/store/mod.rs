//! The registry's storage: all of warden's SQL, one file per aggregate.
//!
//! ```text
//! conn.rs      SQLite | PostgreSQL: one SQL text, dialect hooks, migrations, TLS
//! row.rs       rows decoded by column name into checked types (nothing trusted)
//! pool.rs jail.rs device.rs operator.rs audit.rs presence.rs token.rs claim.rs   the aggregates
//! fleet.rs     the web view's paged, filtered device list and presence counts
//! hook.rs      webhooks: receivers and the outbox of events
//! stats.rs     fleet figures for /metrics (aggregate queries)
//! time.rs      Unix seconds <-> RFC 3339
//! ```
//!
//! Every change is one transaction; uniqueness (a key across the fleet, a port
//! within a pool, a MAC) is enforced by the database and a transaction that
//! loses a race is run again. Callers (cmd/, sshd.rs, watch.rs, operator.rs)
//! see typed values only.

pub mod audit;
pub mod claim;
pub mod conn;
pub mod device;
pub mod fleet;
pub mod hook;
pub mod jail;
pub mod operator;
pub mod pool;
pub mod presence;
pub mod row;
pub mod stats;
pub mod time;
pub mod token;

pub use audit::*;
pub use claim::*;
pub use device::*;
pub use fleet::*;
pub use jail::*;
pub use operator::*;
pub use pool::*;
pub use presence::*;
pub use row::{MAX_LABEL_CHARS, MAX_LABELS, parse_labels};
pub use time::*;
pub use token::*;
