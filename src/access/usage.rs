//! When each API key was last used, written coarsely and off the request
//! path: a request only notes the use in memory; at most once a minute per
//! key the use is queued, and the `key_use` background task writes what
//! queued in one command. A listing may therefore be up to a minute (and a
//! write) behind.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::batch::BatchQueue;
use crate::store::{Store, StoreError};

/// A key's use is written at most this often, seconds.
pub const WRITE_EVERY_SECS: u64 = 60;

/// Uses of keys on their way to the store.
#[derive(Default)]
pub struct KeyUsage {
    /// Key id → last use, waiting for the writer.
    queue: BatchQueue<HashMap<String, u64>>,
    /// Key id → the last use this process queued, to queue the next one no
    /// sooner than [`WRITE_EVERY_SECS`] later.
    queued: Mutex<HashMap<String, u64>>,
}

impl KeyUsage {
    /// Nothing used yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that key `id` was used at `now` (Unix seconds).
    pub fn used(&self, id: &str, now: u64) {
        let Ok(mut queued) = self.queued.lock() else {
            return;
        };
        if queued
            .get(id)
            .is_some_and(|last| now < last.saturating_add(WRITE_EVERY_SECS))
        {
            return;
        }
        queued.insert(id.to_owned(), now);
        drop(queued);
        self.queue.push(|batch| {
            batch.insert(id.to_owned(), now);
        });
    }

    /// Waits until there may be a use to write.
    pub async fn wait(&self) {
        self.queue.wait().await;
    }

    /// Writes what queued; on failure it is put back for the next write.
    pub async fn write(&self, store: &dyn Store) -> Result<(), StoreError> {
        let (_turn, batch) = self.queue.take().await;
        if batch.is_empty() {
            return Ok(());
        }
        let uses: Vec<(String, u64)> = batch.clone().into_iter().collect();
        store.record_key_use(uses).await.inspect_err(|_| {
            self.queue.give_back(|queued| {
                for (id, at) in batch {
                    queued.entry(id).or_insert(at);
                }
            });
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn a_keys_use_is_written_at_most_once_a_minute() {
        let usage = KeyUsage::new();
        let store = MemoryStore::new();
        usage.used("k1", 1_000);
        usage.used("k1", 1_030);
        usage.write(&store).await.expect("written");
        assert_eq!(
            store.read_key_use().await.expect("read").get("k1"),
            Some(&1_000)
        );

        usage.used("k1", 1_060);
        usage.write(&store).await.expect("written");
        assert_eq!(
            store.read_key_use().await.expect("read").get("k1"),
            Some(&1_060)
        );
    }
}
