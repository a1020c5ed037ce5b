//! How the Redis store reaches Redis: one multiplexed connection per tokio
//! runtime for the hot path, a deadpool pool for bulk reads, and the timeout
//! that bounds every operation.
//!
//! The operations in the sibling modules never open a connection: each takes
//! any `redis::aio::ConnectionLike` and is handed one here, by
//! [`RedisStore::with_conn`] or [`RedisStore::with_pooled_conn`]. Choosing a
//! connection (and, some day, a cluster client) is this module's job alone.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_redis::{Manager, Pool, PoolConfig, Runtime, Timeouts};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::AsyncConnectionConfig;

use super::RedisStore;
use crate::store::StoreError;

impl RedisStore {
    /// Runs `op` on this runtime's multiplexed connection within the timeout.
    pub(super) async fn with_conn<T>(
        &self,
        op: impl AsyncFnOnce(&mut ConnectionManager) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.hot.current()?;
        tokio::time::timeout(self.timeout, op(&mut conn))
            .await
            .map_err(|_| timed_out(self.timeout))?
    }

    /// Runs `op` on a pooled connection of its own within the timeout (which
    /// includes waiting for the connection).
    pub(super) async fn with_pooled_conn<T>(
        &self,
        op: impl AsyncFnOnce(&mut deadpool_redis::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let work = async {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| StoreError::unavailable("taking a pooled Redis connection", e))?;
            op(&mut conn).await
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| timed_out(self.timeout))?
    }
}

/// The pool for bulk reads: at most `size` connections, and no wait for one
/// (to check out, create or recycle) longer than `timeout`. Its connections
/// wait `timeout` for an answer too: the client's own default (500 ms) would
/// cut a year of stats, or a listing on a loaded Redis, short of the bound
/// `CLICKBACK_STORE_TIMEOUT_MS` promises.
pub(super) fn pool(url: &str, size: usize, timeout: Duration) -> Result<Pool, StoreError> {
    let connections = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let manager = Manager::new_with_config(url, connections)
        .map_err(|e| StoreError::unavailable("setting up the Redis pool (REDIS_URL)", e))?;
    Pool::builder(manager)
        .config(PoolConfig {
            max_size: size,
            timeouts: Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            },
            ..PoolConfig::default()
        })
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::unavailable("setting up the Redis pool (REDIS_URL)", e))
}

/// Hands out one lazily connected [`ConnectionManager`] per tokio runtime.
///
/// A multiplexed connection reads and writes its socket from a task on the
/// runtime that created it. One connection shared by all actix workers put
/// every click's Redis I/O on the main thread: each click crossed threads
/// twice and the main thread burned a core doing it (measured with
/// `top -H` under `benches/load.sh`). One connection per runtime keeps the
/// request, its Redis write and the response on the same worker thread.
/// A clone is the same store: same id, same liveness token, so it shares
/// the cached connections.
#[derive(Clone)]
pub(super) struct PerRuntimeConnections {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Tells this store's cached connections apart from other stores' on the same thread.
    store_id: u64,
    /// Dropped with the store, so threads can drop its cached connections.
    alive: Arc<()>,
}

/// One cached connection of [`PerRuntimeConnections`].
struct CachedConnection {
    store_id: u64,
    runtime: tokio::runtime::Id,
    alive: Weak<()>,
    conn: ConnectionManager,
}

thread_local! {
    /// The connections this thread's runtime uses, at most one per live store.
    static CONNECTIONS: RefCell<Vec<CachedConnection>> = const { RefCell::new(Vec::new()) };
}

impl PerRuntimeConnections {
    /// Connections to `url` that give up connecting, and waiting for an
    /// answer, after `timeout`, and retry a broken connection once, quickly.
    /// Connects lazily, so clickback starts even while Redis is down.
    pub(super) fn open(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::unavailable("reading REDIS_URL", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(250));
        Ok(Self {
            client,
            config,
            store_id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(()),
        })
    }

    /// The connection of the calling runtime, created on first use.
    fn current(&self) -> Result<ConnectionManager, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| StoreError::unavailable("finding the async runtime", e))?
            .id();
        CONNECTIONS.with_borrow_mut(|cached| {
            if let Some(found) = cached
                .iter()
                .find(|c| c.store_id == self.store_id && c.runtime == runtime)
            {
                return Ok(found.conn.clone());
            }
            // Connections of a finished runtime or a dropped store are dead weight.
            cached.retain(|c| c.runtime == runtime && c.alive.strong_count() > 0);
            let conn =
                ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
                    .map_err(|e| StoreError::unavailable("setting up a Redis connection", e))?;
            cached.push(CachedConnection {
                store_id: self.store_id,
                runtime,
                alive: Arc::downgrade(&self.alive),
                conn: conn.clone(),
            });
            Ok(conn)
        })
    }
}

/// `PING`: whether Redis answers at all (readiness).
pub(super) async fn ping<C: ConnectionLike + Send>(conn: &mut C) -> Result<(), StoreError> {
    redis::cmd("PING")
        .query_async::<String>(conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// A Redis error: unreachable, refused, or an error reply.
pub(super) fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::unavailable("talking to Redis", e)
}

/// Redis answered something clickback never writes.
pub(super) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// An operation that outlived the store's timeout.
fn timed_out(timeout: Duration) -> StoreError {
    StoreError::TimedOut(timeout)
}
