//! Reconnect delays: capped exponential backoff with jitter. Pure arithmetic, no clock.
//!
//! Two things decide how a fleet comes back after its jail restarts (every
//! device loses its link at the same instant): how the first retry after a
//! dropped healthy link is spread, and how wide the jitter of later retries
//! is. Both are a [`Policy`]; the agent runs [`Policy::AGENT`], the fleet
//! simulator (benches/fleet-sim) compares the others against a real jail.

use crate::limits::{
    BACKOFF_BASE, BACKOFF_CAP, CLAIM_REFUSED_RETRY, DROP_SPREAD, REFUSED_FAST_ATTEMPTS,
    REFUSED_RETRY,
};
use std::time::Duration;

/// Why the last attempt ended; the kind picks the delay policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Anything but a refused forward or a closed link: connect, host key,
    /// auth, a link declared dead by keepalives.
    Other,
    /// The jail closed or reset an established link: when a jail restarts,
    /// its whole fleet sees this at the same instant.
    Dropped,
    /// The jail answered the forward request with a refusal.
    ForwardRefused,
}

/// How much of the nominal step `d` is random.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform in `[d/2, d]` ("equal jitter").
    Equal,
    /// Uniform in `[0, d]` ("full jitter").
    Full,
}

/// A reconnect policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub jitter: Jitter,
    /// After a healthy link drops (the jail restarted, or the path did), the
    /// first retry comes uniformly within `[0, drop_spread]` instead of the
    /// first backoff step; zero keeps the first step.
    pub drop_spread: Duration,
}

impl Policy {
    /// What the agent runs (chosen with benches/fleet_sim.py; docs/fleet.md "Fleet
    /// scale"): equal jitter, and the first retry after the jail closed a
    /// healthy link spread over [`DROP_SPREAD`].
    pub const AGENT: Policy = Policy {
        jitter: Jitter::Equal,
        drop_spread: DROP_SPREAD,
    };
    /// The agent's policy before the fleet simulator: equal jitter, a retry
    /// within a second of a drop.
    pub const EQUAL: Policy = Policy {
        jitter: Jitter::Equal,
        drop_spread: Duration::ZERO,
    };
    /// Full jitter, a retry within a second of a drop.
    pub const FULL: Policy = Policy {
        jitter: Jitter::Full,
        drop_spread: Duration::ZERO,
    };
}

impl Default for Policy {
    fn default() -> Self {
        Policy::AGENT
    }
}

/// Backoff state across attempts.
#[derive(Debug, Default)]
pub struct Backoff {
    policy: Policy,
    failures: u32,
    refused: u32,
}

impl Backoff {
    pub fn new(policy: Policy) -> Self {
        Backoff {
            policy,
            ..Default::default()
        }
    }

    /// Forgets past failures (called after a healthy stretch of tunnel).
    pub fn reset(&mut self) {
        self.failures = 0;
        self.refused = 0;
    }

    /// The first delay after a healthy link ended: for a link the jail
    /// closed, uniform in `[0, drop_spread]`; otherwise (or with no spread)
    /// the policy's first step. Resets the backoff.
    pub fn after_drop(&mut self, failure: Failure, jitter: u32) -> Duration {
        self.reset();
        if self.policy.drop_spread.is_zero() || failure != Failure::Dropped {
            return self.next_delay(failure, jitter);
        }
        self.failures = 1;
        scale(self.policy.drop_spread, jitter)
    }

    /// Records a failure and returns the delay before the next attempt.
    /// `jitter` is a uniformly random `u32`, spread over the policy's range of
    /// the nominal step `d` (doubling from [`BACKOFF_BASE`] to [`BACKOFF_CAP`]).
    pub fn next_delay(&mut self, failure: Failure, jitter: u32) -> Duration {
        let nominal = if failure == Failure::ForwardRefused && self.refused < REFUSED_FAST_ATTEMPTS
        {
            self.refused += 1;
            REFUSED_RETRY
        } else {
            let step = self.failures.min(16);
            self.failures = self.failures.saturating_add(1);
            BACKOFF_BASE.saturating_mul(1u32 << step).min(BACKOFF_CAP)
        };
        match self.policy.jitter {
            Jitter::Equal => nominal / 2 + scale(nominal / 2, jitter),
            Jitter::Full => scale(nominal, jitter),
        }
    }
}

/// `d * jitter / u32::MAX`, to the millisecond.
/// The delay after a refused (or unusable) claim answer: uniform in the last
/// quarter of [`CLAIM_REFUSED_RETRY`], so a fleet refused at once spreads out.
pub fn claim_refused(jitter: u32) -> Duration {
    let quarter = CLAIM_REFUSED_RETRY / 4;
    CLAIM_REFUSED_RETRY - quarter + scale(quarter, jitter)
}

fn scale(d: Duration, jitter: u32) -> Duration {
    Duration::from_millis((d.as_millis() as u64 * u64::from(jitter)) / u64::from(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_claim_waits_long_with_jitter() {
        assert_eq!(claim_refused(0), CLAIM_REFUSED_RETRY * 3 / 4);
        assert_eq!(claim_refused(u32::MAX), CLAIM_REFUSED_RETRY);
        assert!(claim_refused(u32::MAX / 2) > CLAIM_REFUSED_RETRY * 3 / 4);
    }

    #[test]
    fn first_retry_within_a_second_then_doubles_to_the_cap() {
        let mut b = Backoff::new(Policy::EQUAL);
        let d: Vec<_> = (0..10)
            .map(|_| b.next_delay(Failure::Other, u32::MAX))
            .collect();
        assert_eq!(d[0], Duration::from_secs(1));
        assert_eq!(d[1], Duration::from_secs(2));
        assert_eq!(d[2], Duration::from_secs(4));
        assert_eq!(d[6], Duration::from_secs(60));
        assert_eq!(d[9], Duration::from_secs(60));
    }

    #[test]
    fn jitter_spans_half_to_full() {
        let mut lo = Backoff::new(Policy::EQUAL);
        let mut hi = Backoff::new(Policy::EQUAL);
        assert_eq!(lo.next_delay(Failure::Other, 0), Duration::from_millis(500));
        assert_eq!(
            hi.next_delay(Failure::Other, u32::MAX),
            Duration::from_millis(1000)
        );
    }

    #[test]
    fn refused_forward_retries_fast_then_falls_back() {
        let mut b = Backoff::new(Policy::EQUAL);
        for _ in 0..REFUSED_FAST_ATTEMPTS {
            assert!(b.next_delay(Failure::ForwardRefused, u32::MAX) <= Duration::from_secs(5));
        }
        let mut last = Duration::ZERO;
        for _ in 0..8 {
            last = b.next_delay(Failure::ForwardRefused, u32::MAX);
        }
        assert_eq!(last, BACKOFF_CAP);
    }

    #[test]
    fn reset_returns_to_first_step() {
        let mut b = Backoff::new(Policy::EQUAL);
        for _ in 0..5 {
            b.next_delay(Failure::Other, u32::MAX);
        }
        b.reset();
        assert_eq!(
            b.next_delay(Failure::Other, u32::MAX),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn full_jitter_spans_zero_to_the_step() {
        let mut lo = Backoff::new(Policy::FULL);
        let mut hi = Backoff::new(Policy::FULL);
        assert_eq!(lo.next_delay(Failure::Other, 0), Duration::ZERO);
        assert_eq!(
            hi.next_delay(Failure::Other, u32::MAX),
            Duration::from_secs(1)
        );
        assert_eq!(
            hi.next_delay(Failure::Other, u32::MAX / 2),
            Duration::from_millis(999)
        );
    }

    #[test]
    fn a_drop_is_spread_then_backs_off_from_the_second_step() {
        let policy = Policy {
            jitter: Jitter::Full,
            drop_spread: Duration::from_secs(20),
        };
        let mut b = Backoff::new(policy);
        for _ in 0..6 {
            b.next_delay(Failure::Other, u32::MAX);
        }
        assert_eq!(
            b.after_drop(Failure::Dropped, u32::MAX),
            Duration::from_secs(20)
        );
        assert_eq!(b.after_drop(Failure::Dropped, 0), Duration::ZERO);
        // the next failure is the second step (2 s), not the seventh
        assert_eq!(
            b.next_delay(Failure::Other, u32::MAX),
            Duration::from_secs(2)
        );
        // without a spread a drop restarts at the first step
        let mut e = Backoff::new(Policy::EQUAL);
        e.next_delay(Failure::Other, u32::MAX);
        assert_eq!(
            e.after_drop(Failure::Dropped, u32::MAX),
            Duration::from_secs(1)
        );
        // a link declared dead by keepalives is not spread: nothing says the
        // jail restarted, and the devices of a fleet notice at different times
        assert_eq!(
            Backoff::new(policy).after_drop(Failure::Other, u32::MAX),
            Duration::from_secs(1)
        );
        // a refused forward keeps its fast retry
        assert_eq!(
            Backoff::new(policy).after_drop(Failure::ForwardRefused, u32::MAX),
            REFUSED_RETRY
        );
    }
}
