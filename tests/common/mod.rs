//! The shared test harness (the `jailbird-test-support` crate in
//! test-support/): real sshd jails, the agent as a process, waits with
//! deadlines.
#![allow(unused_imports)]
pub use jailbird_test_support::*;
