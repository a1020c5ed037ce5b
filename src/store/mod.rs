//! All data access goes through the [`Store`] trait.
//!
//! Two implementations pass the same conformance suite
//! (`tests/store_conformance.rs`): [`RedisStore`] for production and
//! [`MemoryStore`] for the one-command demo. Routes never see Redis commands
//! and the store never sees HTTP types.

pub mod keys;
pub mod memory;
pub mod redis;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use crate::domain::conversion::{ConversionCommand, ConversionOutcome, ConversionRecord};
use crate::domain::{Affiliate, AffiliateId, Click, ClickId, Day, Identity, Offer, OfferId};

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, timed out, refused: the caller should degrade or ask for a retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered something clickback never writes.
    #[error("store returned unexpected data: {0}")]
    Corrupt(String),
}

/// A boxed future, so that `Store` can be used as `dyn Store`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Offers and affiliates as a whole, with the version they were read at.
#[derive(Clone, Debug, Default)]
pub struct ConfigData {
    /// Bumped on every config write; instances reload when it changes.
    pub version: u64,
    /// Every offer.
    pub offers: Vec<Offer>,
    /// Every affiliate.
    pub affiliates: Vec<Affiliate>,
}

/// What a postback needs to know before it decides anything.
#[derive(Clone, Debug, Default)]
pub struct ConversionLookup {
    /// The click, if it has not expired.
    pub click: Option<Click>,
    /// The conversion with the postback's identity, if one exists.
    pub conversion: Option<ConversionRecord>,
}

/// One day's counters summed over all shards: field `offer|aff|metric` → value.
pub type DayCounters = HashMap<String, i64>;

/// Persistence for clicks, conversions, counters and configuration.
pub trait Store: Send + Sync + 'static {
    /// Stores a click with a TTL and counts it, in one round trip, atomically.
    fn record_click<'a>(&'a self, click: &'a Click, ttl_secs: u64) -> StoreFuture<'a, ()>;

    /// Counts a click whose visitor declined tracking; stores nothing about them.
    fn count_declined_click<'a>(
        &'a self,
        offer: &'a OfferId,
        aff: &'a AffiliateId,
        day: Day,
    ) -> StoreFuture<'a, ()>;

    /// Reads the click and the conversion a postback refers to, in one round trip.
    fn lookup_conversion<'a>(
        &'a self,
        click_id: &'a ClickId,
        identity: &'a Identity,
    ) -> StoreFuture<'a, ConversionLookup>;

    /// Creates or moves a conversion and its counters atomically: exactly
    /// once, however many identical commands race.
    fn apply_conversion<'a>(
        &'a self,
        command: &'a ConversionCommand,
    ) -> StoreFuture<'a, ConversionOutcome>;

    /// Creates or replaces an offer and bumps the config version.
    fn put_offer<'a>(&'a self, offer: &'a Offer) -> StoreFuture<'a, ()>;

    /// Creates or replaces an affiliate and bumps the config version.
    fn put_affiliate<'a>(&'a self, affiliate: &'a Affiliate) -> StoreFuture<'a, ()>;

    /// The current config version: cheap, polled every second by every instance.
    fn config_version(&self) -> StoreFuture<'_, u64>;

    /// All offers and affiliates.
    fn load_config(&self) -> StoreFuture<'_, ConfigData>;

    /// The counters of each day, summed over shards, in the order given.
    fn read_counters<'a>(&'a self, days: &'a [Day]) -> StoreFuture<'a, Vec<DayCounters>>;

    /// Answers when the store is reachable (readiness).
    fn ping(&self) -> StoreFuture<'_, ()>;
}
