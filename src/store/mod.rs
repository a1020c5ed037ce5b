//! All data access goes through the [`Store`] trait.
//!
//! Two implementations pass the same conformance suite
//! (`tests/store_conformance.rs`): [`RedisStore`] for production and
//! [`MemoryStore`] for the one-command demo. Routes never see Redis commands
//! and the store never sees HTTP types.

pub mod keys;
pub mod memory;
pub mod redis;
pub mod report;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;

use crate::domain::conversion::{
    ConversionCommand, ConversionEntry, ConversionOutcome, ConversionRecord,
};
use crate::domain::counter::{Counter, Dimension};
use crate::domain::delivery::{AttemptReport, Delivery, DeliveryId};
use crate::domain::{
    Advertiser, Affiliate, AffiliateId, ApiKey, Click, ClickId, ConversionStatus, Day, Identity,
    Offer, OfferId,
};

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// The error a store failure comes from (a Redis error, a pool error), kept
/// whole for the log: the source chain is never flattened into a string.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, refused, or answered an error: the caller should degrade
    /// or ask for a retry.
    #[error("store unavailable: {context}")]
    Unavailable {
        /// What clickback was doing.
        context: &'static str,
        /// What failed underneath.
        #[source]
        source: Cause,
    },
    /// No answer within the bound on one operation.
    #[error("store gave no answer within {0:?}")]
    TimedOut(std::time::Duration),
    /// The store answered something clickback never writes.
    #[error("store returned unexpected data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A failure of `context` caused by `source`.
    pub fn unavailable(context: &'static str, source: impl Into<Cause>) -> Self {
        Self::Unavailable {
            context,
            source: source.into(),
        }
    }

    /// Whether a retry may succeed (unreachable or slow, not corrupt).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::TimedOut(_))
    }
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
    /// Every advertiser.
    pub advertisers: Vec<Advertiser>,
    /// Every API key that has not been revoked.
    pub keys: Vec<ApiKey>,
}

/// What a postback needs to know before it decides anything.
#[derive(Clone, Debug, Default)]
pub struct ConversionLookup {
    /// The click, if it has not expired.
    pub click: Option<Click>,
    /// The conversion with the postback's identity, if one exists.
    pub conversion: Option<ConversionRecord>,
}

/// One day's counters summed over all shards: field `offer|aff|metric` →
/// value. Each stored counter is an `i64`; their sum over 64 shards is kept
/// in an `i128` so that it can never wrap.
pub type DayCounters = HashMap<String, i128>;

/// The two logs of an offer's postbacks. Refusals (a wrong token, a
/// forbidden IP, a bad signature, unreadable input) have a list of their own,
/// so that anyone who knows a click id cannot flush the record of accepted
/// postbacks by sending refused ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PostbackLogKind {
    /// Postbacks answered 200: credited, pending, duplicate, updated, rejected by a rule.
    Accepted,
    /// Postbacks answered 4xx or 5xx.
    Refused,
}

impl PostbackLogKind {
    /// The name used in keys and in the API's `kind` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Refused => "refused",
        }
    }
}

/// One entry for a postback log: which log, and the entry's JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostbackLogLine {
    /// The offer the postback concerned; `None` when it could not be told
    /// (an unknown click id, an unreadable request).
    pub offer: Option<OfferId>,
    /// Accepted or refused.
    pub kind: PostbackLogKind,
    /// The entry, JSON.
    pub json: String,
}

/// How many entries each postback log keeps, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRetention {
    /// Newest entries kept per log.
    pub keep: usize,
    /// A log nobody writes to for this long disappears.
    pub ttl_secs: u64,
}

/// One counter a new conversion moves under a cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapEntry {
    /// `d20261123`, `m202611` or `l`.
    pub period_id: String,
    /// Field in the period's cap hash: `o:cv`, `a:py:<aff>`, …
    pub field: String,
    /// What this conversion adds (1, or its payout in micro-units).
    pub increment: i64,
    /// The cap.
    pub limit: i64,
    /// Lifetime of the period's hash, if it expires.
    pub ttl_secs: Option<u64>,
}

/// A delivery's lease: its queue score while a worker holds it, the lease's
/// end in milliseconds plus a random fraction, so that no two claims of one
/// delivery share a lease and a worker whose lease ran out cannot overwrite
/// the report of the worker that took the delivery over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lease(pub f64);

impl Lease {
    /// A lease ending at `until_ms`, told apart from others by `salt` (< 1).
    pub fn until(until_ms: u64, salt: f64) -> Self {
        // Scores are doubles: whole milliseconds up to 2^53 are exact, and a
        // thousandth of a millisecond still is for the next 280 years.
        let fraction = (salt.clamp(0.0, 0.999) * 1000.0).floor() / 1000.0;
        Self(until_ms as f64 + fraction)
    }

    /// The lease as Redis reads a score: the shortest text that parses back
    /// to the same double.
    pub fn score(self) -> String {
        format!("{}", self.0)
    }
}

/// What an operator's retry of a delivery found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Due now, with the whole schedule ahead.
    Queued,
    /// Already delivered: nothing to do.
    AlreadyDelivered,
    /// No such delivery (never was, or expired).
    NotFound,
}

/// Which deliveries to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryScope {
    /// Every delivery to one affiliate, newest first.
    Affiliate(AffiliateId),
    /// Every delivery of one offer's conversions (affiliate postbacks and
    /// destinations), newest first.
    Offer(OfferId),
    /// Every pending delivery, newest first.
    Pending,
    /// Every dead delivery, most recently dead first.
    Dead,
}

/// A listing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Whose or which deliveries.
    pub scope: DeliveryScope,
    /// Entries at most.
    pub limit: usize,
    /// Start after this entry (the previous page's `next`).
    pub after: Option<Position>,
}

/// One page of deliveries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryPage {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<Position>,
}

/// The size of the delivery queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryBacklog {
    /// Pending deliveries.
    pub pending: u64,
    /// When the oldest pending delivery was queued, ms.
    pub oldest_created_ms: Option<u64>,
}

/// A position in a listing ordered newest first by a score (a time) and,
/// within one score, by id: the next page starts after it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The index score: creation time (conversions: Unix seconds; audit
    /// entries and deliveries: milliseconds; dead deliveries: time of death).
    pub score: u64,
    /// The entry's id, which orders entries of one score.
    pub id: String,
}

impl Position {
    /// `<score>:<id>`, the `next_cursor` of the API.
    pub fn to_cursor(&self) -> String {
        format!("{}:{}", self.score, self.id)
    }

    /// Reads a `next_cursor` back; `None` if it is not one.
    pub fn from_cursor(raw: &str) -> Option<Self> {
        let (score, id) = raw.split_once(':')?;
        let valid_id = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        let score = score.parse().ok()?;
        valid_id.then(|| Self {
            score,
            id: id.to_owned(),
        })
    }
}

/// Which conversions a listing shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConversionFilter {
    /// Only conversions of these offers (an advertiser's); `None`: any.
    pub offers: Option<BTreeSet<OfferId>>,
    /// Only this affiliate's.
    pub aff_id: Option<AffiliateId>,
    /// Only conversions in this status now.
    pub status: Option<ConversionStatus>,
    /// Only conversions of this goal (their identity's, or the one they
    /// kept beside a txid).
    pub goal: Option<String>,
}

impl ConversionFilter {
    /// Whether `entry` is shown.
    pub fn matches(&self, entry: &ConversionEntry) -> bool {
        let record = &entry.record;
        self.offers
            .as_ref()
            .is_none_or(|offers| offers.contains(&record.offer_id))
            && self.aff_id.as_ref().is_none_or(|a| *a == record.aff_id)
            && self.status.is_none_or(|s| s == record.status)
            && self.goal.as_ref().is_none_or(|g| match &entry.identity {
                Identity::Goal(goal) => goal == g,
                Identity::Txid(_) => *g == entry.context.goal,
            })
    }
}

/// Most index entries one listing request reads before it answers a short
/// page with a `next` to go on from: a filter that matches little cannot
/// make one request read a year of conversions.
pub const MAX_CONVERSION_SCAN: usize = 10_000;

/// How long the conversion index remembers a conversion: the longest
/// attribution window plus the 90 days a conversion outlives its click.
/// Older entries are dropped a few at a time by the credit script; entries
/// whose conversion expired sooner are skipped when read.
pub const CONVERSION_INDEX_SECS: u64 =
    crate::domain::offer::MAX_ATTRIBUTION_WINDOW_SECS + 90 * 86_400;

/// A conversion listing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversionQuery {
    /// Created at or after, Unix seconds.
    pub from: u64,
    /// Created before, Unix seconds.
    pub to: u64,
    /// Which conversions.
    pub filter: ConversionFilter,
    /// Entries at most.
    pub limit: usize,
    /// Start after this entry (the previous page's `next`).
    pub after: Option<Position>,
}

/// One page of conversions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConversionPage {
    /// Newest first.
    pub conversions: Vec<ConversionEntry>,
    /// Where the next page starts; `None` at the end. A page may be short
    /// (even empty) with a `next` when [`MAX_CONVERSION_SCAN`] entries were
    /// read without filling it.
    pub next: Option<Position>,
}

/// One entry of the audit log, as the store files it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditLine {
    /// Unique, orders entries of one millisecond.
    pub id: String,
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// The entry, JSON.
    pub json: String,
}

/// How much of the audit log is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditRetention {
    /// Newest entries kept.
    pub keep: usize,
    /// Entries older than this are dropped, seconds.
    pub max_age_secs: u64,
}

/// One page of the audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditPage {
    /// Entries' JSON, newest first.
    pub entries: Vec<String>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<Position>,
}

/// Persistence for clicks, conversions, counters and configuration.
pub trait Store: Send + Sync + 'static {
    /// Stores a click until its attribution window closes and counts it, in
    /// one round trip. Decides, atomically, whether the visitor already
    /// clicked this offer and affiliate within `unique_window_secs` (0: never
    /// a duplicate) and answers whether the click was unique; the Redis store
    /// writes the unique count a moment later (`RedisStore::count_unique_click`), and a
    /// read of the counters waits for it. The click id's shard must be the
    /// first character of the visitor hash (as `click::track` mints it), so
    /// that the visitor's duplicate marker shares the click's hash slot.
    fn record_click<'a>(
        &'a self,
        click: &'a Click,
        unique_window_secs: u64,
    ) -> StoreFuture<'a, bool>;

    /// Counts a click that was not tracked (`counter` is
    /// [`Counter::Declined`] or [`Counter::Capped`]) at Unix second `at`;
    /// stores nothing about the visitor.
    fn count_untracked_click<'a>(
        &'a self,
        offer: &'a OfferId,
        aff: &'a AffiliateId,
        at: u64,
        counter: Counter,
    ) -> StoreFuture<'a, ()>;

    /// Reads the click and the conversion a postback refers to, in one round
    /// trip. A click whose attribution window has closed by `now` (Unix
    /// seconds) is not found.
    fn lookup_conversion<'a>(
        &'a self,
        click_id: &'a ClickId,
        identity: &'a Identity,
        now: u64,
    ) -> StoreFuture<'a, ConversionLookup>;

    /// Creates or moves a conversion and its counters atomically: exactly
    /// once, however many identical commands race. All or nothing: a command
    /// that would take a money counter past
    /// [`crate::domain::conversion::MAX_COUNTER_MICROS`] writes nothing and
    /// answers [`ConversionOutcome::TooLarge`].
    fn apply_conversion<'a>(
        &'a self,
        command: &'a ConversionCommand,
    ) -> StoreFuture<'a, ConversionOutcome>;

    /// Moves every cap counter of a new conversion, or none when one of them
    /// would go over its limit: `Some(i)` names the first full entry.
    fn reserve_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        entries: &'a [CapEntry],
    ) -> StoreFuture<'a, Option<usize>>;

    /// Gives back a reservation whose conversion turned out to exist already.
    fn release_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        entries: &'a [CapEntry],
    ) -> StoreFuture<'a, ()>;

    /// The cap counters of an offer for each period id given.
    fn read_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        period_ids: &'a [String],
    ) -> StoreFuture<'a, Vec<HashMap<String, i64>>>;

    /// Claims a one-time token for `ttl_secs`; `false` if someone holds it.
    /// Used for postback signatures (a second use is a replay) and to let one
    /// of several identical postbacks decide a capped conversion alone.
    fn claim<'a>(&'a self, token: &'a str, ttl_secs: u64) -> StoreFuture<'a, bool>;

    /// Gives a claim back (the postback failed, or its decision is written).
    fn release_claim<'a>(&'a self, token: &'a str) -> StoreFuture<'a, ()>;

    /// Prepends entries to their postback logs, in order (the last becomes
    /// the newest), keeping the newest `retention.keep` of each log and
    /// letting a log expire `retention.ttl_secs` after its last entry. A
    /// batch, so that a busy server files many postbacks in one round trip.
    fn append_postback_logs<'a>(
        &'a self,
        entries: Vec<PostbackLogLine>,
        retention: LogRetention,
    ) -> StoreFuture<'a, ()>;

    /// The newest `limit` entries of one postback log, newest first.
    fn read_postback_log<'a>(
        &'a self,
        offer: Option<&'a OfferId>,
        kind: PostbackLogKind,
        limit: usize,
    ) -> StoreFuture<'a, Vec<String>>;

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

    /// The report counters of each UTC day, in the order given: by hour
    /// (`dimension` `None`, fields `HH|offer|aff|code`) or by hour and the
    /// dimension's value (fields `HH|offer|aff|code|value`, the value
    /// [`report::OTHER`] for the bucket past the day's cap). They are
    /// written a moment after the click or conversion
    /// ([`Store::flush`]); a read writes this process's first.
    fn read_report_counters<'a>(
        &'a self,
        days: &'a [Day],
        dimension: Option<Dimension>,
    ) -> StoreFuture<'a, Vec<DayCounters>>;

    /// Answers when the store is reachable (readiness).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Leases up to `limit` deliveries of `shard` that are due at `now_ms`
    /// until `lease` (a score unique to this claim; see [`Lease`]), and
    /// answers them with their records. A lease that ends without a report
    /// (the worker died) makes the delivery due again, for any worker of
    /// any instance. A due entry whose record has expired comes back as
    /// `Err(id)`, to be reported
    /// [`AttemptRecord::Gone`](crate::domain::delivery::AttemptRecord::Gone).
    fn claim_deliveries<'a>(
        &'a self,
        shard: char,
        now_ms: u64,
        lease: Lease,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Result<Delivery, DeliveryId>>>;

    /// Records how an attempt ended, if `lease` still holds the delivery;
    /// `false` when the lease was lost (it ended and another worker took
    /// the delivery): nothing is written then.
    fn finish_delivery<'a>(
        &'a self,
        id: &'a DeliveryId,
        lease: Lease,
        report: &'a AttemptReport,
    ) -> StoreFuture<'a, bool>;

    /// Queues a dead or pending delivery again, due at `now_ms`, with the
    /// whole retry schedule ahead of it.
    fn retry_delivery<'a>(
        &'a self,
        id: &'a DeliveryId,
        now_ms: u64,
        retention_secs: u64,
    ) -> StoreFuture<'a, RetryOutcome>;

    /// A page of deliveries, newest first.
    fn list_deliveries<'a>(&'a self, query: &'a DeliveryQuery) -> StoreFuture<'a, DeliveryPage>;

    /// How many deliveries are pending, and when the oldest was queued.
    fn delivery_backlog(&self) -> StoreFuture<'_, DeliveryBacklog>;

    /// Creates or replaces an advertiser and bumps the config version.
    fn put_advertiser<'a>(&'a self, advertiser: &'a Advertiser) -> StoreFuture<'a, ()>;

    /// Stores a new API key (its hash, never its secret) and bumps the
    /// config version.
    fn put_api_key<'a>(&'a self, key: &'a ApiKey) -> StoreFuture<'a, ()>;

    /// Deletes an API key and bumps the config version, so that every
    /// instance stops accepting it at its next config poll; `false` when
    /// there was no such key.
    fn delete_api_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;

    /// Records when keys were last used (key id → Unix seconds), without
    /// bumping the config version: a use is not a change of configuration.
    fn record_key_use<'a>(&'a self, uses: Vec<(String, u64)>) -> StoreFuture<'a, ()>;

    /// When each key was last used, as recorded.
    fn read_key_use(&self) -> StoreFuture<'_, HashMap<String, u64>>;

    /// Files one audit log entry, dropping entries past `retention`.
    fn append_audit<'a>(
        &'a self,
        line: &'a AuditLine,
        retention: AuditRetention,
    ) -> StoreFuture<'a, ()>;

    /// A page of the audit log, newest first.
    fn list_audit<'a>(
        &'a self,
        limit: usize,
        after: Option<&'a Position>,
    ) -> StoreFuture<'a, AuditPage>;

    /// A page of conversions, newest first by creation time, then by id.
    fn list_conversions<'a>(
        &'a self,
        query: &'a ConversionQuery,
    ) -> StoreFuture<'a, ConversionPage>;

    /// The conversion with this id, if it exists (not expired).
    fn find_conversion<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ConversionEntry>>;

    /// Writes what the store holds back to batch it and is due (the Redis
    /// store's unique-click counts at once, its report counts once they
    /// have gathered a quarter second). The background writer calls it
    /// whenever [`Store::write_behind_ready`] answers, and
    /// [`Store::flush_all`] at shutdown. Reads of the counters flush by
    /// themselves.
    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Answers when the store holds something back for [`Store::flush`] to
    /// write; a store that writes everything at once never answers.
    fn write_behind_ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::pending())
    }

    /// Writes everything held back now, whether its batch is due or not:
    /// at shutdown, so that nothing gathered is left behind.
    fn flush_all(&self) -> StoreFuture<'_, ()> {
        self.flush()
    }
}
