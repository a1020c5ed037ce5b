//! A queue that a background task writes out in batches: whatever
//! accumulates while the task's previous write is in flight goes out as the
//! next one. A quiet server writes each item at once; a busy one writes
//! hundreds per round trip.
//!
//! Used for what a request may hand off instead of waiting for it: the
//! postback troubleshooting log (`postback_log.rs`) and the Redis store's
//! unique-click counts (`store/redis.rs`). The writer task starts with the
//! first item, on the runtime that pushes it, and again if that runtime has
//! gone (an actix worker restarted).

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::{MutexGuard, Notify};
use tokio::task::JoinHandle;

/// Items waiting to be written, and the task that writes them.
pub struct BatchQueue<B> {
    queued: Mutex<Queued<B>>,
    /// Wakes the writer; a wake-up while it writes is kept for after.
    wake: Notify,
    /// One write at a time, so a caller that writes the queue itself (a
    /// flush) waits for the writer's write in flight.
    writing: tokio::sync::Mutex<()>,
}

struct Queued<B> {
    batch: B,
    writer: Option<JoinHandle<()>>,
}

impl<B: Default> Default for BatchQueue<B> {
    fn default() -> Self {
        Self {
            queued: Mutex::new(Queued {
                batch: B::default(),
                writer: None,
            }),
            wake: Notify::new(),
            writing: tokio::sync::Mutex::new(()),
        }
    }
}

impl<B: Default> BatchQueue<B> {
    /// Adds to the batch with `add` and wakes the writer. When no writer is
    /// alive, `writer()` is spawned on the current runtime; outside a runtime
    /// the item waits for the next push or a [`BatchQueue::take`].
    pub fn push<F>(&self, add: impl FnOnce(&mut B), writer: impl FnOnce() -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Ok(mut queued) = self.queued.lock() else {
            return;
        };
        add(&mut queued.batch);
        if queued.writer.as_ref().is_none_or(JoinHandle::is_finished) {
            queued.writer = tokio::runtime::Handle::try_current()
                .ok()
                .map(|runtime| runtime.spawn(writer()));
        }
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
            Ok(mut queued) => std::mem::take(&mut queued.batch),
            Err(_) => B::default(),
        };
        (turn, batch)
    }

    /// Puts back what a failed write took, merged by `merge` into what has
    /// queued since.
    pub fn give_back(&self, merge: impl FnOnce(&mut B)) {
        if let Ok(mut queued) = self.queued.lock() {
            merge(&mut queued.batch);
        }
    }
}

impl<B> BatchQueue<B> {
    /// Stops the writer task, for an owner that goes away: the task holds
    /// the queue, so it would otherwise wait until its runtime ends.
    pub fn stop_writer(&self) {
        if let Ok(mut queued) = self.queued.lock() {
            if let Some(writer) = queued.writer.take() {
                writer.abort();
            }
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
            queue.push(|batch| batch.push(i), std::future::pending);
        }
        let (turn, batch) = queue.take().await;
        assert_eq!(batch, vec![0, 1, 2]);
        drop(turn);
        assert!(queue.take().await.1.is_empty());
    }

    #[tokio::test]
    async fn what_is_given_back_is_merged_with_newer_items() {
        let queue: BatchQueue<Vec<u32>> = BatchQueue::default();
        queue.push(|batch| batch.push(1), std::future::pending);
        let (turn, taken) = queue.take().await;
        queue.push(|batch| batch.push(2), std::future::pending);
        queue.give_back(|batch| batch.splice(0..0, taken).for_each(drop));
        drop(turn);
        assert_eq!(queue.take().await.1, vec![1, 2]);
    }

    #[tokio::test]
    async fn a_writer_is_started_once_while_it_lives() {
        let queue: BatchQueue<Vec<u32>> = BatchQueue::default();
        let mut started = 0;
        for i in 0..5 {
            queue.push(
                |batch| batch.push(i),
                || {
                    started += 1;
                    std::future::pending()
                },
            );
        }
        assert_eq!(started, 1);
    }

    #[test]
    fn outside_a_runtime_items_wait_and_nothing_panics() {
        let queue: BatchQueue<Vec<u32>> = BatchQueue::default();
        queue.push(|batch| batch.push(1), std::future::pending);
    }
}
