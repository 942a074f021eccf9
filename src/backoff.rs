//! Reconnect delays: capped exponential backoff with jitter. Pure arithmetic, no clock.

use crate::limits::{BACKOFF_BASE, BACKOFF_CAP, REFUSED_FAST_ATTEMPTS, REFUSED_RETRY};
use std::time::Duration;

/// Why the last attempt ended; the kind picks the delay policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Anything but a refused forward: connect, host key, auth, dead link.
    Other,
    /// The jail answered the forward request with a refusal.
    ForwardRefused,
}

/// Backoff state across attempts.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
    refused: u32,
}

impl Backoff {
    /// Forgets past failures (called after a healthy stretch of tunnel).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Records a failure and returns the delay before the next attempt.
    /// `jitter` is a uniformly random `u32`; the delay lies in `[d/2, d]` for the
    /// nominal step `d`, so the first retry comes within 1 s.
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
        let half = nominal / 2;
        let extra_ms = (half.as_millis() as u64 * u64::from(jitter)) / u64::from(u32::MAX);
        half + Duration::from_millis(extra_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_retry_within_a_second_then_doubles_to_the_cap() {
        let mut b = Backoff::default();
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
        let mut lo = Backoff::default();
        let mut hi = Backoff::default();
        assert_eq!(lo.next_delay(Failure::Other, 0), Duration::from_millis(500));
        assert_eq!(
            hi.next_delay(Failure::Other, u32::MAX),
            Duration::from_millis(1000)
        );
    }

    #[test]
    fn refused_forward_retries_fast_then_falls_back() {
        let mut b = Backoff::default();
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
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.next_delay(Failure::Other, u32::MAX);
        }
        b.reset();
        assert_eq!(
            b.next_delay(Failure::Other, u32::MAX),
            Duration::from_secs(1)
        );
    }
}
