//! The production store: Redis through one multiplexed connection per
//! runtime thread (hot path) and a deadpool connection pool (bulk reads).
//!
//! Every operation is one round trip (a pipeline, a MULTI/EXEC or a script)
//! and is bounded by a timeout, so a stalled Redis degrades requests quickly
//! instead of piling them up. One write follows later: a unique click's
//! count, queued and summed (`RedisStore::count_unique_click`;
//! docs/architecture.md says why).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use super::keys::{counter_field, ClickLocation, Keys};
use super::{
    CapEntry, ConfigData, ConversionLookup, DayCounters, LogRetention, PostbackLogKind,
    PostbackLogLine, Store, StoreError, StoreFuture,
};
use crate::batch::BatchQueue;
use crate::domain::conversion::{
    ConversionCommand, ConversionOutcome, ConversionRecord, ConversionStatus, RejectReason,
    MAX_COUNTER_MICROS,
};
use crate::domain::counter::Counter;
use crate::domain::ids::random_shard;
use crate::domain::offer::OfferView;
use crate::domain::{
    unix_now, Affiliate, AffiliateId, Click, ClickId, Day, Identity, Money, Offer, OfferId,
};

/// The credit script, run by EVALSHA (falling back to EVAL after a Redis restart).
static CREDIT_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("scripts/credit.lua")));
/// The cap reservation script: every cap moves, or none.
static CAPS_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("scripts/reserve_caps.lua")));

/// Redis-backed [`Store`].
#[derive(Clone)]
pub struct RedisStore {
    /// Multiplexed connections, one per runtime (one per actix worker):
    /// concurrent commands are pipelined onto each automatically. Measured
    /// 3-4x the throughput of a pool of 16 or 64 connections for the click
    /// write (docs/PERFORMANCE.md). Each reconnects by itself after a Redis
    /// restart.
    hot: PerRuntimeConnections,
    /// Pooled connections for bulk reads (a year of stats is ~23,000
    /// commands): on the shared connection they would queue clicks behind
    /// them. A broken pooled connection is replaced on the next checkout.
    pool: Pool,
    /// Key builder under the configured prefix.
    keys: Keys,
    /// Upper bound for any single store operation.
    timeout: Duration,
    /// Unique-click counts on their way to Redis, `(stats key, field)` →
    /// increments (see [`RedisStore::count_unique_click`]).
    pending: Arc<BatchQueue<UniqueCounts>>,
    /// Click buckets this process has given an expiry, with the latest
    /// deadline it made sure of (see [`BucketDeadlines`]).
    bucket_deadlines: Arc<BucketDeadlines>,
}

/// The latest expiry (unix seconds) this process has made sure each click
/// bucket has: once `EXPIRE GT` has lengthened a bucket to a deadline, a
/// click whose window ends no later needs no `EXPIRE GT` of its own: one
/// command less per click for nearly every click. The `EXPIRE NX` that
/// gives a new bucket its first expiry is still sent with every click, so a
/// bucket never lives without one, even one deleted and written again.
/// (After such a deletion a click with a longer window than the one that
/// re-created the bucket could expire with it early; deleting live click
/// buckets loses clicks anyway.)
#[derive(Default)]
struct BucketDeadlines(std::sync::Mutex<HashMap<String, u64>>);

impl BucketDeadlines {
    /// Buckets remembered at most; past it the memory starts over (a few
    /// `EXPIRE GT`s again). The buckets of one hour are 64 shards × the
    /// configured buckets per shard (64 by default).
    const MAX: usize = 65_536;

    /// Whether a click that must live until `deadline` still needs its
    /// bucket lengthened.
    fn needs_lengthening(&self, bucket: &str, deadline: u64) -> bool {
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known.get(bucket).is_none_or(|&d| d < deadline)
    }

    /// Notes that `bucket` now expires at `deadline` or later.
    fn lengthened(&self, bucket: String, deadline: u64) {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= Self::MAX {
            known.clear();
        }
        let d = known.entry(bucket).or_insert(deadline);
        *d = (*d).max(deadline);
    }
}

impl RedisStore {
    /// Builds the pool; connects lazily, so clickback starts even while Redis is down.
    pub fn new(
        url: &str,
        keys: Keys,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let mut config = Config::from_url(url);
        config.pool = Some(PoolConfig {
            max_size: pool_size,
            timeouts: Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            },
            ..PoolConfig::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| StoreError::Unavailable(format!("invalid REDIS_URL: {e}")))?;
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid REDIS_URL: {e}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(250));
        let hot = PerRuntimeConnections::new(client, manager_config);
        Ok(Self {
            hot,
            pool,
            keys,
            timeout,
            pending: Arc::default(),
            bucket_deadlines: Arc::default(),
        })
    }

    /// Logs a warning when Redis would store click buckets as hashtables
    /// (~150 bytes a click) rather than listpacks (~110): the limits of
    /// deploy/redis.conf. Silent when Redis is down or refuses CONFIG (as
    /// some managed services do).
    pub async fn warn_about_memory_settings(&self) {
        let read = self.with_pooled_conn(|conn| {
            Box::pin(async move {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("hash-max-listpack-*")
                    .query_async::<HashMap<String, u64>>(conn)
                    .await
                    .map_err(unavailable)
            })
        });
        let Ok(config) = read.await else { return };
        for (name, wanted) in [
            ("hash-max-listpack-entries", 512),
            ("hash-max-listpack-value", 128),
        ] {
            if let Some(&actual) = config.get(name).filter(|&&v| v < wanted) {
                log::warn!(
                    "Redis {name} is {actual}; with {wanted} (deploy/redis.conf) clicks take ~30 % less memory"
                );
            }
        }
    }

    /// Runs `op` on this runtime's multiplexed connection within the timeout.
    async fn with_conn<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut ConnectionManager) -> StoreFuture<'c, T>,
    {
        let mut conn = self.hot.current()?;
        tokio::time::timeout(self.timeout, op(&mut conn))
            .await
            .map_err(|_| StoreError::Unavailable(format!("no answer within {:?}", self.timeout)))?
    }

    /// Queues a unique click's count for the background writer
    /// (`crate::background`), which calls [`Store::flush`].
    ///
    /// Whether a click is its visitor's first on an offer and affiliate is
    /// decided by Redis, atomically, in the click's own pipeline (`SET
    /// marker NX EX window`), but counting it needs that answer first: in
    /// one round trip only a Lua script can do both, and the script was a
    /// third of Redis's work per click (docs/PERFORMANCE.md). So the count
    /// follows: the writer sends whatever has queued up while its previous
    /// write was in flight, summed, one `HINCRBY` per offer, affiliate,
    /// shard and day instead of one per click.
    ///
    /// A read of the counters writes the queue first (and waits for a write
    /// in flight), so a process always reads its own counts; other processes
    /// see them a round trip later. If clickback stops without its shutdown
    /// flush, the unique counts still queued are lost (the clicks, their
    /// records and their `clk` counts are not). A failed write puts its
    /// counts back for the next one.
    fn count_unique_click(&self, stats_key: String, field: String) {
        self.pending
            .push(|counts| *counts.entry((stats_key, field)).or_insert(0) += 1);
    }

    /// Writes the queued unique-click counts, summed, in one pipeline.
    async fn write_pending_counts(&self) -> Result<(), StoreError> {
        let (_turn, counts) = self.pending.take().await;
        if counts.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for ((key, field), n) in &counts {
            pipe.hincr(key, field, *n).ignore();
        }
        let written = self
            .with_conn(move |conn| {
                Box::pin(async move { pipe.query_async::<()>(conn).await.map_err(unavailable) })
            })
            .await;
        if let Err(e) = &written {
            log::warn!("unique-click counts not written yet, will retry: {e}");
            self.pending.give_back(|queued| {
                for (counter, n) in counts {
                    *queued.entry(counter).or_insert(0) += n;
                }
            });
        }
        written
    }

    /// Runs `op` on a pooled connection of its own within the timeout.
    async fn with_pooled_conn<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut deadpool_redis::Connection) -> StoreFuture<'c, T>,
    {
        let work = async {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            op(&mut conn).await
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| StoreError::Unavailable(format!("no answer within {:?}", self.timeout)))?
    }
}

/// Days of counters read per round trip (64 `HGETALL`s a day).
const COUNTER_DAYS_PER_ROUND_TRIP: usize = 8;

/// One postback log: its offer (if known) and which of its lists.
type LogName = (Option<OfferId>, PostbackLogKind);

/// `(stats key, counter field)` → increments not yet written.
type UniqueCounts = HashMap<(String, String), i64>;

/// Hands out one lazily connected [`ConnectionManager`] per tokio runtime.
///
/// A multiplexed connection reads and writes its socket from a task on the
/// runtime that created it. One connection shared by all actix workers put
/// every click's Redis I/O on the main thread: each click crossed threads
/// twice and the main thread burned a core doing it (measured with
/// `top -H` under `benches/load.sh`). One connection per runtime keeps the
/// request, its Redis write and the response on the same worker thread.
/// A clone is the same store: same id, same liveness token, so it shares
/// the cached connections.
#[derive(Clone)]
struct PerRuntimeConnections {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Tells this store's cached connections apart from other stores' on the same thread.
    store_id: u64,
    /// Dropped with the store, so threads can drop its cached connections.
    alive: Arc<()>,
}

/// One cached connection of [`PerRuntimeConnections`].
struct CachedConnection {
    store_id: u64,
    runtime: tokio::runtime::Id,
    alive: Weak<()>,
    conn: ConnectionManager,
}

thread_local! {
    /// The connections this thread's runtime uses, at most one per live store.
    static CONNECTIONS: RefCell<Vec<CachedConnection>> = const { RefCell::new(Vec::new()) };
}

impl PerRuntimeConnections {
    fn new(client: redis::Client, config: ConnectionManagerConfig) -> Self {
        static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            client,
            config,
            store_id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(()),
        }
    }

    /// The connection of the calling runtime, created on first use.
    fn current(&self) -> Result<ConnectionManager, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| StoreError::Unavailable(format!("no async runtime: {e}")))?
            .id();
        CONNECTIONS.with_borrow_mut(|cached| {
            if let Some(found) = cached
                .iter()
                .find(|c| c.store_id == self.store_id && c.runtime == runtime)
            {
                return Ok(found.conn.clone());
            }
            // Connections of a finished runtime or a dropped store are dead weight.
            cached.retain(|c| c.runtime == runtime && c.alive.strong_count() > 0);
            let conn =
                ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
                    .map_err(|e| StoreError::Unavailable(format!("cannot set up Redis: {e}")))?;
            cached.push(CachedConnection {
                store_id: self.store_id,
                runtime,
                alive: Arc::downgrade(&self.alive),
                conn: conn.clone(),
            });
            Ok(conn)
        })
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// Reads a conversion hash (as returned by HGETALL) into a record.
fn conversion_from_fields(
    fields: &HashMap<String, String>,
) -> Result<Option<ConversionRecord>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let get = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    record_from_parts([
        get("s"),
        get("p"),
        get("r"),
        get("id"),
        get("d"),
        get("o"),
        get("a"),
        get("x"),
    ])
    .map(Some)
}

/// Builds a record from its stored fields: status, payout, revenue, id, day,
/// offer, affiliate, reason (the credit script's reply order).
fn record_from_parts(parts: [&str; 8]) -> Result<ConversionRecord, StoreError> {
    let [status, payout, revenue, id, day, offer, aff, reason] = parts;
    let micros = |s: &str| {
        s.parse::<i64>()
            .map(Money::from_micros)
            .map_err(|_| corrupt("conversion amount"))
    };
    Ok(ConversionRecord {
        conversion_id: id.to_owned(),
        status: ConversionStatus::from_code(status).ok_or_else(|| corrupt("conversion status"))?,
        payout: micros(payout)?,
        revenue: micros(revenue)?,
        day: Day::parse_compact(day).map_err(|_| corrupt("conversion day"))?,
        offer_id: OfferId::parse(offer).map_err(|_| corrupt("conversion offer"))?,
        aff_id: AffiliateId::parse(aff).map_err(|_| corrupt("conversion affiliate"))?,
        reason: RejectReason::from_stored(reason),
    })
}

impl Store for RedisStore {
    fn record_click<'a>(
        &'a self,
        click: &'a Click,
        unique_window_secs: u64,
    ) -> StoreFuture<'a, bool> {
        let shard = click.id.shard();
        let (offer, aff) = (click.offer_id.as_str(), click.aff_id.as_str());
        let ClickLocation::Bucket { key, field } = self.keys.click(&click.id) else {
            return Box::pin(std::future::ready(Err(StoreError::Corrupt(
                "new clicks need a bucketed click id".into(),
            ))));
        };
        let stats = self.keys.stats(shard, Day::from_unix(click.created_at));
        let ttl = click.ttl_secs(unix_now());
        let unique_field = || counter_field(offer, aff, Counter::UniqueClicks);
        let detect_duplicates = unique_window_secs > 0;
        // One round trip, one hash slot, no script: the duplicate marker
        // (set only if absent: Redis decides, atomically), the record, the
        // bucket's TTL (NX gives a new bucket its first, GT lengthens it for
        // a click with a longer window: it only ever grows; GT is left out
        // when this process already made sure of a deadline at least as
        // late) and the click count. The unique count depends on the
        // marker's answer, so it follows in the background
        // (`count_unique_click`).
        let lengthen = self
            .bucket_deadlines
            .needs_lengthening(&key, click.expires_at)
            .then(|| key.clone());
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        if detect_duplicates {
            pipe.cmd("SET")
                .arg(self.keys.unique_visitor(shard, offer, aff, &click.visitor))
                .arg("1")
                .arg("NX")
                .arg("EX")
                .arg(unique_window_secs);
        } else {
            pipe.hincr(&stats, unique_field(), 1);
        }
        pipe.hset(&key, field, click.encode())
            .cmd("EXPIRE")
            .arg(&key)
            .arg(ttl)
            .arg("NX");
        if lengthen.is_some() {
            pipe.cmd("EXPIRE").arg(&key).arg(ttl).arg("GT");
        }
        pipe.hincr(&stats, counter_field(offer, aff, Counter::Clicks), 1);
        let deadline = click.expires_at;
        Box::pin(async move {
            let replies: Vec<redis::RedisResult<redis::Value>> = self
                .with_conn(move |conn| {
                    Box::pin(async move { pipe.query_async(conn).await.map_err(unavailable) })
                })
                .await?;
            // The marker (or the unique count), the record, its TTL and its
            // count: any failure fails the click.
            let mut replies = replies.into_iter();
            let first = replies
                .next()
                .ok_or_else(|| corrupt("the click pipeline answered too few replies"))?
                .map_err(unavailable)?;
            for reply in replies {
                reply.map_err(unavailable)?;
            }
            if let Some(bucket) = lengthen {
                self.bucket_deadlines.lengthened(bucket, deadline);
            }
            if !detect_duplicates {
                return Ok(true);
            }
            // SET NX answers nil when the marker was already there.
            let unique = first != redis::Value::Nil;
            if unique {
                self.count_unique_click(stats, unique_field());
            }
            Ok(unique)
        })
    }

    fn count_untracked_click<'a>(
        &'a self,
        offer: &'a OfferId,
        aff: &'a AffiliateId,
        day: Day,
        counter: Counter,
    ) -> StoreFuture<'a, ()> {
        // Any shard will do: nothing ties this count to a visitor.
        let shard = random_shard();
        let stats_key = self.keys.stats(shard, day);
        let field = counter_field(offer.as_str(), aff.as_str(), counter);
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move {
                conn.hincr::<_, _, _, ()>(&stats_key, field, 1)
                    .await
                    .map_err(unavailable)
            })
        }))
    }

    fn lookup_conversion<'a>(
        &'a self,
        click_id: &'a ClickId,
        identity: &'a Identity,
        now: u64,
    ) -> StoreFuture<'a, ConversionLookup> {
        let mut pipe = redis::pipe();
        match self.keys.click(click_id) {
            ClickLocation::Bucket { key, field } => pipe.hget(key, field),
            ClickLocation::Key(key) => pipe.get(key),
        };
        pipe.hgetall(self.keys.conversion(click_id, identity));
        let click_id = click_id.clone();
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move {
                let (click, fields): (Option<String>, HashMap<String, String>) =
                    pipe.query_async(conn).await.map_err(unavailable)?;
                let click = match click {
                    Some(stored) => {
                        Some(Click::decode(click_id, &stored).map_err(|e| corrupt(e.detail))?)
                    }
                    None => None,
                };
                // The bucket outlives clicks with a shorter window than its longest.
                let click = click.filter(|c| !c.expired(now));
                Ok(ConversionLookup {
                    click,
                    conversion: conversion_from_fields(&fields)?,
                })
            })
        }))
    }

    fn apply_conversion<'a>(
        &'a self,
        command: &'a ConversionCommand,
    ) -> StoreFuture<'a, ConversionOutcome> {
        let shard = command.click_id.shard();
        let seen_day = command.seen_day.unwrap_or(command.today);
        let mut invocation = CREDIT_SCRIPT.prepare_invoke();
        invocation
            .key(self.keys.conversion(&command.click_id, &command.identity))
            .key(self.keys.stats(shard, command.today))
            .key(self.keys.stats(shard, seen_day))
            .arg(command.status.code())
            .arg(
                command
                    .payout
                    .map(|m| m.micros().to_string())
                    .unwrap_or_default(),
            )
            .arg(
                command
                    .revenue
                    .map(|m| m.micros().to_string())
                    .unwrap_or_default(),
            )
            .arg(&command.new_conversion_id)
            .arg(command.today.compact())
            .arg(seen_day.compact())
            .arg(command.offer_id.as_str())
            .arg(command.aff_id.as_str())
            .arg(command.retention_secs)
            .arg(command.now)
            .arg(RejectReason::stored(command.reason))
            .arg(MAX_COUNTER_MICROS);
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move {
                let reply: String = invocation.invoke_async(conn).await.map_err(unavailable)?;
                let parts: Vec<&str> = reply.split('\0').collect();
                let part = |i: usize| parts.get(i).copied().unwrap_or("");
                let record = || {
                    record_from_parts([
                        part(1),
                        part(2),
                        part(3),
                        part(4),
                        part(5),
                        part(6),
                        part(7),
                        part(9),
                    ])
                };
                match part(0) {
                    "created" => Ok(ConversionOutcome::Created(record()?)),
                    "duplicate" => Ok(ConversionOutcome::Duplicate(record()?)),
                    "updated" => Ok(ConversionOutcome::Updated {
                        record: record()?,
                        previous: ConversionStatus::from_code(part(8))
                            .ok_or_else(|| corrupt("previous status"))?,
                    }),
                    "retry" => Ok(ConversionOutcome::Retry),
                    "too_large" => Ok(ConversionOutcome::TooLarge),
                    other => Err(corrupt(format!("credit script answered {other:?}"))),
                }
            })
        }))
    }

    fn reserve_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        entries: &'a [CapEntry],
    ) -> StoreFuture<'a, Option<usize>> {
        let mut invocation = CAPS_SCRIPT.prepare_invoke();
        for entry in entries {
            invocation
                .key(self.keys.caps(offer.as_str(), &entry.period_id))
                .arg(&entry.field)
                .arg(entry.increment)
                .arg(entry.limit)
                .arg(entry.ttl_secs.unwrap_or(0));
        }
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move {
                let full: usize = invocation.invoke_async(conn).await.map_err(unavailable)?;
                Ok(full.checked_sub(1))
            })
        }))
    }

    fn release_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        entries: &'a [CapEntry],
    ) -> StoreFuture<'a, ()> {
        let mut pipe = redis::pipe();
        for entry in entries {
            pipe.hincr(
                self.keys.caps(offer.as_str(), &entry.period_id),
                &entry.field,
                -entry.increment,
            )
            .ignore();
        }
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move { pipe.query_async::<()>(conn).await.map_err(unavailable) })
        }))
    }

    fn read_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        period_ids: &'a [String],
    ) -> StoreFuture<'a, Vec<HashMap<String, i64>>> {
        let mut pipe = redis::pipe();
        for period in period_ids {
            pipe.hgetall(self.keys.caps(offer.as_str(), period));
        }
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move { pipe.query_async(conn).await.map_err(unavailable) })
        }))
    }

    fn claim<'a>(&'a self, token: &'a str, ttl_secs: u64) -> StoreFuture<'a, bool> {
        let key = self.keys.claim(token);
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move {
                let fresh: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs)
                    .query_async(conn)
                    .await
                    .map_err(unavailable)?;
                Ok(fresh.is_some())
            })
        }))
    }

    fn release_claim<'a>(&'a self, token: &'a str) -> StoreFuture<'a, ()> {
        let key = self.keys.claim(token);
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move { conn.del::<_, ()>(&key).await.map_err(unavailable) })
        }))
    }

    fn append_postback_logs<'a>(
        &'a self,
        entries: Vec<PostbackLogLine>,
        retention: LogRetention,
    ) -> StoreFuture<'a, ()> {
        // One LPUSH (entries in arrival order: the last ends up first), one
        // LTRIM and one EXPIRE per log, every log in one pipeline. Each log
        // is a key of its own offer's slot: the pipeline may span slots,
        // which a cluster client splits per node.
        let mut by_log: Vec<(LogName, Vec<String>)> = Vec::new();
        for line in entries {
            let log = (line.offer, line.kind);
            match by_log.iter_mut().find(|(l, _)| *l == log) {
                Some((_, list)) => list.push(line.json),
                None => by_log.push((log, vec![line.json])),
            }
        }
        let mut pipe = redis::pipe();
        for ((offer, kind), list) in by_log {
            let key = self
                .keys
                .postback_log(offer.as_ref().map(OfferId::as_str), kind);
            pipe.lpush(&key, list)
                .ignore()
                .ltrim(&key, 0, retention.keep.saturating_sub(1) as isize)
                .ignore()
                .expire(&key, retention.ttl_secs as i64)
                .ignore();
        }
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move { pipe.query_async::<()>(conn).await.map_err(unavailable) })
        }))
    }

    fn read_postback_log<'a>(
        &'a self,
        offer: Option<&'a OfferId>,
        kind: PostbackLogKind,
        limit: usize,
    ) -> StoreFuture<'a, Vec<String>> {
        let key = self.keys.postback_log(offer.map(OfferId::as_str), kind);
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move {
                conn.lrange(&key, 0, limit.saturating_sub(1) as isize)
                    .await
                    .map_err(unavailable)
            })
        }))
    }

    fn put_offer<'a>(&'a self, offer: &'a Offer) -> StoreFuture<'a, ()> {
        let json = serde_json::to_string(&offer.view()).map_err(|e| corrupt(e.to_string()));
        let (offers, version) = (self.keys.offers(), self.keys.config_version());
        let id = offer.id.as_str().to_owned();
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move {
                redis::pipe()
                    .atomic()
                    .hset(&offers, id, json?)
                    .ignore()
                    .incr(&version, 1)
                    .ignore()
                    .query_async::<()>(conn)
                    .await
                    .map_err(unavailable)
            })
        }))
    }

    fn put_affiliate<'a>(&'a self, affiliate: &'a Affiliate) -> StoreFuture<'a, ()> {
        let json = serde_json::to_string(affiliate).map_err(|e| corrupt(e.to_string()));
        let (affiliates, version) = (self.keys.affiliates(), self.keys.config_version());
        let id = affiliate.id.as_str().to_owned();
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move {
                redis::pipe()
                    .atomic()
                    .hset(&affiliates, id, json?)
                    .ignore()
                    .incr(&version, 1)
                    .ignore()
                    .query_async::<()>(conn)
                    .await
                    .map_err(unavailable)
            })
        }))
    }

    fn config_version(&self) -> StoreFuture<'_, u64> {
        let key = self.keys.config_version();
        Box::pin(self.with_conn(move |conn| {
            Box::pin(async move {
                let version: Option<u64> = conn.get(&key).await.map_err(unavailable)?;
                Ok(version.unwrap_or(0))
            })
        }))
    }

    fn load_config(&self) -> StoreFuture<'_, ConfigData> {
        let (version, offers, affiliates) = (
            self.keys.config_version(),
            self.keys.offers(),
            self.keys.affiliates(),
        );
        Box::pin(self.with_pooled_conn(move |conn| {
            Box::pin(async move {
                let (version, offers, affiliates): (
                    Option<u64>,
                    HashMap<String, String>,
                    HashMap<String, String>,
                ) = redis::pipe()
                    .atomic()
                    .get(&version)
                    .hgetall(&offers)
                    .hgetall(&affiliates)
                    .query_async(conn)
                    .await
                    .map_err(unavailable)?;
                let mut data = ConfigData {
                    version: version.unwrap_or(0),
                    ..ConfigData::default()
                };
                for (id, json) in offers {
                    match serde_json::from_str::<OfferView>(&json)
                        .map_err(|e| e.to_string())
                        .and_then(|v| Offer::from_view(v).map_err(|e| e.detail))
                    {
                        Ok(offer) => data.offers.push(offer),
                        Err(e) => log::error!("skipping stored offer {id:?}: {e}"),
                    }
                }
                for (id, json) in affiliates {
                    match serde_json::from_str::<Affiliate>(&json) {
                        Ok(affiliate) => data.affiliates.push(affiliate),
                        Err(e) => log::error!("skipping stored affiliate {id:?}: {e}"),
                    }
                }
                Ok(data)
            })
        }))
    }

    fn read_counters<'a>(&'a self, days: &'a [Day]) -> StoreFuture<'a, Vec<DayCounters>> {
        let flushed = self.write_pending_counts();
        Box::pin(async move {
            // This process's unique counts first, so it reads its own clicks.
            flushed.await?;
            let shards = crate::domain::ids::SHARD_COUNT;
            let mut summed = Vec::with_capacity(days.len());
            // A pipeline per few days: a year is ~23,000 HGETALLs, and one
            // pipeline of them all would hold a connection past its response
            // timeout on a busy Redis.
            for chunk in days.chunks(COUNTER_DAYS_PER_ROUND_TRIP) {
                let mut pipe = redis::pipe();
                for day in chunk {
                    for key in self.keys.stats_all_shards(*day) {
                        pipe.hgetall(key);
                    }
                }
                let hashes: Vec<HashMap<String, i64>> = self
                    .with_pooled_conn(move |conn| {
                        Box::pin(async move { pipe.query_async(conn).await.map_err(unavailable) })
                    })
                    .await?;
                for day_hashes in hashes.chunks(shards) {
                    let mut sum = DayCounters::new();
                    for hash in day_hashes {
                        for (field, value) in hash {
                            *sum.entry(field.clone()).or_insert(0) += i128::from(*value);
                        }
                    }
                    summed.push(sum);
                }
            }
            Ok(summed)
        })
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.write_pending_counts())
    }

    fn write_behind_ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.pending.wait().await;
            Ok(())
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.with_conn(|conn| {
            Box::pin(async move {
                redis::cmd("PING")
                    .query_async::<String>(conn)
                    .await
                    .map_err(unavailable)?;
                Ok(())
            })
        }))
    }
}
