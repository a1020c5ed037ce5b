//! The embedded store for the one-command demo: everything in process memory,
//! nothing survives a restart.
//!
//! It keeps the same semantics as [`super::RedisStore`] (TTLs, exactly-once
//! crediting under concurrency, per-day counters) and passes the same
//! conformance suite; a single mutex makes each operation atomic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::keys::counter;
use super::{ConfigData, ConversionLookup, DayCounters, Store, StoreError, StoreFuture};
use crate::domain::conversion::{ConversionCommand, ConversionOutcome, ConversionRecord};
use crate::domain::{Affiliate, AffiliateId, Click, ClickId, Day, Identity, Money, Offer, OfferId};

/// Expired entries are swept after this many writes, bounding memory in a long demo.
const SWEEP_EVERY: u64 = 4096;

#[derive(Default)]
struct Inner {
    clicks: HashMap<ClickId, (Click, Instant)>,
    conversions: HashMap<(ClickId, Identity), (ConversionRecord, Instant)>,
    counters: HashMap<Day, DayCounters>,
    offers: BTreeMap<OfferId, Offer>,
    affiliates: BTreeMap<AffiliateId, Affiliate>,
    version: u64,
    writes: u64,
}

impl Inner {
    fn bump(&mut self, day: Day, offer: &OfferId, aff: &AffiliateId, metric: &str, by: i64) {
        *self
            .counters
            .entry(day)
            .or_default()
            .entry(counter::field(offer.as_str(), aff.as_str(), metric))
            .or_insert(0) += by;
    }

    /// Moves the counters of one conversion in or out of a status.
    fn count(&mut self, record: &ConversionRecord, sign: i64) {
        use crate::domain::ConversionStatus::*;
        let (day, offer, aff) = (record.day, record.offer_id.clone(), record.aff_id.clone());
        match record.status {
            Approved => {
                self.bump(day, &offer, &aff, counter::CONVERSIONS, sign);
                self.bump(
                    day,
                    &offer,
                    &aff,
                    counter::PAYOUT,
                    sign * record.payout.micros(),
                );
                self.bump(
                    day,
                    &offer,
                    &aff,
                    counter::REVENUE,
                    sign * record.revenue.micros(),
                );
            }
            Pending => {
                self.bump(day, &offer, &aff, counter::PENDING, sign);
                self.bump(
                    day,
                    &offer,
                    &aff,
                    counter::PENDING_PAYOUT,
                    sign * record.payout.micros(),
                );
            }
            Rejected => self.bump(day, &offer, &aff, counter::REJECTED, sign),
        }
    }

    fn sweep_now_and_then(&mut self) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            let now = Instant::now();
            self.clicks.retain(|_, (_, expires)| *expires > now);
            self.conversions.retain(|_, (_, expires)| *expires > now);
        }
    }
}

/// In-memory [`Store`].
#[derive(Default)]
pub struct MemoryStore {
    /// Everything, behind one lock: operations are short and never await while holding it.
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }
}

fn ready<'a, T: Send + 'a>(result: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(result))
}

impl Store for MemoryStore {
    fn record_click<'a>(&'a self, click: &'a Click, ttl_secs: u64) -> StoreFuture<'a, ()> {
        ready(self.lock().map(|mut inner| {
            let expires = Instant::now() + Duration::from_secs(ttl_secs);
            inner
                .clicks
                .insert(click.id.clone(), (click.clone(), expires));
            inner.bump(
                Day::from_unix(click.created_at),
                &click.offer_id,
                &click.aff_id,
                counter::CLICKS,
                1,
            );
            inner.sweep_now_and_then();
        }))
    }

    fn count_declined_click<'a>(
        &'a self,
        offer: &'a OfferId,
        aff: &'a AffiliateId,
        day: Day,
    ) -> StoreFuture<'a, ()> {
        ready(
            self.lock()
                .map(|mut inner| inner.bump(day, offer, aff, counter::DECLINED, 1)),
        )
    }

    fn lookup_conversion<'a>(
        &'a self,
        click_id: &'a ClickId,
        identity: &'a Identity,
    ) -> StoreFuture<'a, ConversionLookup> {
        ready(self.lock().map(|inner| {
            let now = Instant::now();
            ConversionLookup {
                click: inner
                    .clicks
                    .get(click_id)
                    .filter(|(_, expires)| *expires > now)
                    .map(|(click, _)| click.clone()),
                conversion: inner
                    .conversions
                    .get(&(click_id.clone(), identity.clone()))
                    .filter(|(_, expires)| *expires > now)
                    .map(|(record, _)| record.clone()),
            }
        }))
    }

    fn apply_conversion<'a>(
        &'a self,
        command: &'a ConversionCommand,
    ) -> StoreFuture<'a, ConversionOutcome> {
        ready(self.lock().map(|mut inner| {
            let now = Instant::now();
            let key = (command.click_id.clone(), command.identity.clone());
            let existing = inner
                .conversions
                .get(&key)
                .filter(|(_, expires)| *expires > now)
                .map(|(r, _)| r.clone());
            let Some(old) = existing else {
                let record = ConversionRecord {
                    conversion_id: command.new_conversion_id.clone(),
                    status: command.status,
                    payout: command.payout.unwrap_or(Money::ZERO),
                    revenue: command.revenue.unwrap_or(Money::ZERO),
                    day: command.today,
                    offer_id: command.offer_id.clone(),
                    aff_id: command.aff_id.clone(),
                };
                inner.count(&record, 1);
                let expires = now + Duration::from_secs(command.retention_secs);
                inner.conversions.insert(key, (record.clone(), expires));
                inner.sweep_now_and_then();
                return ConversionOutcome::Created(record);
            };
            if !old.status.can_move_to(command.status) {
                return ConversionOutcome::Duplicate(old);
            }
            if old.day != command.today && Some(old.day) != command.seen_day {
                return ConversionOutcome::Retry;
            }
            let new = ConversionRecord {
                status: command.status,
                payout: command.payout.unwrap_or(old.payout),
                revenue: command.revenue.unwrap_or(old.revenue),
                ..old.clone()
            };
            inner.count(&old, -1);
            inner.count(&new, 1);
            if let Some(entry) = inner.conversions.get_mut(&key) {
                entry.0 = new.clone();
            }
            ConversionOutcome::Updated {
                record: new,
                previous: old.status,
            }
        }))
    }

    fn put_offer<'a>(&'a self, offer: &'a Offer) -> StoreFuture<'a, ()> {
        ready(self.lock().map(|mut inner| {
            inner.offers.insert(offer.id.clone(), offer.clone());
            inner.version += 1;
        }))
    }

    fn put_affiliate<'a>(&'a self, affiliate: &'a Affiliate) -> StoreFuture<'a, ()> {
        ready(self.lock().map(|mut inner| {
            inner
                .affiliates
                .insert(affiliate.id.clone(), affiliate.clone());
            inner.version += 1;
        }))
    }

    fn config_version(&self) -> StoreFuture<'_, u64> {
        ready(self.lock().map(|inner| inner.version))
    }

    fn load_config(&self) -> StoreFuture<'_, ConfigData> {
        ready(self.lock().map(|inner| ConfigData {
            version: inner.version,
            offers: inner.offers.values().cloned().collect(),
            affiliates: inner.affiliates.values().cloned().collect(),
        }))
    }

    fn read_counters<'a>(&'a self, days: &'a [Day]) -> StoreFuture<'a, Vec<DayCounters>> {
        ready(self.lock().map(|inner| {
            days.iter()
                .map(|day| inner.counters.get(day).cloned().unwrap_or_default())
                .collect()
        }))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        ready(self.lock().map(|_| ()))
    }
}
