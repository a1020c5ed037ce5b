//! A queue that a background task writes out in batches: whatever
//! accumulates while the task's previous write is in flight goes out as the
//! next one. A quiet server writes each item at once; a busy one writes
//! hundreds per round trip.
//!
//! Used for what a request may hand off instead of waiting for it: the
//! postback troubleshooting log (`postback/log.rs`) and the Redis store's
//! unique-click counts (`store/redis/clicks.rs`) and report counts
//! (`store/redis/reports.rs`). The writer tasks are started,
//! stopped and drained by [`crate::background`].

use std::sync::Mutex;

use tokio::sync::{MutexGuard, Notify};

/// Items waiting to be written.
pub struct BatchQueue<B> {
    queued: Mutex<B>,
    /// Wakes the writer; a wake-up while it writes is kept for after.
    wake: Notify,
    /// One write at a time, so a caller that writes the queue itself (a
    /// flush) waits for the writer's write in flight.
    writing: tokio::sync::Mutex<()>,
}

impl<B: Default> Default for BatchQueue<B> {
    fn default() -> Self {
        Self {
            queued: Mutex::new(B::default()),
            wake: Notify::new(),
            writing: tokio::sync::Mutex::new(()),
        }
    }
}

impl<B: Default> BatchQueue<B> {
    /// Adds to the batch with `add` and wakes the writer.
    pub fn push(&self, add: impl FnOnce(&mut B)) {
        let Ok(mut queued) = self.queued.lock() else {
            return;
        };
        add(&mut queued);
        drop(queued);
        self.wake.notify_one();
    }

    /// Waits until there may be something to write.
    pub async fn wait(&self) {
        self.wake.notified().await;
    }

    /// Takes everything queued, holding the write turn until the guard drops.
    pub async fn take(&self) -> (MutexGuard<'_, ()>, B) {
        let turn = self.writing.lock().await;
        let batch = match self.queued.lock() {
            Ok(mut queued) => std::mem::take(&mut *queued),
            Err(_) => B::default(),
        };
        (turn, batch)
    }

    /// Puts back what a failed write took, merged by `merge` into what has
    /// queued since.
    pub fn give_back(&self, merge: impl FnOnce(&mut B)) {
        if let Ok(mut queued) = self.queued.lock() {
            merge(&mut queued);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_is_pushed_is_taken_once() {
        let queue: BatchQueue<Vec<u32>> = BatchQueue::default();
        for i in 0..3 {
            queue.push(|batch| batch.push(i));
        }
        let (turn, batch) = queue.take().await;
        assert_eq!(batch, vec![0, 1, 2]);
        drop(turn);
        assert!(queue.take().await.1.is_empty());
    }

    #[tokio::test]
    async fn what_is_given_back_is_merged_with_newer_items() {
        let queue: BatchQueue<Vec<u32>> = BatchQueue::default();
        queue.push(|batch| batch.push(1));
        let (turn, taken) = queue.take().await;
        queue.push(|batch| batch.push(2));
        queue.give_back(|batch| batch.splice(0..0, taken).for_each(drop));
        drop(turn);
        assert_eq!(queue.take().await.1, vec![1, 2]);
    }

    #[tokio::test]
    async fn a_push_wakes_a_waiting_writer() {
        let queue: BatchQueue<Vec<u32>> = BatchQueue::default();
        queue.push(|batch| batch.push(1));
        // The wake-up is kept for a writer that starts waiting afterwards.
        tokio::time::timeout(std::time::Duration::from_secs(5), queue.wait())
            .await
            .expect("woken");
    }
}
