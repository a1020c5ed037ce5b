//! Time, injected.
//!
//! Everything whose behaviour depends on the time of day (attribution
//! windows, the minimum click-to-conversion time, signature skew, which UTC
//! day a counter belongs to, cap periods) asks a [`Clock`] instead of the
//! system, so that tests move time forward instead of sleeping through it.
//! The server runs on [`SystemClock`]; tests use [`ManualClock`].
//!
//! Redis's own expiries (TTL) still run on Redis's clock. Nothing relies on
//! them for correctness: a click record carries the end of its window and a
//! look-up checks it against this clock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds since the Unix epoch, as the rest of clickback sees them.
pub trait Clock: Send + Sync + 'static {
    /// Now, in Unix seconds.
    fn now(&self) -> u64;

    /// Now, in Unix milliseconds: delivery schedules count in them.
    fn now_ms(&self) -> u64 {
        self.now().saturating_mul(1000)
    }
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        crate::domain::unix_now()
    }

    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to, for tests of windows, TTLs and
/// retry schedules. It keeps milliseconds; [`Clock::now`] rounds down.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock standing at `unix_secs`.
    pub fn at(unix_secs: u64) -> Self {
        Self(AtomicU64::new(unix_secs.saturating_mul(1000)))
    }

    /// A clock standing at the system's time now (so that Redis TTLs derived
    /// from it stay sensible).
    pub fn starting_now() -> Self {
        Self::at(crate::domain::unix_now())
    }

    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0
            .fetch_add(secs.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst) / 1000
    }

    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::at(1_000);
        assert_eq!(clock.now(), 1_000);
        clock.advance(61);
        assert_eq!(clock.now(), 1_061);
        clock.advance_ms(1_500);
        assert_eq!(clock.now(), 1_062);
        assert_eq!(clock.now_ms(), 1_062_500);
    }
}
