//! The stats read: a day's counters are 64 small hashes, one per shard
//! (`{S}:st:<day>`), read with `HGETALL` and summed here.
//!
//! The read is the store's bulkiest operation (a year is ~23,000
//! `HGETALL`s), so it runs on pooled connections, never on the hot path's
//! multiplexed one, a few days per round trip.

use std::collections::HashMap;

use redis::aio::ConnectionLike;

use super::connection::unavailable;
use super::RedisStore;
use crate::domain::ids::SHARD_COUNT;
use crate::domain::Day;
use crate::store::keys::Keys;
use crate::store::{DayCounters, StoreError};

/// Days of counters read per round trip (64 `HGETALL`s a day).
const COUNTER_DAYS_PER_ROUND_TRIP: usize = 8;

impl RedisStore {
    /// The counters of each day, summed over shards, after this process's
    /// queued unique counts are written (so it reads its own clicks).
    ///
    /// A pipeline per few days: one pipeline of a year's `HGETALL`s would
    /// hold a connection past its response timeout on a busy Redis. Each
    /// round trip takes a pooled connection and the timeout of its own.
    pub(super) async fn sum_counters(&self, days: &[Day]) -> Result<Vec<DayCounters>, StoreError> {
        self.write_pending_counts().await?;
        let mut summed = Vec::with_capacity(days.len());
        for chunk in days.chunks(COUNTER_DAYS_PER_ROUND_TRIP) {
            let read = self
                .with_pooled_conn(async |conn| read_counters(conn, &self.keys, chunk).await)
                .await?;
            summed.extend(read);
        }
        Ok(summed)
    }
}

/// The counters of each of `days`, summed over shards, in one pipeline of
/// `days.len() × 64` `HGETALL`s, one per shard and day. It spans all 64
/// shard slots: on a cluster it is sent as one call per slot, the replies
/// put back in order (`super::slots`).
pub(super) async fn read_counters<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    days: &[Day],
) -> Result<Vec<DayCounters>, StoreError> {
    let mut pipe = redis::pipe();
    for day in days {
        for key in keys.stats_all_shards(*day) {
            pipe.hgetall(key);
        }
    }
    let hashes: Vec<HashMap<String, i64>> = pipe.query_async(conn).await.map_err(unavailable)?;
    let mut summed = Vec::with_capacity(days.len());
    for day_hashes in hashes.chunks(SHARD_COUNT) {
        let mut sum = DayCounters::new();
        for hash in day_hashes {
            for (field, value) in hash {
                *sum.entry(field.clone()).or_insert(0) += i128::from(*value);
            }
        }
        summed.push(sum);
    }
    Ok(summed)
}
