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

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::domain::OfferId;
use crate::store::Store;

/// Entries waiting to be written, at most; more are dropped (and logged at
/// debug level) rather than held while Redis is unreachable.
const QUEUE_CAPACITY: usize = 16_384;
/// Entries in one write, at most.
const BATCH_MAX: usize = 512;

type Entry = (Option<OfferId>, String);

/// Queues postback log entries for a background writer task.
pub struct PostbackLog {
    store: Arc<dyn Store>,
    keep: usize,
    /// The running writer's queue; `None` until the first entry, and
    /// replaced if the writer's runtime has gone (a restarted worker).
    writer: Mutex<Option<mpsc::Sender<Entry>>>,
}

impl PostbackLog {
    /// A log writer that keeps the newest `keep` entries of each offer.
    /// The writer task starts with the first entry, on the runtime that
    /// files it.
    pub fn new(store: Arc<dyn Store>, keep: usize) -> Self {
        Self {
            store,
            keep,
            writer: Mutex::new(None),
        }
    }

    /// Queues an entry; never waits. Outside a tokio runtime the entry is dropped.
    pub fn append(&self, offer: Option<OfferId>, entry: String) {
        let Ok(mut writer) = self.writer.lock() else {
            return;
        };
        let mut entry = (offer, entry);
        if let Some(queue) = writer.as_ref() {
            match queue.try_send(entry) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => {
                    log::debug!("postback log queue full: entry dropped");
                    return;
                }
                Err(TrySendError::Closed(back)) => entry = back,
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (queue, entries) = mpsc::channel(QUEUE_CAPACITY);
        // A fresh queue has room for one entry.
        let _ = queue.try_send(entry);
        runtime.spawn(write_batches(entries, Arc::clone(&self.store), self.keep));
        *writer = Some(queue);
    }
}

/// Writes everything queued, one batch per round trip, until every sender is gone.
async fn write_batches(mut entries: mpsc::Receiver<Entry>, store: Arc<dyn Store>, keep: usize) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while entries.recv_many(&mut batch, BATCH_MAX).await > 0 {
        let count = batch.len();
        if let Err(e) = store
            .append_postback_logs(std::mem::take(&mut batch), keep)
            .await
        {
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
    fn outside_a_runtime_an_entry_is_dropped_not_a_panic() {
        let store = Arc::new(MemoryStore::new());
        let log = PostbackLog::new(store, 10);
        log.append(None, "{}".into());
    }
}
