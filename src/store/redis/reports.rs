//! The report counters (`store/report.rs`): queued by clicks and
//! conversions, written behind by the background writer with
//! `scripts/report.lua` (one script per UTC day and batch, in the day's
//! slot `{rep:<day>}`), and read one hash per day.
//!
//! Nothing here runs on a click's or a postback's round trip: the click
//! pipeline and the credit script are the same commands as without reports,
//! and the click's own cost is one entry of an in-process map. A busy
//! server's counts of one hour, offer, affiliate and set of values are one
//! entry, however many clicks they are.

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;

use super::connection::unavailable;
use super::RedisStore;
use crate::domain::counter::Dimension;
use crate::domain::Day;
use crate::store::keys::Keys;
use crate::store::report::{Cell, Tally};
use crate::store::{DayCounters, StoreError};

/// The report script, run by EVALSHA (falling back to EVAL after a Redis restart).
static REPORT_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../scripts/report.lua")));

/// Increments per script call at most: a script blocks Redis while it runs,
/// so a big batch goes in several (each a few milliseconds).
const CELLS_PER_SCRIPT: usize = 2048;

/// Days of hours hashes read per round trip (one small `HGETALL` a day:
/// at most 24 × pairs × counters fields).
const HOUR_DAYS_PER_ROUND_TRIP: usize = 32;

/// Days of a dimension's hashes read per round trip. A day at the cap is
/// ~20,000 fields per offer-affiliate pair (`benches/subs.sh`: 87 ms for a
/// report of three such days), and a pooled connection gives each reply
/// 500 ms: two days keep a year's report far inside it, 184 round trips.
const VALUE_DAYS_PER_ROUND_TRIP: usize = 2;

/// How long report counts gather before the background writer sends them:
/// one script per quarter second carries every click of it, where one per
/// click would cost a quiet server's click half as many instructions again
/// as the click itself (`benches/callgrind.sh`). A read of reports writes
/// its own process's counts at once; other instances' arrive within this.
pub(super) const REPORT_GATHER: Duration = Duration::from_millis(250);

/// When the oldest report count still queued was queued; `None` while the
/// queue is empty. Decides when the queue is due ([`REPORT_GATHER`]).
#[derive(Default)]
pub(super) struct QueuedSince(Mutex<Option<Instant>>);

impl QueuedSince {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a count queued now, if the queue was empty.
    fn queued(&self) {
        self.lock().get_or_insert_with(Instant::now);
    }

    /// When the queue is due; `None` when it is empty.
    fn due(&self) -> Option<Instant> {
        self.lock().map(|since| since + REPORT_GATHER)
    }

    /// Notes the queue taken for writing.
    fn taken(&self) {
        *self.lock() = None;
    }
}

/// Report counts on their way to Redis: a tally still summing up, and
/// scripts' worth of increments a failed write left (written first next
/// time, so that a retry never writes a script twice).
#[derive(Default)]
pub(super) struct ReportQueue {
    /// Counts queued since the last write.
    tally: Tally,
    /// Per UTC day, increments not written yet, in script-sized chunks.
    unwritten: Vec<(Day, Vec<(Cell, i64)>)>,
}

impl RedisStore {
    /// Queues report counts for the background writer.
    pub(super) fn count_for_reports(&self, tally: Tally) {
        if !tally.is_empty() {
            self.report_since.queued();
            self.report_pending.push(|queued| queued.tally.merge(tally));
        }
    }

    /// Answers once queued report counts are due ([`REPORT_GATHER`]).
    pub(super) async fn report_counts_due(&self) {
        loop {
            match self.report_since.due() {
                Some(at) => {
                    tokio::time::sleep_until(at.into()).await;
                    return;
                }
                None => self.report_pending.wait().await,
            }
        }
    }

    /// Writes the queued report counts if they are due.
    pub(super) async fn write_due_report_counts(&self) -> Result<(), StoreError> {
        match self.report_since.due() {
            Some(at) if at <= Instant::now() => self.write_pending_report_counts().await,
            _ => Ok(()),
        }
    }

    /// Writes the queued report counts, one script per day and chunk; what
    /// a failure leaves unwritten is put back.
    pub(super) async fn write_pending_report_counts(&self) -> Result<(), StoreError> {
        let (_turn, queue) = self.report_pending.take().await;
        self.report_since.taken();
        let mut scripts = queue.unwritten;
        for (day, mut cells) in queue.tally.cells() {
            while cells.len() > CELLS_PER_SCRIPT {
                let rest = cells.split_off(CELLS_PER_SCRIPT);
                scripts.push((day, std::mem::replace(&mut cells, rest)));
            }
            scripts.push((day, cells));
        }
        let cap = self.report_values_per_day;
        let mut scripts = scripts.into_iter();
        while let Some((day, cells)) = scripts.next() {
            let written = self
                .with_pooled_conn(async |conn| {
                    write_report_cells(conn, &self.keys, day, &cells, cap).await
                })
                .await;
            if let Err(e) = written {
                log::warn!("report counts not written yet, will retry: {e}");
                let left: Vec<_> = std::iter::once((day, cells)).chain(scripts).collect();
                self.report_pending
                    .give_back(|queued| queued.unwritten.splice(0..0, left).for_each(drop));
                self.report_since.queued();
                return Err(e);
            }
        }
        Ok(())
    }

    /// The report hashes of `days`, after this process's queued counts are
    /// written (so it reads its own clicks).
    pub(super) async fn sum_report_counters(
        &self,
        days: &[Day],
        dimension: Option<Dimension>,
    ) -> Result<Vec<DayCounters>, StoreError> {
        self.write_pending_report_counts().await?;
        let mut read = Vec::with_capacity(days.len());
        let per_trip = if dimension.is_some() {
            VALUE_DAYS_PER_ROUND_TRIP
        } else {
            HOUR_DAYS_PER_ROUND_TRIP
        };
        for chunk in days.chunks(per_trip) {
            let part = self
                .with_pooled_conn(async |conn| {
                    read_report_counters(conn, &self.keys, chunk, dimension).await
                })
                .await?;
            read.extend(part);
        }
        Ok(read)
    }
}

/// Adds one script's worth of a day's increments (`scripts/report.lua`),
/// atomically, in the day's slot. `invoke_async` loads the script when a
/// restarted Redis has forgotten it.
pub(super) async fn write_report_cells<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    day: Day,
    cells: &[(Cell, i64)],
    cap: usize,
) -> Result<(), StoreError> {
    let mut invocation = REPORT_SCRIPT.prepare_invoke();
    invocation.key(keys.report(day, None));
    for dimension in Dimension::ALL {
        invocation
            .key(keys.report(day, Some(dimension)))
            .key(keys.report_values(day, dimension));
    }
    invocation.arg(cap);
    for (cell, n) in cells {
        invocation
            .arg(cell.dimension.map_or(0, |d| d.index() + 1))
            .arg(&cell.value)
            .arg(&cell.field)
            .arg(*n);
    }
    invocation
        .invoke_async::<()>(conn)
        .await
        .map_err(unavailable)
}

/// The report hash of each of `days` for `dimension`, one `HGETALL` a day
/// in one pipeline. Spans one slot per day.
pub(super) async fn read_report_counters<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    days: &[Day],
    dimension: Option<Dimension>,
) -> Result<Vec<DayCounters>, StoreError> {
    let mut pipe = redis::pipe();
    for day in days {
        pipe.hgetall(keys.report(*day, dimension));
    }
    let hashes: Vec<std::collections::HashMap<String, i64>> =
        pipe.query_async(conn).await.map_err(unavailable)?;
    Ok(hashes
        .into_iter()
        .map(|hash| {
            hash.into_iter()
                .map(|(field, n)| (field, i128::from(n)))
                .collect()
        })
        .collect())
}
