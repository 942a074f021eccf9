//! jailbird holds one reverse SSH tunnel open from a device behind NAT to a
//! locked-down "jail" sshd, so an operator can reach the device's own sshd.
//!
//! Data flows one way, and so do the modules:
//!
//! ```text
//! args + env -> Config -> Identity -> supervisor (backoff, shutdown, status file)
//!   cli.rs      config.rs  identity.rs  supervisor.rs, backoff.rs, shutdown.rs, status.rs
//!   spec.rs     config/    device.rs     -> session: connect -> Up -> serve
//!   defaults.rs options.rs                  session.rs, hostkey.rs
//!                                           -> forward (channel <-> target, fixed buffers)
//!                                              forward.rs
//! ```
//!
//! `spec.rs` holds every configuration parser (build.rs includes it, so the
//! compiled-in defaults are checked by the same code); `config.rs` resolves
//! flags, environment and defaults in one order (`config/`: the authorize
//! permit, the autossh container's composite variables, the host-key trust
//! sources). Every bound lives in [`limits`] (those of configuration values
//! re-exported from `spec`).
#![forbid(unsafe_code)]

pub mod backoff;
#[cfg(feature = "claim")]
pub mod claim;
pub mod cli;
pub mod config;
pub mod defaults;
pub mod device;
pub mod forward;
pub mod hostcert;
pub mod hostkey;
pub mod identity;
pub mod limits;
pub mod logging;
pub mod options;
pub mod proxy;
pub mod session;
pub mod shutdown;
pub mod spec;
pub mod status;
pub mod supervisor;
