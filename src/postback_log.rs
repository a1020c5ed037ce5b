//! The postback troubleshooting log's writer: entries are filed in the
//! background, many per round trip.
//!
//! Each answered postback adds one entry to its offer's log. Writing each
//! entry on its own (`LPUSH` + `LTRIM`) was a third Redis round trip per
//! postback; under load that is a request of its own in clickback and two
//! commands in Redis for every conversion. The writer instead takes whatever
//! has queued up while its previous write was in flight and files it as one
//! pipeline: one entry at a time on a quiet server (no added delay), hundreds
//! at once on a busy one.
//!
//! The log is a debugging aid, not a ledger: an entry is lost if Redis is
//! down when it is written or the queue is full, and the entries still queued
//! when the process stops. Conversions and their counters never go this way.

use std::sync::Arc;

use crate::batch::BatchQueue;
use crate::domain::OfferId;
use crate::store::Store;

/// Entries waiting to be written, at most; more are dropped (and logged at
/// debug level) rather than held while Redis is unreachable.
const QUEUE_CAPACITY: usize = 16_384;

type Entry = (Option<OfferId>, String);

/// Queues postback log entries for a background writer task.
pub struct PostbackLog {
    store: Arc<dyn Store>,
    keep: usize,
    queue: Arc<BatchQueue<Vec<Entry>>>,
}

impl PostbackLog {
    /// A log writer that keeps the newest `keep` entries of each offer.
    /// The writer task starts with the first entry, on the runtime that
    /// files it.
    pub fn new(store: Arc<dyn Store>, keep: usize) -> Self {
        Self {
            store,
            keep,
            queue: Arc::default(),
        }
    }

    /// Queues an entry; never waits. Outside a tokio runtime the entry waits
    /// for the next one filed inside one.
    pub fn append(&self, offer: Option<OfferId>, entry: String) {
        self.queue.push(
            |queued| {
                if queued.len() < QUEUE_CAPACITY {
                    queued.push((offer, entry));
                } else {
                    log::debug!("postback log queue full: entry dropped");
                }
            },
            || write_batches(Arc::clone(&self.queue), Arc::clone(&self.store), self.keep),
        );
    }
}

impl Drop for PostbackLog {
    fn drop(&mut self) {
        self.queue.stop_writer();
    }
}

/// Writes everything queued, one batch per round trip, until stopped.
async fn write_batches(queue: Arc<BatchQueue<Vec<Entry>>>, store: Arc<dyn Store>, keep: usize) {
    loop {
        queue.wait().await;
        let (_turn, batch) = queue.take().await;
        if batch.is_empty() {
            continue;
        }
        let count = batch.len();
        if let Err(e) = store.append_postback_logs(batch, keep).await {
            log::debug!("{count} postback log entries lost: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn entries_queued_together_are_all_filed_in_order() {
        let store = Arc::new(MemoryStore::new());
        let log = PostbackLog::new(store.clone(), 100);
        let offer = OfferId::parse("o1").expect("id");
        for i in 0..300 {
            log.append(Some(offer.clone()), format!("{i}"));
        }
        let mut filed = Vec::new();
        for _ in 0..100 {
            tokio::task::yield_now().await;
            filed = store
                .read_postback_log(Some(&offer), 100)
                .await
                .expect("read");
            if filed.first().map(String::as_str) == Some("299") {
                break;
            }
        }
        let newest: Vec<String> = (200..300).rev().map(|i| i.to_string()).collect();
        assert_eq!(filed, newest);
    }

    #[test]
    fn outside_a_runtime_an_entry_is_kept_not_a_panic() {
        let store = Arc::new(MemoryStore::new());
        let log = PostbackLog::new(store, 10);
        log.append(None, "{}".into());
    }
}
