//! Background work, owned in one place.
//!
//! Five tasks run beside the HTTP server, each started here, each stopped by
//! the same shutdown signal, each draining what it holds before it ends, and
//! each counting its failures in `clickback_background_failures_total{task}`:
//!
//! | task | does | on shutdown |
//! |---|---|---|
//! | `config_refresh` | polls the config version every `CLICKBACK_CONFIG_REFRESH_MS`, reloads offers and affiliates when it moved, re-reads the cap counters of capped offers | stops |
//! | `postback_log` | files queued postback log entries, a batch per round trip | files what is queued |
//! | `write_behind` | writes the store's held-back writes (the Redis store's unique-click and report counts) | writes what is held |
//! | `deliveries` | claims and sends affiliate postbacks ([`crate::delivery`]); refreshes the backlog gauges | lets attempts in flight finish (bounded); the rest come due again when their lease ends |
//! | `key_use` | writes API keys' last use ([`crate::access::usage`]), at most once a minute per key | writes what is queued |
//!
//! A task that fails keeps going: the next tick or batch tries again. The
//! writers let work gather for [`GATHER`] after they are woken.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::access::Access;
use crate::caps::CapWatch;
use crate::clock::Clock;
use crate::delivery::DeliveryWorker;
use crate::metrics::{Metrics, StoreOperation};
use crate::offers::ConfigCache;
use crate::postback::log::PostbackLog;
use crate::store::{Store, StoreError};

/// What the background tasks work on.
pub struct Work {
    /// Where everything is written and read.
    pub store: Arc<dyn Store>,
    /// The config cache the refresher keeps fresh.
    pub cache: Arc<ConfigCache>,
    /// The full caps the refresher re-reads.
    pub caps: Arc<CapWatch>,
    /// The postback log queue the log writer drains.
    pub postback_log: Arc<PostbackLog>,
    /// Where failures are counted.
    pub metrics: Metrics,
    /// Today's cap periods.
    pub clock: Arc<dyn Clock>,
    /// Period of the config poll.
    pub config_refresh: Duration,
    /// The affiliate postback worker; `None` when this instance sends none.
    pub deliveries: Option<Arc<DeliveryWorker>>,
    /// Keys' last use, queued by requests.
    pub access: Arc<Access>,
}

/// The running background tasks.
pub struct Background {
    shutdown: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Background {
    /// Starts every background task on the current runtime.
    pub fn start(work: Work) -> Self {
        let (shutdown, stopped) = watch::channel(false);
        let deliveries = work.deliveries.clone();
        let work = Arc::new(work);
        let mut tasks = vec![
            (
                "config_refresh",
                tokio::spawn(refresh_config(Arc::clone(&work), stopped.clone())),
            ),
            (
                "postback_log",
                tokio::spawn(write_postback_log(Arc::clone(&work), stopped.clone())),
            ),
            (
                "write_behind",
                tokio::spawn(write_behind(Arc::clone(&work), stopped.clone())),
            ),
            (
                "key_use",
                tokio::spawn(write_key_use(Arc::clone(&work), stopped.clone())),
            ),
        ];
        if let Some(worker) = deliveries {
            tasks.push(("deliveries", tokio::spawn(worker.run(stopped))));
        }
        for (task, _) in &tasks {
            work.metrics.background_failures.with_label_values(&[task]);
        }
        Self { shutdown, tasks }
    }

    /// Signals every task to stop and waits until each has drained.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for (task, handle) in self.tasks {
            if let Err(e) = handle.await {
                log::warn!("background task {task} ended abnormally: {e}");
            }
        }
    }
}

/// Resolves once shutdown is signalled (or the signal's owner is gone).
async fn stopped(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await;
}

async fn refresh_config(work: Arc<Work>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(work.config_refresh);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            _ = ticker.tick() => {}
        }
        let refreshed = refresh_once(&work).await;
        match refreshed {
            Ok(changed) => {
                if changed {
                    log::info!(
                        "configuration reloaded (version {})",
                        work.cache.snapshot().version
                    );
                }
                if failing {
                    log::info!("configuration store reachable again");
                }
                failing = false;
            }
            Err(e) => {
                work.metrics.store_error(StoreOperation::ConfigRefresh);
                work.metrics.background_failure("config_refresh");
                if !failing {
                    log::warn!("cannot refresh configuration, serving the last loaded one: {e}");
                }
                failing = true;
            }
        }
    }
}

/// One tick of the refresher: the config if its version moved, then the caps.
async fn refresh_once(work: &Work) -> Result<bool, StoreError> {
    let changed = work.cache.refresh_if_changed(work.store.as_ref()).await?;
    work.caps
        .refresh(
            work.store.as_ref(),
            &work.cache.snapshot(),
            work.clock.now(),
        )
        .await?;
    Ok(changed)
}

/// How long a writer lets work gather after it is woken before it writes:
/// a few milliseconds of delay for a log entry or a unique count, in
/// exchange for one pipeline per few hundred requests instead of one per
/// handful, and far fewer wake-ups of the writer's thread under load.
const GATHER: Duration = Duration::from_millis(2);

async fn write_postback_log(work: Arc<Work>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stopping = tokio::select! {
            _ = stopped(&mut shutdown) => true,
            _ = work.postback_log.wait() => false,
        };
        if !stopping {
            tokio::time::sleep(GATHER).await;
        }
        if let Err((lost, e)) = work.postback_log.write(work.store.as_ref()).await {
            work.metrics.background_failure("postback_log");
            log::debug!("{lost} postback log entries lost: {e}");
        }
        if stopping {
            return;
        }
    }
}

async fn write_behind(work: Arc<Work>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stopping = tokio::select! {
            _ = stopped(&mut shutdown) => true,
            ready = work.store.write_behind_ready() => ready.is_err(),
        };
        if !stopping {
            tokio::time::sleep(GATHER).await;
        }
        let written = if stopping {
            work.store.flush_all().await
        } else {
            work.store.flush().await
        };
        if let Err(e) = written {
            work.metrics.background_failure("write_behind");
            if stopping {
                log::warn!("shutting down with unwritten unique-click or report counts: {e}");
            }
        }
        if stopping {
            return;
        }
    }
}

async fn write_key_use(work: Arc<Work>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stopping = tokio::select! {
            _ = stopped(&mut shutdown) => true,
            _ = work.access.usage.wait() => false,
        };
        if let Err(e) = work.access.usage.write(work.store.as_ref()).await {
            work.metrics.store_error(StoreOperation::Access);
            work.metrics.background_failure("key_use");
            log::debug!("keys' last use not written, kept for the next write: {e}");
        }
        if stopping {
            return;
        }
    }
}
