//! The click write (the hot path) and the counts that go with clicks: a
//! tracked click's record and counts in one pipeline, an untracked click's
//! count, and the unique-click counts that follow a moment later, queued
//! and summed by a background writer.
//!
//! Everything here that a click keeps between requests lives here too: the
//! bucket deadlines this process has made sure of ([`BucketDeadlines`]) and
//! the queue of unique counts not yet written.

use std::collections::HashMap;

use redis::aio::ConnectionLike;

use super::connection::{corrupt, unavailable};
use super::RedisStore;
use crate::domain::counter::Counter;
use crate::domain::ids::random_shard;
use crate::domain::{unix_now, AffiliateId, Click, Day, OfferId};
use crate::store::keys::{counter_field, ClickLocation, Keys};
use crate::store::StoreError;

/// `(stats key, counter field)` → increments not yet written.
pub(super) type UniqueCounts = HashMap<(String, String), i64>;

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
pub(super) struct BucketDeadlines(std::sync::Mutex<HashMap<String, u64>>);

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

/// What the click pipeline found out about a click's uniqueness.
pub(super) enum ClickWritten {
    /// Duplicate detection is off: every click is unique, and the pipeline
    /// counted it as such already.
    CountedUnique,
    /// The visitor's marker was there: a duplicate, not counted as unique.
    Duplicate,
    /// The visitor's marker was absent: unique, still to be counted in
    /// `field` of `stats_key` ([`RedisStore::count_unique_click`]).
    Unique {
        /// The day's counter hash of the click's shard.
        stats_key: String,
        /// `offer|aff|uclk`.
        field: String,
    },
}

impl RedisStore {
    /// Writes a click ([`record_click`]) and queues its unique count, if it
    /// has one still to come; answers whether the click was unique.
    pub(super) async fn write_click(
        &self,
        click: &Click,
        unique_window_secs: u64,
    ) -> Result<bool, StoreError> {
        let written = self
            .with_conn(async |conn| {
                record_click(
                    conn,
                    &self.keys,
                    &self.bucket_deadlines,
                    click,
                    unique_window_secs,
                )
                .await
            })
            .await?;
        let unique = match written {
            ClickWritten::CountedUnique => true,
            ClickWritten::Duplicate => false,
            ClickWritten::Unique { stats_key, field } => {
                self.count_unique_click(stats_key, field);
                true
            }
        };
        let mut tally = crate::store::report::Tally::default();
        tally.click(click, unique);
        self.count_for_reports(tally);
        Ok(unique)
    }

    /// Queues a unique click's count for the background writer
    /// (`crate::background`), which calls [`crate::store::Store::flush`].
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

    /// Writes the queued unique-click counts, summed, in one pipeline
    /// ([`write_unique_counts`]); a failed write puts them back.
    pub(super) async fn write_pending_counts(&self) -> Result<(), StoreError> {
        let (_turn, counts) = self.pending.take().await;
        if counts.is_empty() {
            return Ok(());
        }
        let written = self
            .with_conn(async |conn| write_unique_counts(conn, &counts).await)
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
}

/// Stores a click and counts it, in one round trip, one hash slot (the
/// click's shard `{S}`), no script: the duplicate marker (set only if
/// absent: Redis decides, atomically), the record, the bucket's TTL (NX
/// gives a new bucket its first, GT lengthens it for a click with a longer
/// window: it only ever grows; GT is left out when this process already
/// made sure of a deadline at least as late) and the click count. The
/// unique count depends on the marker's answer, so it follows in the
/// background (`RedisStore::count_unique_click`).
pub(super) async fn record_click<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    bucket_deadlines: &BucketDeadlines,
    click: &Click,
    unique_window_secs: u64,
) -> Result<ClickWritten, StoreError> {
    let shard = click.id.shard();
    let (offer, aff) = (click.offer_id.as_str(), click.aff_id.as_str());
    let ClickLocation::Bucket { key, field } = keys.click(&click.id) else {
        return Err(StoreError::Corrupt(
            "new clicks need a bucketed click id".into(),
        ));
    };
    let stats = keys.stats(shard, Day::from_unix(click.created_at));
    let ttl = click.ttl_secs(unix_now());
    let unique_field = || counter_field(offer, aff, Counter::UniqueClicks);
    let detect_duplicates = unique_window_secs > 0;
    let lengthen = bucket_deadlines
        .needs_lengthening(&key, click.expires_at)
        .then(|| key.clone());
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    if detect_duplicates {
        pipe.cmd("SET")
            .arg(keys.unique_visitor(shard, offer, aff, &click.visitor))
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
    let replies: Vec<redis::RedisResult<redis::Value>> =
        pipe.query_async(conn).await.map_err(unavailable)?;
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
        bucket_deadlines.lengthened(bucket, click.expires_at);
    }
    if !detect_duplicates {
        return Ok(ClickWritten::CountedUnique);
    }
    // SET NX answers nil when the marker was already there.
    if first == redis::Value::Nil {
        return Ok(ClickWritten::Duplicate);
    }
    Ok(ClickWritten::Unique {
        stats_key: stats,
        field: unique_field(),
    })
}

/// Counts a click that was not tracked: one `HINCRBY` in a random shard's
/// counters of `day` (nothing ties this count to a visitor, so any shard
/// will do).
pub(super) async fn count_untracked_click<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    offer: &OfferId,
    aff: &AffiliateId,
    day: Day,
    counter: Counter,
) -> Result<(), StoreError> {
    let stats_key = keys.stats(random_shard(), day);
    let field = counter_field(offer.as_str(), aff.as_str(), counter);
    redis::Cmd::hincr(&stats_key, field, 1)
        .query_async::<()>(conn)
        .await
        .map_err(unavailable)
}

/// Adds summed unique-click counts to their counters: one `HINCRBY` per
/// counter, all in one plain pipeline. It spans shard slots: on a cluster
/// it is sent as one call per slot (`super::slots`).
pub(super) async fn write_unique_counts<C: ConnectionLike + Send>(
    conn: &mut C,
    counts: &UniqueCounts,
) -> Result<(), StoreError> {
    let mut pipe = redis::pipe();
    for ((key, field), n) in counts {
        pipe.hincr(key, field, *n).ignore();
    }
    pipe.query_async::<()>(conn).await.map_err(unavailable)
}
