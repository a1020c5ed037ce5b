//! How the Redis store reaches Redis, on one Redis or on a Redis Cluster:
//! one multiplexed connection per tokio runtime for the hot path, separate
//! connections for bulk reads, and the timeout that bounds every operation.
//!
//! The operations in the sibling modules never open a connection: each takes
//! any `redis::aio::ConnectionLike` and is handed a [`Conn`] here, by
//! [`RedisStore::with_conn`] or [`RedisStore::with_pooled_conn`]. Choosing a
//! connection, and whether it is one Redis or a cluster, is this module's
//! job alone:
//!
//! - one Redis (`REDIS_URL`): a `ConnectionManager` per runtime for the hot
//!   path, a deadpool pool for bulk reads;
//! - a cluster (`REDIS_CLUSTER_NODES`): a cluster connection per runtime for
//!   the hot path and another per runtime for bulk reads. A cluster
//!   connection multiplexes by itself (one socket per node), so a pool of
//!   them only adds sockets: it was slower for the click write
//!   (docs/PERFORMANCE.md, "Redis Cluster"). Its pipelines go through the
//!   per-slot splitter (`super::slots`).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_redis::{Manager, Pool, PoolConfig, Runtime, Timeouts};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::AsyncConnectionConfig;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::{slots, RedisStore};
use crate::store::StoreError;

/// Redirections and retries a cluster request may take (MOVED, ASK,
/// TRYAGAIN, a node being replaced) before it fails; the store's timeout
/// bounds them all.
const CLUSTER_RETRIES: u32 = 32;
/// Shortest wait before a cluster retry, ms: a slot in migration is usually
/// stable again within milliseconds.
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 5;
/// Longest wait before a cluster retry, ms.
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 100;

impl RedisStore {
    /// Runs `op` on this runtime's multiplexed connection within the timeout.
    pub(super) async fn with_conn<T>(
        &self,
        op: impl AsyncFnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.hot.current()?;
        tokio::time::timeout(self.timeout, op(&mut conn))
            .await
            .map_err(|_| timed_out(self.timeout))?
    }

    /// Runs `op` on a bulk-read connection (a pooled one of its own on one
    /// Redis) within the timeout (which includes waiting for the connection).
    pub(super) async fn with_pooled_conn<T>(
        &self,
        op: impl AsyncFnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let work = async {
            let mut conn =
                match &self.bulk {
                    Bulk::Pool(pool) => Conn::Pooled(pool.get().await.map_err(|e| {
                        StoreError::unavailable("taking a pooled Redis connection", e)
                    })?),
                    Bulk::Cluster(connections) => connections.current()?,
                };
            op(&mut conn).await
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| timed_out(self.timeout))?
    }
}

/// One connection an operation runs on.
pub(super) enum Conn {
    /// This runtime's multiplexed connection to the one Redis.
    Shared(ConnectionManager),
    /// A pooled connection to the one Redis, for bulk reads.
    Pooled(deadpool_redis::Connection),
    /// A cluster connection: commands go to their slot's primary; a
    /// pipeline is split per slot ([`slots::run_per_slot`]).
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Shared(conn) => conn.req_packed_command(cmd),
            Self::Pooled(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Shared(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Pooled(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => Box::pin(slots::run_per_slot(conn, pipeline)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Shared(conn) => conn.get_db(),
            Self::Pooled(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Where bulk reads (a year of stats, listings) go, so that they never
/// queue clicks behind them on the hot path's connection.
#[derive(Clone)]
pub(super) enum Bulk {
    /// One Redis: a deadpool pool. A broken pooled connection is replaced
    /// on the next checkout.
    Pool(Pool),
    /// A cluster: cluster connections of their own, one per runtime.
    Cluster(PerRuntimeConnections),
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

/// What [`PerRuntimeConnections`] connects to.
enum Target {
    /// One Redis.
    Single {
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    /// A Redis Cluster, found from its seed nodes.
    Cluster {
        client: ClusterClient,
        config: ClusterConfig,
    },
}

/// Hands out one lazily connected connection per tokio runtime.
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
    /// One Redis or a cluster (shared by clones: a cluster client is large).
    target: Arc<Target>,
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
    conn: CachedConn,
}

/// A cached connection: cloning it shares its socket(s).
#[derive(Clone)]
enum CachedConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

thread_local! {
    /// The connections this thread's runtime uses, at most one per live store.
    static CONNECTIONS: RefCell<Vec<CachedConnection>> = const { RefCell::new(Vec::new()) };
}

/// A fresh id for each set of per-runtime connections.
fn next_store_id() -> u64 {
    static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);
    NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed)
}

impl PerRuntimeConnections {
    /// Connections to `url` that give up connecting, and waiting for an
    /// answer, after `timeout`, and retry a broken connection once, quickly.
    /// Connects lazily, so clickback starts even while Redis is down.
    pub(super) fn open(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::unavailable("reading REDIS_URL", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(250));
        Ok(Self {
            target: Arc::new(Target::Single { client, config }),
            store_id: next_store_id(),
            alive: Arc::new(()),
        })
    }

    /// Connections to the cluster that `nodes` (`redis://host:port` each)
    /// belong to. Each node connection gives up connecting, and waiting for
    /// an answer, after `timeout`; a redirected or refused request is
    /// retried quickly, within the store's timeout. Connects lazily, so
    /// clickback starts even while the cluster is down.
    pub(super) fn open_cluster(nodes: &[String], timeout: Duration) -> Result<Self, StoreError> {
        let client = ClusterClientBuilder::new(nodes.to_vec())
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
            // Each try is bounded by the response timeout; the store's
            // timeout bounds the whole operation, retries included.
            .overall_response_timeout(None)
            .build()
            .map_err(|e| StoreError::unavailable("reading REDIS_CLUSTER_NODES", e))?;
        let config = ClusterConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        Ok(Self {
            target: Arc::new(Target::Cluster { client, config }),
            store_id: next_store_id(),
            alive: Arc::new(()),
        })
    }

    /// Another set of connections to the same target, sharing no socket
    /// with this one.
    pub(super) fn separate(&self) -> Self {
        Self {
            target: Arc::clone(&self.target),
            store_id: next_store_id(),
            alive: Arc::new(()),
        }
    }

    /// The connection of the calling runtime, created on first use.
    pub(super) fn current(&self) -> Result<Conn, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| StoreError::unavailable("finding the async runtime", e))?
            .id();
        let cached = CONNECTIONS.with_borrow_mut(|cached| {
            if let Some(found) = cached
                .iter()
                .find(|c| c.store_id == self.store_id && c.runtime == runtime)
            {
                return Ok(found.conn.clone());
            }
            // Connections of a finished runtime or a dropped store are dead weight.
            cached.retain(|c| c.runtime == runtime && c.alive.strong_count() > 0);
            let conn = match self.target.as_ref() {
                Target::Single { client, config } => CachedConn::Single(
                    ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                        .map_err(|e| StoreError::unavailable("setting up a Redis connection", e))?,
                ),
                Target::Cluster { client, config } => CachedConn::Cluster(
                    client.get_pending_async_connection_with_config(config.clone()),
                ),
            };
            cached.push(CachedConnection {
                store_id: self.store_id,
                runtime,
                alive: Arc::downgrade(&self.alive),
                conn: conn.clone(),
            });
            Ok(conn)
        })?;
        Ok(match cached {
            CachedConn::Single(conn) => Conn::Shared(conn),
            CachedConn::Cluster(conn) => Conn::Cluster(conn),
        })
    }
}

/// `PING`: whether Redis answers at all (readiness). On a cluster, every
/// primary must answer.
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
