//! Unique-click counts that are decided on the request path and written just
//! after it, many per round trip.
//!
//! Whether a click is its visitor's first on an offer and affiliate is
//! decided by Redis atomically (`SET marker NX EX window` in the click's own
//! pipeline), but counting it needs that answer first: in one round trip only
//! a Lua script can do both, and the script was a third of Redis's work per
//! click (docs/PERFORMANCE.md). So the click's pipeline stores the record and
//! counts the click, clickback reads the marker's answer, and the unique
//! count joins this queue. A writer task sends whatever has queued up while
//! its previous write was in flight, summed per counter: one `HINCRBY` per
//! offer, affiliate, shard and day instead of one per click.
//!
//! A read of the counters flushes the queue first (and waits for a write in
//! flight), so a process always reads its own counts; other processes see
//! them a round trip later. If clickback stops without its shutdown flush,
//! the unique counts of the clicks in the queue are lost (the clicks, their
//! records and their `clk` counts are not). A failed write puts its counts
//! back for the next one.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// `(stats key, counter field)` → increments not yet written.
pub(super) type Counts = HashMap<(String, String), i64>;

/// The queue and the handle of its writer task.
pub(super) struct PendingCounts {
    queued: Mutex<Queued>,
    /// Wakes the writer; a wake-up while it writes is kept for after.
    wake: Notify,
    /// One write at a time, so a reader's flush waits for the writer's.
    writing: tokio::sync::Mutex<()>,
}

struct Queued {
    counts: Counts,
    writer: Option<JoinHandle<()>>,
}

impl PendingCounts {
    pub(super) fn new() -> Self {
        Self {
            queued: Mutex::new(Queued {
                counts: Counts::new(),
                writer: None,
            }),
            wake: Notify::new(),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Queues one increment and wakes the writer; `start_writer` runs when no
    /// writer is alive (the first count, or its runtime has gone).
    pub(super) fn add(
        &self,
        key: String,
        field: String,
        start_writer: impl FnOnce() -> Option<JoinHandle<()>>,
    ) {
        let Ok(mut queued) = self.queued.lock() else {
            return;
        };
        *queued.counts.entry((key, field)).or_insert(0) += 1;
        if queued.writer.as_ref().is_none_or(JoinHandle::is_finished) {
            queued.writer = start_writer();
        }
        drop(queued);
        self.wake.notify_one();
    }

    /// Waits until there may be something to write.
    pub(super) async fn wait(&self) {
        self.wake.notified().await;
    }

    /// Takes everything queued, holding the write turn until the guard drops.
    pub(super) async fn take(&self) -> (tokio::sync::MutexGuard<'_, ()>, Counts) {
        let turn = self.writing.lock().await;
        let counts = match self.queued.lock() {
            Ok(mut queued) => std::mem::take(&mut queued.counts),
            Err(_) => Counts::new(),
        };
        (turn, counts)
    }

    /// Puts counts whose write failed back into the queue.
    pub(super) fn give_back(&self, counts: Counts) {
        if let Ok(mut queued) = self.queued.lock() {
            for (counter, n) in counts {
                *queued.counts.entry(counter).or_insert(0) += n;
            }
        }
    }
}

impl Drop for PendingCounts {
    fn drop(&mut self) {
        if let Ok(queued) = self.queued.get_mut() {
            if let Some(writer) = queued.writer.take() {
                writer.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(key: &str, field: &str) -> (String, String) {
        (key.to_owned(), field.to_owned())
    }

    #[tokio::test]
    async fn increments_of_one_counter_are_summed_and_taken_once() {
        let pending = PendingCounts::new();
        for _ in 0..3 {
            pending.add("st:1".into(), "o|a|uclk".into(), || None);
        }
        pending.add("st:2".into(), "o|a|uclk".into(), || None);
        let (_turn, counts) = pending.take().await;
        assert_eq!(counts.get(&counter("st:1", "o|a|uclk")), Some(&3));
        assert_eq!(counts.get(&counter("st:2", "o|a|uclk")), Some(&1));
        drop(_turn);
        assert!(pending.take().await.1.is_empty());
    }

    #[tokio::test]
    async fn counts_given_back_are_added_to_newer_ones() {
        let pending = PendingCounts::new();
        pending.add("st".into(), "f".into(), || None);
        let (turn, counts) = pending.take().await;
        pending.add("st".into(), "f".into(), || None);
        pending.give_back(counts);
        drop(turn);
        assert_eq!(pending.take().await.1.get(&counter("st", "f")), Some(&2));
    }

    #[tokio::test]
    async fn a_writer_is_started_once_while_it_lives() {
        let pending = PendingCounts::new();
        let mut started = 0;
        for _ in 0..5 {
            pending.add("st".into(), "f".into(), || {
                started += 1;
                Some(tokio::spawn(std::future::pending()))
            });
        }
        assert_eq!(started, 1);
    }
}
