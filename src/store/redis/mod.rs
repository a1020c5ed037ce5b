//! The production store: Redis through one multiplexed connection per
//! runtime thread (hot path) and a deadpool connection pool (bulk reads).
//!
//! Every operation is one round trip (a pipeline, a MULTI/EXEC or a script)
//! and is bounded by a timeout, so a stalled Redis degrades requests quickly
//! instead of piling them up. Two writes follow later: a unique click's
//! count, queued and summed (`RedisStore::count_unique_click`;
//! docs/architecture.md says why), and the report counters by hour and
//! dimension value (`reports`).
//!
//! # Layout
//!
//! Each operation is written once, in the module of its job, as a function
//! of any `redis::aio::ConnectionLike` (the per-runtime `ConnectionManager`,
//! a pooled connection, or a cluster connection) and the [`Keys`]. The
//! [`Store`] methods here only choose a connection and call it.
//!
//! - `connection`: the per-runtime connections, the pool, the cluster
//!   connections, the timeout, `PING`, and the mapping of Redis errors to
//!   [`StoreError`].
//! - `slots`: the per-slot splitter that runs any pipeline on a cluster.
//! - `clicks`: the click write (the hot path), untracked clicks' counts, the
//!   unique-click counts that follow and their queue.
//! - `conversions`: a postback's look-up, the credit script, and the
//!   conversion list read from each shard's index.
//! - `caps`: an offer's cap counters and their reservation script.
//! - `claims`: one-time tokens (signatures, capped conversions being decided).
//! - `config`: offers, affiliates, advertisers, API keys (and their last
//!   use) and the config version.
//! - `audit`: the audit log.
//! - `counters`: the stats read, summed over shards.
//! - `reports`: the report counters (by hour, sub-ID, source, goal), their
//!   queue, their script and their read.
//! - `logs`: the postback logs.
//! - `deliveries`: the affiliate postback queue, its leases and listings.
//!
//! docs/architecture.md ("Slots touched by each operation") lists the hash
//! slots each of them touches.

mod audit;
mod caps;
mod claims;
mod clicks;
mod config;
mod connection;
mod conversions;
mod counters;
mod deliveries;
mod logs;
mod paging;
mod reports;
mod slots;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;

use self::clicks::{BucketDeadlines, UniqueCounts};
use self::connection::{unavailable, Bulk, PerRuntimeConnections};
use self::reports::{QueuedSince, ReportQueue};
use super::keys::Keys;
use super::{
    AuditLine, AuditPage, AuditRetention, CapEntry, ConfigData, ConversionLookup, ConversionPage,
    ConversionQuery, DayCounters, DeliveryBacklog, DeliveryPage, DeliveryQuery, Lease,
    LogRetention, Position, PostbackLogKind, PostbackLogLine, RetryOutcome, Store, StoreError,
    StoreFuture,
};
use crate::batch::BatchQueue;
use crate::domain::conversion::{ConversionCommand, ConversionEntry, ConversionOutcome};
use crate::domain::counter::{Counter, Dimension};
use crate::domain::delivery::{AttemptReport, Delivery, DeliveryId};
use crate::domain::{
    Advertiser, Affiliate, AffiliateId, ApiKey, Click, ClickId, Day, Identity, Offer, OfferId,
};

/// Redis-backed [`Store`].
#[derive(Clone)]
pub struct RedisStore {
    /// Multiplexed connections, one per runtime (one per actix worker):
    /// concurrent commands are pipelined onto each automatically. Measured
    /// 3-4x the throughput of a pool of 16 or 64 connections for the click
    /// write (docs/PERFORMANCE.md). Each reconnects by itself after a Redis
    /// restart. On a cluster, one cluster connection per runtime (itself
    /// one multiplexed socket per node).
    hot: PerRuntimeConnections,
    /// Connections for bulk reads (a year of stats is ~23,000 commands): on
    /// the hot path's connection they would queue clicks behind them.
    bulk: Bulk,
    /// Key builder under the configured prefix.
    keys: Keys,
    /// Upper bound for any single store operation.
    timeout: Duration,
    /// Unique-click counts on their way to Redis, `(stats key, field)` →
    /// increments (see [`RedisStore::count_unique_click`]).
    pending: Arc<BatchQueue<UniqueCounts>>,
    /// Report counts on their way to Redis (see `reports`).
    report_pending: Arc<BatchQueue<ReportQueue>>,
    /// When the oldest queued report count was queued: report counts
    /// gather for a quarter second before they are written.
    report_since: Arc<QueuedSince>,
    /// Distinct values of a report dimension counted per day
    /// ([`crate::store::report`]).
    report_values_per_day: usize,
    /// Click buckets this process has given an expiry, with the latest
    /// deadline it made sure of (see [`BucketDeadlines`]).
    bucket_deadlines: Arc<BucketDeadlines>,
}

impl RedisStore {
    /// A store on one Redis (`REDIS_URL`). Builds the pool; connects
    /// lazily, so clickback starts even while Redis is down.
    pub fn new(
        url: &str,
        keys: Keys,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let bulk = Bulk::Pool(connection::pool(url, pool_size, timeout)?);
        let hot = PerRuntimeConnections::open(url, timeout)?;
        Ok(Self::with_connections(hot, bulk, keys, timeout))
    }

    /// A store on the Redis Cluster that `nodes` (`redis://host:port`, any
    /// of its nodes; more than one, so that one down node cannot keep
    /// clickback from finding the others) belong to (`REDIS_CLUSTER_NODES`).
    /// Connects lazily, so clickback starts even while the cluster is down.
    pub fn new_cluster(
        nodes: &[String],
        keys: Keys,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let hot = PerRuntimeConnections::open_cluster(nodes, timeout)?;
        let bulk = Bulk::Cluster(hot.separate());
        Ok(Self::with_connections(hot, bulk, keys, timeout))
    }

    fn with_connections(
        hot: PerRuntimeConnections,
        bulk: Bulk,
        keys: Keys,
        timeout: Duration,
    ) -> Self {
        Self {
            hot,
            bulk,
            keys,
            timeout,
            pending: Arc::default(),
            report_pending: Arc::default(),
            report_since: Arc::default(),
            report_values_per_day: crate::store::report::VALUES_PER_DAY,
            bucket_deadlines: Arc::default(),
        }
    }

    /// The same store counting at most `n` distinct values of each report
    /// dimension per day (tests of the "other" bucket, the bench).
    pub fn with_report_values_per_day(mut self, n: usize) -> Self {
        self.report_values_per_day = n;
        self
    }

    /// Logs a warning when Redis would store click buckets as hashtables
    /// (~150 bytes a click) rather than listpacks (~110): the limits of
    /// deploy/redis.conf. Silent when Redis is down or refuses CONFIG (as
    /// some managed services do).
    pub async fn warn_about_memory_settings(&self) {
        let read = self.with_pooled_conn(async move |conn| listpack_limits(conn).await);
        let Ok(config) = read.await else { return };
        for (name, wanted) in [
            ("hash-max-listpack-entries", 512),
            ("hash-max-listpack-value", 256),
        ] {
            if let Some(&actual) = config.get(name).filter(|&&v| v < wanted) {
                log::warn!(
                    "Redis {name} is {actual}; with {wanted} (deploy/redis.conf) click buckets stay compact: ~30 % less memory, more with ad click ids kept"
                );
            }
        }
    }
}

/// `CONFIG GET hash-max-listpack-*`: the limits under which Redis keeps a
/// hash (a click bucket) as a listpack.
async fn listpack_limits<C: ConnectionLike + Send>(
    conn: &mut C,
) -> Result<HashMap<String, u64>, StoreError> {
    redis::cmd("CONFIG")
        .arg("GET")
        .arg("hash-max-listpack-*")
        .query_async(conn)
        .await
        .map_err(unavailable)
}

impl Store for RedisStore {
    fn record_click<'a>(
        &'a self,
        click: &'a Click,
        unique_window_secs: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.write_click(click, unique_window_secs))
    }

    fn count_untracked_click<'a>(
        &'a self,
        offer: &'a OfferId,
        aff: &'a AffiliateId,
        at: u64,
        counter: Counter,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let day = Day::from_unix(at);
            self.with_conn(async move |conn| {
                clicks::count_untracked_click(conn, &self.keys, offer, aff, day, counter).await
            })
            .await?;
            let mut tally = crate::store::report::Tally::default();
            tally.untracked(offer, aff, at, counter);
            self.count_for_reports(tally);
            Ok(())
        })
    }

    fn lookup_conversion<'a>(
        &'a self,
        click_id: &'a ClickId,
        identity: &'a Identity,
        now: u64,
    ) -> StoreFuture<'a, ConversionLookup> {
        Box::pin(self.with_conn(async move |conn| {
            conversions::lookup_conversion(conn, &self.keys, click_id, identity, now).await
        }))
    }

    fn apply_conversion<'a>(
        &'a self,
        command: &'a ConversionCommand,
    ) -> StoreFuture<'a, ConversionOutcome> {
        Box::pin(async move {
            let (outcome, tally) = self
                .with_conn(async move |conn| {
                    conversions::apply_conversion(conn, &self.keys, command).await
                })
                .await?;
            self.count_for_reports(tally);
            Ok(outcome)
        })
    }

    fn reserve_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        entries: &'a [CapEntry],
    ) -> StoreFuture<'a, Option<usize>> {
        Box::pin(self.with_conn(async move |conn| {
            caps::reserve_caps(conn, &self.keys, offer, entries).await
        }))
    }

    fn release_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        entries: &'a [CapEntry],
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.with_conn(async move |conn| {
            caps::release_caps(conn, &self.keys, offer, entries).await
        }))
    }

    fn read_caps<'a>(
        &'a self,
        offer: &'a OfferId,
        period_ids: &'a [String],
    ) -> StoreFuture<'a, Vec<HashMap<String, i64>>> {
        Box::pin(self.with_conn(async move |conn| {
            caps::read_caps(conn, &self.keys, offer, period_ids).await
        }))
    }

    fn claim<'a>(&'a self, token: &'a str, ttl_secs: u64) -> StoreFuture<'a, bool> {
        Box::pin(
            self.with_conn(async move |conn| {
                claims::claim(conn, &self.keys, token, ttl_secs).await
            }),
        )
    }

    fn release_claim<'a>(&'a self, token: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(
            self.with_conn(async move |conn| claims::release_claim(conn, &self.keys, token).await),
        )
    }

    fn append_postback_logs<'a>(
        &'a self,
        entries: Vec<PostbackLogLine>,
        retention: LogRetention,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.with_conn(async move |conn| {
            logs::append_postback_logs(conn, &self.keys, entries, retention).await
        }))
    }

    fn read_postback_log<'a>(
        &'a self,
        offer: Option<&'a OfferId>,
        kind: PostbackLogKind,
        limit: usize,
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(self.with_conn(async move |conn| {
            logs::read_postback_log(conn, &self.keys, offer, kind, limit).await
        }))
    }

    fn put_offer<'a>(&'a self, offer: &'a Offer) -> StoreFuture<'a, ()> {
        Box::pin(self.with_conn(async move |conn| config::put_offer(conn, &self.keys, offer).await))
    }

    fn put_affiliate<'a>(&'a self, affiliate: &'a Affiliate) -> StoreFuture<'a, ()> {
        Box::pin(
            self.with_conn(async move |conn| {
                config::put_affiliate(conn, &self.keys, affiliate).await
            }),
        )
    }

    fn put_advertiser<'a>(&'a self, advertiser: &'a Advertiser) -> StoreFuture<'a, ()> {
        Box::pin(self.with_conn(async move |conn| {
            config::put_advertiser(conn, &self.keys, advertiser).await
        }))
    }

    fn put_api_key<'a>(&'a self, key: &'a ApiKey) -> StoreFuture<'a, ()> {
        Box::pin(self.with_conn(async move |conn| config::put_api_key(conn, &self.keys, key).await))
    }

    fn delete_api_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(
            self.with_conn(async move |conn| config::delete_api_key(conn, &self.keys, id).await),
        )
    }

    fn record_key_use<'a>(&'a self, uses: Vec<(String, u64)>) -> StoreFuture<'a, ()> {
        Box::pin(
            self.with_conn(async move |conn| config::record_key_use(conn, &self.keys, uses).await),
        )
    }

    fn read_key_use(&self) -> StoreFuture<'_, HashMap<String, u64>> {
        Box::pin(
            self.with_pooled_conn(async move |conn| config::read_key_use(conn, &self.keys).await),
        )
    }

    fn append_audit<'a>(
        &'a self,
        line: &'a AuditLine,
        retention: AuditRetention,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.with_conn(async move |conn| {
            audit::append_audit(conn, &self.keys, line, retention).await
        }))
    }

    fn list_audit<'a>(
        &'a self,
        limit: usize,
        after: Option<&'a Position>,
    ) -> StoreFuture<'a, AuditPage> {
        Box::pin(self.with_pooled_conn(async move |conn| {
            audit::list_audit(conn, &self.keys, limit, after).await
        }))
    }

    fn list_conversions<'a>(
        &'a self,
        query: &'a ConversionQuery,
    ) -> StoreFuture<'a, ConversionPage> {
        Box::pin(self.with_pooled_conn(async move |conn| {
            conversions::list_conversions(conn, &self.keys, query).await
        }))
    }

    fn find_conversion<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ConversionEntry>> {
        Box::pin(self.with_pooled_conn(async move |conn| {
            conversions::find_conversion(conn, &self.keys, id).await
        }))
    }

    fn config_version(&self) -> StoreFuture<'_, u64> {
        Box::pin(self.with_conn(async move |conn| config::config_version(conn, &self.keys).await))
    }

    fn load_config(&self) -> StoreFuture<'_, ConfigData> {
        Box::pin(
            self.with_pooled_conn(async move |conn| config::load_config(conn, &self.keys).await),
        )
    }

    fn read_counters<'a>(&'a self, days: &'a [Day]) -> StoreFuture<'a, Vec<DayCounters>> {
        Box::pin(self.sum_counters(days))
    }

    fn read_report_counters<'a>(
        &'a self,
        days: &'a [Day],
        dimension: Option<Dimension>,
    ) -> StoreFuture<'a, Vec<DayCounters>> {
        Box::pin(self.sum_report_counters(days, dimension))
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let unique = self.write_pending_counts().await;
            let reports = self.write_due_report_counts().await;
            unique.and(reports)
        })
    }

    fn write_behind_ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            tokio::select! {
                () = self.pending.wait() => {}
                () = self.report_counts_due() => {}
            }
            Ok(())
        })
    }

    fn flush_all(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let unique = self.write_pending_counts().await;
            let reports = self.write_pending_report_counts().await;
            unique.and(reports)
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.with_conn(async move |conn| connection::ping(conn).await))
    }

    fn claim_deliveries<'a>(
        &'a self,
        shard: char,
        now_ms: u64,
        lease: Lease,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Result<Delivery, DeliveryId>>> {
        // The worker's own runtime's multiplexed connection: an idle worker
        // claims 128 times a second, which a pool checkout (a PING each)
        // would double.
        Box::pin(self.with_conn(async move |conn| {
            deliveries::claim_deliveries(conn, &self.keys, shard, now_ms, lease, limit).await
        }))
    }

    fn finish_delivery<'a>(
        &'a self,
        id: &'a DeliveryId,
        lease: Lease,
        report: &'a AttemptReport,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.with_conn(async move |conn| {
            deliveries::finish_delivery(conn, &self.keys, id, lease, report).await
        }))
    }

    fn retry_delivery<'a>(
        &'a self,
        id: &'a DeliveryId,
        now_ms: u64,
        retention_secs: u64,
    ) -> StoreFuture<'a, RetryOutcome> {
        Box::pin(self.with_pooled_conn(async move |conn| {
            deliveries::retry_delivery(conn, &self.keys, id, now_ms, retention_secs).await
        }))
    }

    fn list_deliveries<'a>(&'a self, query: &'a DeliveryQuery) -> StoreFuture<'a, DeliveryPage> {
        Box::pin(self.with_pooled_conn(async move |conn| {
            deliveries::list_deliveries(conn, &self.keys, query).await
        }))
    }

    fn delivery_backlog(&self) -> StoreFuture<'_, DeliveryBacklog> {
        Box::pin(self.with_pooled_conn(async move |conn| {
            deliveries::delivery_backlog(conn, &self.keys).await
        }))
    }
}
