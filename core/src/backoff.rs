//! The one backoff: how long to wait before trying again, for everything
//! that does (an IMAP account whose read broke off, an HTTP page after a 429
//! or 5xx, an LDAP bind, a mail the server refused for now).
//!
//! The wait doubles from `first` with each attempt and stops growing at
//! `max`. There is no jitter: the callers are few and their peers are the
//! organisation's own servers, and a wait that is the same every run keeps
//! logs and tests readable.

use std::time::Duration;

/// Doubling waits between `first` and `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// Waits from `first`, doubling, at most `max`.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }

    /// The wait after `failures` failures (1 for the first): `first`,
    /// `2 × first`, … at most `max`. No wait before any failure.
    pub fn after(&self, failures: u32) -> Duration {
        let Some(doublings) = failures.checked_sub(1) else {
            return Duration::ZERO;
        };
        self.first
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_stays_at_the_limit() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let waits: Vec<u64> = (0..10).map(|n| backoff.after(n).as_secs()).collect();
        assert_eq!(waits, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff.after(u32::MAX), Duration::from_secs(60));
        let huge = Backoff::new(Duration::from_secs(u64::MAX / 2), Duration::MAX);
        assert_eq!(huge.after(40), Duration::MAX);
    }
}
