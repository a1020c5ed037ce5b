//! Failed authentication, rate-limited per source address: a token bucket
//! per address, in process. Every failure takes a token; an address whose
//! bucket is empty is refused (`429`) before its credentials are even
//! looked at, until a token has grown back. Successful requests cost
//! nothing.
//!
//! Time comes from the injected clock, so tests never wait for a refill.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Failures an address may make in a burst.
pub const BURST: u32 = 100;
/// One token grows back per this many milliseconds (10 a minute).
pub const REFILL_MS: u64 = 6_000;
/// Addresses tracked at most: past it, addresses whose bucket is full again
/// are forgotten (and if none is, all of them), so memory stays bounded.
pub const MAX_ADDRESSES: usize = 100_000;

/// One address's bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens as of `at_ms`.
    tokens: u32,
    /// When `tokens` was last brought up to date.
    at_ms: u64,
}

impl Bucket {
    /// The bucket as of `now_ms`, with what grew back since.
    fn refilled(self, now_ms: u64) -> Self {
        let grown = now_ms.saturating_sub(self.at_ms) / REFILL_MS;
        let tokens = u64::from(self.tokens)
            .saturating_add(grown)
            .min(u64::from(BURST));
        Self {
            tokens: u32::try_from(tokens).unwrap_or(BURST),
            // Keep the fraction of a token that is still growing.
            at_ms: if tokens >= u64::from(BURST) {
                now_ms
            } else {
                self.at_ms + grown * REFILL_MS
            },
        }
    }
}

/// The buckets of every address that failed recently.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl FailureLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Some(seconds to wait)` when `ip` may not try now.
    pub fn blocked(&self, ip: IpAddr, now_ms: u64) -> Option<u64> {
        let buckets = self.buckets.lock().ok()?;
        let bucket = buckets.get(&ip)?.refilled(now_ms);
        (bucket.tokens == 0).then(|| {
            let next = bucket.at_ms + REFILL_MS;
            next.saturating_sub(now_ms).div_ceil(1000).max(1)
        })
    }

    /// Takes a token for a failure of `ip`.
    pub fn failed(&self, ip: IpAddr, now_ms: u64) {
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&ip) {
            buckets.retain(|_, b| b.refilled(now_ms).tokens < BURST);
            if buckets.len() >= MAX_ADDRESSES {
                buckets.clear();
            }
        }
        let bucket = buckets
            .get(&ip)
            .map(|b| b.refilled(now_ms))
            .unwrap_or(Bucket {
                tokens: BURST,
                at_ms: now_ms,
            });
        buckets.insert(
            ip,
            Bucket {
                tokens: bucket.tokens.saturating_sub(1),
                ..bucket
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn an_address_is_blocked_after_its_burst_and_freed_as_tokens_grow_back() {
        let limiter = FailureLimiter::new();
        let a = ip("192.0.2.1");
        for _ in 0..BURST {
            assert_eq!(limiter.blocked(a, 0), None);
            limiter.failed(a, 0);
        }
        assert_eq!(limiter.blocked(a, 0), Some(REFILL_MS / 1000));
        assert_eq!(limiter.blocked(a, REFILL_MS - 1), Some(1));
        assert_eq!(limiter.blocked(a, REFILL_MS), None, "one token grew back");
        limiter.failed(a, REFILL_MS);
        assert!(limiter.blocked(a, REFILL_MS).is_some());
    }

    #[test]
    fn addresses_have_buckets_of_their_own() {
        let limiter = FailureLimiter::new();
        for _ in 0..BURST {
            limiter.failed(ip("192.0.2.1"), 0);
        }
        assert!(limiter.blocked(ip("192.0.2.1"), 0).is_some());
        assert_eq!(limiter.blocked(ip("192.0.2.2"), 0), None);
    }
}
