//! jailbird holds one reverse SSH tunnel open from a device behind NAT to a
//! locked-down "jail" sshd, so an operator can reach the device's own sshd.
//!
//! Data flows one way, and so do the modules:
//!
//! ```text
//! args + env -> Config -> Identity -> supervisor (backoff, shutdown)
//!   cli.rs      config.rs  identity.rs  supervisor.rs, backoff.rs, shutdown.rs
//!                          device.rs     -> session (connect, host key, auth, forward request)
//!                                           session.rs, hostkey.rs
//!                                           -> forward (channel <-> target, fixed buffers)
//!                                              forward.rs
//! ```
//!
//! Every bound lives in [`limits`].
#![forbid(unsafe_code)]

pub mod backoff;
pub mod cli;
pub mod config;
pub mod defaults;
pub mod device;
pub mod forward;
pub mod hostkey;
pub mod identity;
pub mod limits;
pub mod logging;
pub mod session;
pub mod shutdown;
pub mod spec;
pub mod status;
pub mod supervisor;
