//! The embedded store for the one-command demo: everything in process memory,
//! nothing survives a restart.
//!
//! It keeps the same semantics as [`super::RedisStore`] (TTLs, exactly-once
//! crediting under concurrency, per-day counters) and passes the same
//! conformance suite; a single mutex makes each operation atomic.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::keys::counter_field;
use super::report::{Book, Tally, VALUES_PER_DAY};
use super::{
    AuditLine, AuditPage, AuditRetention, CapEntry, ConfigData, ConversionLookup, ConversionPage,
    ConversionQuery, DayCounters, DeliveryBacklog, DeliveryPage, DeliveryQuery, DeliveryScope,
    Lease, LogRetention, Position, PostbackLogKind, PostbackLogLine, RetryOutcome, Store,
    StoreError, StoreFuture, MAX_CONVERSION_SCAN,
};
use crate::domain::conversion::{
    ConversionCommand, ConversionEntry, ConversionOutcome, ConversionRecord, ConversionStatus,
    StatusChange, MAX_COUNTER_MICROS,
};
use crate::domain::counter::{Counter, Dimension};
use crate::domain::delivery::{
    AttemptRecord, AttemptReport, Delivery, DeliveryContext, DeliveryId, DeliveryOrder,
    DeliveryState,
};
use crate::domain::{
    unix_now, Advertiser, AdvertiserId, Affiliate, AffiliateId, ApiKey, Click, ClickId, Day,
    Identity, Money, Offer, OfferId,
};

/// Expired entries are swept after this many writes, bounding memory in a long demo.
const SWEEP_EVERY: u64 = 4096;

/// One offer's cap counters for one period, and when they expire.
type CapCounters = (HashMap<String, i64>, Option<Instant>);

#[derive(Default)]
struct Inner {
    /// Each click carries its own deadline (`expires_at`).
    clicks: HashMap<ClickId, Click>,
    conversions: HashMap<(ClickId, Identity), (ConversionRecord, Instant)>,
    /// Affiliate postback deliveries, with their place in the queue.
    deliveries: BTreeMap<DeliveryId, QueuedDelivery>,
    /// Per day, `offer|aff|counter` → value: 64-bit like Redis's counters.
    counters: HashMap<Day, HashMap<String, i64>>,
    /// The report counters (by hour and dimension value), written at once.
    report: Book,
    unique_visitors: HashMap<String, Instant>,
    caps: HashMap<(OfferId, String), CapCounters>,
    claims: HashMap<String, Instant>,
    postback_logs: HashMap<(Option<OfferId>, PostbackLogKind), (VecDeque<String>, Instant)>,
    offers: BTreeMap<OfferId, Offer>,
    affiliates: BTreeMap<AffiliateId, Affiliate>,
    advertisers: BTreeMap<AdvertiserId, Advertiser>,
    api_keys: BTreeMap<String, ApiKey>,
    /// API key id → last use, Unix seconds.
    key_use: HashMap<String, u64>,
    /// The audit log, oldest first.
    audit: VecDeque<(Position, String)>,
    /// What the conversion list shows beyond the record, per conversion.
    listed: HashMap<(ClickId, Identity), Listed>,
    /// Conversion id → the conversion (the Redis store's `vk`).
    conversion_ids: HashMap<String, (ClickId, Identity)>,
    version: u64,
    writes: u64,
}

impl Inner {
    fn bump(&mut self, day: Day, offer: &OfferId, aff: &AffiliateId, counter: Counter, by: i64) {
        let value = self
            .counters
            .entry(day)
            .or_default()
            .entry(counter_field(offer.as_str(), aff.as_str(), counter))
            .or_insert(0);
        *value = value.saturating_add(by);
    }

    fn counter(&self, day: Day, offer: &OfferId, aff: &AffiliateId, counter: Counter) -> i64 {
        self.counters
            .get(&day)
            .and_then(|c| c.get(&counter_field(offer.as_str(), aff.as_str(), counter)))
            .copied()
            .unwrap_or(0)
    }

    /// Whether counting `record` keeps every money counter it moves within
    /// [`MAX_COUNTER_MICROS`] (the credit script's check).
    fn fits(&self, record: &ConversionRecord) -> bool {
        let (day, offer, aff) = (record.day, &record.offer_id, &record.aff_id);
        let within = |counter, amount: Money| {
            i128::from(self.counter(day, offer, aff, counter)) + i128::from(amount.micros())
                <= i128::from(MAX_COUNTER_MICROS)
        };
        match record.status {
            ConversionStatus::Approved => {
                within(Counter::Payout, record.payout) && within(Counter::Revenue, record.revenue)
            }
            ConversionStatus::Pending => within(Counter::PendingPayout, record.payout),
            ConversionStatus::Rejected => true,
        }
    }

    /// Moves the counters of one conversion in or out of a status.
    fn count(&mut self, record: &ConversionRecord, sign: i64) {
        use crate::domain::ConversionStatus::*;
        let (day, offer, aff) = (record.day, record.offer_id.clone(), record.aff_id.clone());
        match record.status {
            Approved => {
                self.bump(day, &offer, &aff, Counter::Conversions, sign);
                self.bump(
                    day,
                    &offer,
                    &aff,
                    Counter::Payout,
                    sign * record.payout.micros(),
                );
                self.bump(
                    day,
                    &offer,
                    &aff,
                    Counter::Revenue,
                    sign * record.revenue.micros(),
                );
            }
            Pending => {
                self.bump(day, &offer, &aff, Counter::Pending, sign);
                self.bump(
                    day,
                    &offer,
                    &aff,
                    Counter::PendingPayout,
                    sign * record.payout.micros(),
                );
            }
            Rejected => self.bump(day, &offer, &aff, Counter::Rejected, sign),
        }
    }

    fn sweep_now_and_then(&mut self) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            let now = Instant::now();
            let unix = unix_now();
            self.clicks.retain(|_, click| !click.expired(unix));
            self.conversions.retain(|_, (_, expires)| *expires > now);
            let conversions = &self.conversions;
            self.listed.retain(|key, _| conversions.contains_key(key));
            self.conversion_ids
                .retain(|_, key| conversions.contains_key(key));
            self.deliveries.retain(|_, queued| queued.expires > now);
            self.unique_visitors.retain(|_, expires| *expires > now);
            self.claims.retain(|_, expires| *expires > now);
            self.caps
                .retain(|_, (_, expires)| expires.is_none_or(|e| e > now));
            self.postback_logs.retain(|_, (_, expires)| *expires > now);
        }
    }
}

/// What the conversion list shows of a conversion beyond its record.
struct Listed {
    created_at: u64,
    history: Vec<StatusChange>,
    context: DeliveryContext,
}

/// A delivery and what the Redis store keeps in its indexes.
struct QueuedDelivery {
    delivery: Delivery,
    /// Its queue score: due time, or lease while in flight; `None` once
    /// delivered or dead.
    due: Option<f64>,
    /// When it died, ms (the dead index's score).
    dead_at_ms: Option<u64>,
    /// The record's expiry.
    expires: Instant,
}

impl Inner {
    /// Queues the deliveries of `record` at its status, to the affiliate and
    /// to each destination of the order (the credit script's `deliver_all`).
    fn deliver(
        &mut self,
        click_id: &ClickId,
        record: &ConversionRecord,
        context: DeliveryContext,
        order: &DeliveryOrder,
        converted_at: u64,
    ) {
        let shard = click_id.shard();
        let affiliate = order.affiliate.then(|| {
            (
                DeliveryId::new(shard, &record.conversion_id, record.status),
                None,
            )
        });
        let destinations = order.destinations.iter().map(|destination| {
            (
                DeliveryId::to_destination(
                    shard,
                    &record.conversion_id,
                    record.status,
                    &destination.id,
                ),
                Some((destination.id.clone(), destination.kind)),
            )
        });
        let targets: Vec<_> = affiliate.into_iter().chain(destinations).collect();
        for (id, destination) in targets {
            let delivery = Delivery {
                id: id.clone(),
                conversion_id: record.conversion_id.clone(),
                click_id: click_id.as_str().to_owned(),
                offer_id: record.offer_id.clone(),
                aff_id: record.aff_id.clone(),
                status: record.status,
                destination,
                payout: record.payout,
                revenue: record.revenue,
                amount: order.amount,
                converted_at,
                context: context.clone(),
                state: DeliveryState::Pending,
                attempts: 0,
                run_attempts: 0,
                created_at_ms: order.now_ms,
                last_attempt_at_ms: None,
                next_attempt_at_ms: Some(order.now_ms),
                last_http_status: None,
                last_error: None,
                url: None,
            };
            self.deliveries.insert(
                id,
                QueuedDelivery {
                    delivery,
                    due: Some(order.now_ms as f64),
                    dead_at_ms: None,
                    expires: Instant::now() + Duration::from_secs(order.retention_secs),
                },
            );
        }
    }

    /// A conversion as the list shows it, if it has not expired.
    fn entry(&self, key: &(ClickId, Identity)) -> Option<ConversionEntry> {
        let (record, expires) = self.conversions.get(key)?;
        if *expires <= Instant::now() {
            return None;
        }
        let listed = self.listed.get(key)?;
        Some(ConversionEntry {
            record: record.clone(),
            click_id: key.0.clone(),
            identity: key.1.clone(),
            context: listed.context.clone(),
            created_at: listed.created_at,
            history: listed.history.clone(),
        })
    }

    /// A delivery that has not expired.
    fn live_delivery(&mut self, id: &DeliveryId) -> Option<&mut QueuedDelivery> {
        let now = Instant::now();
        self.deliveries.get_mut(id).filter(|q| q.expires > now)
    }
}

/// A thread panicked while it held the memory store's lock.
#[derive(Debug, thiserror::Error)]
#[error("the memory store's lock is poisoned")]
struct Poisoned;

/// In-memory [`Store`].
pub struct MemoryStore {
    /// Everything, behind one lock: operations are short and never await while holding it.
    inner: Mutex<Inner>,
    /// Distinct values of a report dimension counted per day (see
    /// [`super::report`]).
    report_values_per_day: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            report_values_per_day: VALUES_PER_DAY,
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same store counting at most `n` distinct values of each report
    /// dimension per day (tests of the "other" bucket).
    pub fn with_report_values_per_day(mut self, n: usize) -> Self {
        self.report_values_per_day = n;
        self
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::unavailable("locking the memory store", Poisoned))
    }
}

fn ready<'a, T: Send + 'a>(result: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(result))
}

impl Store for MemoryStore {
    fn record_click<'a>(
        &'a self,
        click: &'a Click,
        unique_window_secs: u64,
    ) -> StoreFuture<'a, bool> {
        ready(self.lock().map(|mut inner| {
            let now = Instant::now();
            let marker = format!("{}|{}|{}", click.offer_id, click.aff_id, click.visitor);
            let unique = unique_window_secs == 0
                || match inner.unique_visitors.get(&marker) {
                    Some(expires) if *expires > now => false,
                    _ => {
                        let expires = now + Duration::from_secs(unique_window_secs);
                        inner.unique_visitors.insert(marker, expires);
                        true
                    }
                };
            inner.clicks.insert(click.id.clone(), click.clone());
            let day = Day::from_unix(click.created_at);
            inner.bump(day, &click.offer_id, &click.aff_id, Counter::Clicks, 1);
            if unique {
                inner.bump(
                    day,
                    &click.offer_id,
                    &click.aff_id,
                    Counter::UniqueClicks,
                    1,
                );
            }
            let mut tally = Tally::default();
            tally.click(click, unique);
            inner.report.apply(&tally, self.report_values_per_day);
            inner.sweep_now_and_then();
            unique
        }))
    }

    fn count_untracked_click<'a>(
        &'a self,
        offer: &'a OfferId,
        aff: &'a AffiliateId,
        at: u64,
        counter: Counter,
    ) -> StoreFuture<'a, ()> {
        ready(self.lock().map(|mut inner| {
            inner.bump(Day::from_unix(at), offer, aff, counter, 1);
            let mut tally = Tally::default();
            tally.untracked(offer, aff, at, counter);
            inner.report.apply(&tally, self.report_values_per_day);
        }))
    }

    fn lookup_conversion<'a>(
        &'a self,
        click_id: &'a ClickId,
        identity: &'a Identity,
        now: u64,
    ) -> StoreFuture<'a, ConversionLookup> {
        ready(self.lock().map(|inner| {
            let instant = Instant::now();
            ConversionLookup {
                click: inner
                    .clicks
                    .get(click_id)
                    .filter(|click| !click.expired(now))
                    .cloned(),
                conversion: inner
                    .conversions
                    .get(&(click_id.clone(), identity.clone()))
                    .filter(|(_, expires)| *expires > instant)
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
                if command.must_exist {
                    return ConversionOutcome::Missing;
                }
                let record = ConversionRecord {
                    conversion_id: command.new_conversion_id.clone(),
                    status: command.status,
                    payout: command.payout.unwrap_or(Money::ZERO),
                    revenue: command.revenue.unwrap_or(Money::ZERO),
                    day: command.today,
                    offer_id: command.offer_id.clone(),
                    aff_id: command.aff_id.clone(),
                    reason: command.reason,
                };
                if !inner.fits(&record) {
                    return ConversionOutcome::TooLarge;
                }
                inner.count(&record, 1);
                let mut tally = Tally::default();
                tally.created(command, &record);
                inner.report.apply(&tally, self.report_values_per_day);
                let expires = now + Duration::from_secs(command.retention_secs);
                inner
                    .conversions
                    .insert(key.clone(), (record.clone(), expires));
                inner
                    .conversion_ids
                    .insert(record.conversion_id.clone(), key.clone());
                inner.listed.insert(
                    key.clone(),
                    Listed {
                        created_at: command.now,
                        history: vec![StatusChange {
                            status: record.status,
                            at: command.now,
                        }],
                        context: command.context.clone(),
                    },
                );
                if let Some(order) = &command.delivery {
                    if record.status != ConversionStatus::Rejected {
                        let context = command.context.clone();
                        inner.deliver(&command.click_id, &record, context, order, command.now);
                    }
                }
                inner.sweep_now_and_then();
                return ConversionOutcome::Created(record);
            };
            if !old.status.can_move_to(command.status) {
                return ConversionOutcome::Duplicate(old);
            }
            if command.delivery.is_some()
                && command.seen_conversion_id.as_deref() != Some(old.conversion_id.as_str())
            {
                return ConversionOutcome::Retry;
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
            if !inner.fits(&new) {
                inner.count(&old, 1);
                return ConversionOutcome::TooLarge;
            }
            inner.count(&new, 1);
            if let Some(listed) = inner.listed.get(&key) {
                let (at, context) = (listed.created_at, listed.context.clone());
                let mut tally = Tally::default();
                for (record, sign) in [(&old, -1), (&new, 1)] {
                    tally.conversion(
                        at,
                        &record.offer_id,
                        &record.aff_id,
                        &command.identity,
                        &context,
                        record.status,
                        record.payout,
                        record.revenue,
                        sign,
                    );
                }
                inner.report.apply(&tally, self.report_values_per_day);
            }
            if let Some(entry) = inner.conversions.get_mut(&key) {
                entry.0 = new.clone();
            }
            if let Some(listed) = inner.listed.get_mut(&key) {
                listed.history.push(StatusChange {
                    status: new.status,
                    at: command.now,
                });
            }
            if let Some(order) = &command.delivery {
                // The context kept from the conversion's creation (the
                // credit script's `j`).
                let (context, converted_at) = inner
                    .listed
                    .get(&key)
                    .map(|listed| (listed.context.clone(), listed.created_at))
                    .unwrap_or_else(|| (command.context.clone(), command.now));
                inner.deliver(&command.click_id, &new, context, order, converted_at);
            }
            ConversionOutcome::Updated {
                record: new,
                previous: old.status,
            }
        }))
    }

    fn reserve_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        entries: &'a [CapEntry],
    ) -> StoreFuture<'a, Option<usize>> {
        ready(self.lock().map(|mut inner| {
            let now = Instant::now();
            let current = |inner: &Inner, entry: &CapEntry| {
                inner
                    .caps
                    .get(&(offer.clone(), entry.period_id.clone()))
                    .filter(|(_, expires)| expires.is_none_or(|e| e > now))
                    .and_then(|(fields, _)| fields.get(&entry.field).copied())
                    .unwrap_or(0)
            };
            if let Some(full) = entries
                .iter()
                .position(|e| current(&inner, e) + e.increment > e.limit)
            {
                return Some(full);
            }
            for entry in entries {
                let expires = entry.ttl_secs.map(|t| now + Duration::from_secs(t));
                let slot = inner
                    .caps
                    .entry((offer.clone(), entry.period_id.clone()))
                    .or_insert_with(|| (HashMap::new(), expires));
                if slot.1.is_some_and(|e| e <= now) {
                    *slot = (HashMap::new(), expires);
                }
                slot.1 = expires;
                *slot.0.entry(entry.field.clone()).or_insert(0) += entry.increment;
            }
            None
        }))
    }

    fn release_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        entries: &'a [CapEntry],
    ) -> StoreFuture<'a, ()> {
        ready(self.lock().map(|mut inner| {
            for entry in entries {
                if let Some((fields, _)) = inner
                    .caps
                    .get_mut(&(offer.clone(), entry.period_id.clone()))
                {
                    *fields.entry(entry.field.clone()).or_insert(0) -= entry.increment;
                }
            }
        }))
    }

    fn read_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        period_ids: &'a [String],
    ) -> StoreFuture<'a, Vec<HashMap<String, i64>>> {
        ready(self.lock().map(|inner| {
            let now = Instant::now();
            period_ids
                .iter()
                .map(|period| {
                    inner
                        .caps
                        .get(&(offer.clone(), period.clone()))
                        .filter(|(_, expires)| expires.is_none_or(|e| e > now))
                        .map(|(fields, _)| fields.clone())
                        .unwrap_or_default()
                })
                .collect()
        }))
    }

    fn claim<'a>(&'a self, token: &'a str, ttl_secs: u64) -> StoreFuture<'a, bool> {
        ready(self.lock().map(|mut inner| {
            let now = Instant::now();
            match inner.claims.get(token) {
                Some(expires) if *expires > now => false,
                _ => {
                    inner
                        .claims
                        .insert(token.to_owned(), now + Duration::from_secs(ttl_secs));
                    true
                }
            }
        }))
    }

    fn release_claim<'a>(&'a self, token: &'a str) -> StoreFuture<'a, ()> {
        ready(self.lock().map(|mut inner| {
            inner.claims.remove(token);
        }))
    }

    fn append_postback_logs<'a>(
        &'a self,
        entries: Vec<PostbackLogLine>,
        retention: LogRetention,
    ) -> StoreFuture<'a, ()> {
        ready(self.lock().map(|mut inner| {
            let now = Instant::now();
            let expires = now + Duration::from_secs(retention.ttl_secs);
            for line in entries {
                let (log, log_expires) = inner
                    .postback_logs
                    .entry((line.offer, line.kind))
                    .or_insert_with(|| (VecDeque::new(), expires));
                if *log_expires <= now {
                    log.clear();
                }
                log.push_front(line.json);
                log.truncate(retention.keep);
                *log_expires = expires;
            }
            inner.sweep_now_and_then();
        }))
    }

    fn read_postback_log<'a>(
        &'a self,
        offer: Option<&'a OfferId>,
        kind: PostbackLogKind,
        limit: usize,
    ) -> StoreFuture<'a, Vec<String>> {
        ready(self.lock().map(|inner| {
            let now = Instant::now();
            inner
                .postback_logs
                .get(&(offer.cloned(), kind))
                .filter(|(_, expires)| *expires > now)
                .map(|(log, _)| log.iter().take(limit).cloned().collect())
                .unwrap_or_default()
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

    fn put_advertiser<'a>(&'a self, advertiser: &'a Advertiser) -> StoreFuture<'a, ()> {
        ready(self.lock().map(|mut inner| {
            inner
                .advertisers
                .insert(advertiser.id.clone(), advertiser.clone());
            inner.version += 1;
        }))
    }

    fn put_api_key<'a>(&'a self, key: &'a ApiKey) -> StoreFuture<'a, ()> {
        ready(self.lock().map(|mut inner| {
            inner.api_keys.insert(key.id.clone(), key.clone());
            inner.version += 1;
        }))
    }

    fn delete_api_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        ready(self.lock().map(|mut inner| {
            inner.key_use.remove(id);
            inner.version += 1;
            inner.api_keys.remove(id).is_some()
        }))
    }

    fn record_key_use<'a>(&'a self, uses: Vec<(String, u64)>) -> StoreFuture<'a, ()> {
        ready(self.lock().map(|mut inner| inner.key_use.extend(uses)))
    }

    fn read_key_use(&self) -> StoreFuture<'_, HashMap<String, u64>> {
        ready(self.lock().map(|inner| inner.key_use.clone()))
    }

    fn append_audit<'a>(
        &'a self,
        line: &'a AuditLine,
        retention: AuditRetention,
    ) -> StoreFuture<'a, ()> {
        ready(self.lock().map(|mut inner| {
            let position = Position {
                score: line.at_ms,
                id: line.id.clone(),
            };
            let at = inner.audit.partition_point(|(p, _)| *p < position);
            inner.audit.insert(at, (position, line.json.clone()));
            let oldest_ms = line
                .at_ms
                .saturating_sub(retention.max_age_secs.saturating_mul(1000));
            inner.audit.retain(|(p, _)| p.score >= oldest_ms);
            while inner.audit.len() > retention.keep {
                inner.audit.pop_front();
            }
        }))
    }

    fn list_audit<'a>(
        &'a self,
        limit: usize,
        after: Option<&'a Position>,
    ) -> StoreFuture<'a, AuditPage> {
        ready(self.lock().map(|inner| {
            let mut entries: Vec<&(Position, String)> = inner
                .audit
                .iter()
                .rev()
                .filter(|(p, _)| after.is_none_or(|after| p < after))
                .take(limit + 1)
                .collect();
            let next = if entries.len() > limit {
                entries.truncate(limit);
                entries.last().map(|(p, _)| p.clone())
            } else {
                None
            };
            AuditPage {
                entries: entries.into_iter().map(|(_, json)| json.clone()).collect(),
                next,
            }
        }))
    }

    fn list_conversions<'a>(
        &'a self,
        query: &'a ConversionQuery,
    ) -> StoreFuture<'a, ConversionPage> {
        ready(self.lock().map(|inner| {
            let mut candidates: Vec<(Position, &(ClickId, Identity))> = inner
                .listed
                .iter()
                .filter(|(_, listed)| (query.from..query.to).contains(&listed.created_at))
                .filter_map(|(key, listed)| {
                    let (record, _) = inner.conversions.get(key)?;
                    let position = Position {
                        score: listed.created_at,
                        id: record.conversion_id.clone(),
                    };
                    query
                        .after
                        .as_ref()
                        .is_none_or(|after| position < *after)
                        .then_some((position, key))
                })
                .collect();
            candidates.sort_by(|a, b| b.0.cmp(&a.0));
            let mut found = Vec::new();
            let mut last_scanned = None;
            let mut exhausted = true;
            for (scanned, (position, key)) in candidates.into_iter().enumerate() {
                if found.len() > query.limit || scanned >= MAX_CONVERSION_SCAN {
                    exhausted = false;
                    break;
                }
                if let Some(entry) = inner.entry(key).filter(|e| query.filter.matches(e)) {
                    found.push((position.clone(), entry));
                }
                last_scanned = Some(position);
            }
            let next = if found.len() > query.limit {
                found.truncate(query.limit);
                found.last().map(|(p, _)| p.clone())
            } else if exhausted {
                None
            } else {
                last_scanned
            };
            ConversionPage {
                conversions: found.into_iter().map(|(_, e)| e).collect(),
                next,
            }
        }))
    }

    fn find_conversion<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ConversionEntry>> {
        ready(self.lock().map(|inner| {
            let key = inner.conversion_ids.get(id)?;
            inner.entry(key)
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
            advertisers: inner.advertisers.values().cloned().collect(),
            keys: inner.api_keys.values().cloned().collect(),
        }))
    }

    fn read_counters<'a>(&'a self, days: &'a [Day]) -> StoreFuture<'a, Vec<DayCounters>> {
        ready(self.lock().map(|inner| {
            days.iter()
                .map(|day| {
                    inner
                        .counters
                        .get(day)
                        .map(|fields| {
                            fields
                                .iter()
                                .map(|(field, value)| (field.clone(), i128::from(*value)))
                                .collect::<DayCounters>()
                        })
                        .unwrap_or_default()
                })
                .collect()
        }))
    }

    fn read_report_counters<'a>(
        &'a self,
        days: &'a [Day],
        dimension: Option<Dimension>,
    ) -> StoreFuture<'a, Vec<DayCounters>> {
        ready(self.lock().map(|inner| inner.report.read(days, dimension)))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        ready(self.lock().map(|_| ()))
    }

    fn claim_deliveries<'a>(
        &'a self,
        shard: char,
        now_ms: u64,
        lease: Lease,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Result<Delivery, DeliveryId>>> {
        ready(self.lock().map(|mut inner| {
            let now = Instant::now();
            let mut due: Vec<(f64, DeliveryId)> = inner
                .deliveries
                .iter()
                .filter(|(id, q)| id.shard() == shard && q.expires > now)
                .filter_map(|(id, q)| {
                    q.due
                        .filter(|d| *d <= now_ms as f64)
                        .map(|d| (d, id.clone()))
                })
                .collect();
            due.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            due.truncate(limit);
            due.into_iter()
                .filter_map(|(_, id)| {
                    let queued = inner.deliveries.get_mut(&id)?;
                    queued.due = Some(lease.0);
                    Some(Ok(queued.delivery.clone()))
                })
                .collect()
        }))
    }

    fn finish_delivery<'a>(
        &'a self,
        id: &'a DeliveryId,
        lease: Lease,
        report: &'a AttemptReport,
    ) -> StoreFuture<'a, bool> {
        ready(self.lock().map(|mut inner| {
            let Some(queued) = inner.live_delivery(id) else {
                return false;
            };
            if queued.due != Some(lease.0) {
                return false;
            }
            let d = &mut queued.delivery;
            let (http_status, error) = match &report.record {
                AttemptRecord::Gone => {
                    inner.deliveries.remove(id);
                    return true;
                }
                AttemptRecord::Postponed { retry_at_ms } => {
                    queued.due = Some(*retry_at_ms as f64);
                    return true;
                }
                AttemptRecord::Delivered { http_status } => {
                    d.state = DeliveryState::Delivered;
                    d.next_attempt_at_ms = None;
                    queued.due = None;
                    (Some(*http_status), None)
                }
                AttemptRecord::Failed {
                    http_status,
                    error,
                    retry_at_ms,
                } => {
                    d.next_attempt_at_ms = Some(*retry_at_ms);
                    queued.due = Some(*retry_at_ms as f64);
                    (*http_status, Some(error.clone()))
                }
                AttemptRecord::Dead { http_status, error } => {
                    d.state = DeliveryState::Dead;
                    d.next_attempt_at_ms = None;
                    queued.due = None;
                    queued.dead_at_ms = Some(report.now_ms);
                    (*http_status, Some(error.clone()))
                }
            };
            d.attempts += 1;
            d.run_attempts += 1;
            d.last_attempt_at_ms = Some(report.now_ms);
            d.last_http_status = http_status;
            d.last_error = error.filter(|e| !e.is_empty());
            d.url = report.url.clone().filter(|u| !u.is_empty());
            queued.expires = Instant::now() + Duration::from_secs(report.retention_secs);
            true
        }))
    }

    fn retry_delivery<'a>(
        &'a self,
        id: &'a DeliveryId,
        now_ms: u64,
        retention_secs: u64,
    ) -> StoreFuture<'a, RetryOutcome> {
        ready(self.lock().map(|mut inner| {
            let Some(queued) = inner.live_delivery(id) else {
                return RetryOutcome::NotFound;
            };
            if queued.delivery.state == DeliveryState::Delivered {
                return RetryOutcome::AlreadyDelivered;
            }
            queued.delivery.state = DeliveryState::Pending;
            queued.delivery.run_attempts = 0;
            queued.delivery.next_attempt_at_ms = Some(now_ms);
            queued.due = Some(now_ms as f64);
            queued.dead_at_ms = None;
            queued.expires = Instant::now() + Duration::from_secs(retention_secs);
            RetryOutcome::Queued
        }))
    }

    fn list_deliveries<'a>(&'a self, query: &'a DeliveryQuery) -> StoreFuture<'a, DeliveryPage> {
        ready(self.lock().map(|inner| {
            let now = Instant::now();
            let mut entries: Vec<(Position, &Delivery)> = inner
                .deliveries
                .values()
                .filter(|q| q.expires > now)
                .filter_map(|q| {
                    let d = &q.delivery;
                    let score = match &query.scope {
                        DeliveryScope::Affiliate(aff) => {
                            (d.aff_id == *aff && d.destination.is_none()).then_some(d.created_at_ms)
                        }
                        DeliveryScope::Offer(offer) => {
                            (d.offer_id == *offer).then_some(d.created_at_ms)
                        }
                        DeliveryScope::Pending => {
                            (d.state == DeliveryState::Pending).then_some(d.created_at_ms)
                        }
                        DeliveryScope::Dead => {
                            q.dead_at_ms.filter(|_| d.state == DeliveryState::Dead)
                        }
                    }?;
                    let cursor = Position {
                        score,
                        id: d.id.as_str().to_owned(),
                    };
                    Some((cursor, d))
                })
                .filter(|(c, _)| query.after.as_ref().is_none_or(|after| c < after))
                .collect();
            entries.sort_by(|(a, _), (b, _)| b.cmp(a));
            let next = (entries.len() > query.limit)
                .then(|| entries[query.limit - 1].0.clone())
                .filter(|_| query.limit > 0);
            entries.truncate(query.limit);
            DeliveryPage {
                deliveries: entries.into_iter().map(|(_, d)| d.clone()).collect(),
                next,
            }
        }))
    }

    fn delivery_backlog(&self) -> StoreFuture<'_, DeliveryBacklog> {
        ready(self.lock().map(|inner| {
            let now = Instant::now();
            let pending = inner
                .deliveries
                .values()
                .filter(|q| q.expires > now && q.delivery.state == DeliveryState::Pending);
            let mut backlog = DeliveryBacklog::default();
            for q in pending {
                backlog.pending += 1;
                let created = q.delivery.created_at_ms;
                backlog.oldest_created_ms = Some(
                    backlog
                        .oldest_created_ms
                        .map_or(created, |o| o.min(created)),
                );
            }
            backlog
        }))
    }
}
