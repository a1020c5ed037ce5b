//! Deliveries: every conversion reaches the affiliate's own server (API.md
//! §6) and the offer's destinations — GA4, Meta, TikTok, signed webhooks
//! (docs/destinations.md) — at least once.
//!
//! The credit step queues one delivery per target in the same atomic step
//! that records the conversion or its status change
//! (`src/store/scripts/credit.lua`), so no credit goes without its
//! postback and no postback without its credit. The [`DeliveryWorker`] of
//! every instance then:
//!
//! 1. **claims** due deliveries shard by shard, each under a lease: a worker
//!    that dies (a crash, a `kill -9`) leaves its deliveries to come due
//!    again when the lease ends, for any worker of any instance;
//! 2. **sends** each: an affiliate postback as a GET of the affiliate's URL
//!    with the macros filled in, with `Idempotency-Key:
//!    <conversion_id>:<status>`; a destination as the request its platform
//!    expects ([`platforms`]). Both go through [`sender`]: address guard,
//!    timeouts, a per-host limit, redirects not followed;
//! 3. **reports** how it went: delivered on a 2xx (and, for a platform, an
//!    answer that says so); dead at once when the platform says retrying
//!    cannot help (a bad token, an event too old); otherwise the next retry
//!    is scheduled ([`schedule`], with jitter), or the delivery is `dead`
//!    when the schedule has none left. [`DeliveryResult`] maps each end to
//!    its metric label.
//!
//! An operator's retry (`POST /api/v1/deliveries/{id}/retry`) queues a dead
//! or pending delivery again with the whole schedule ahead of it.

pub mod platforms;
pub mod schedule;
pub mod sender;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use self::platforms::{ConversionEvent, Endpoints, Prepared, Verdict};
use self::schedule::Schedule;
use self::sender::{Answer, SendResult, Sender};
use crate::clock::Clock;
use crate::domain::delivery::{AttemptRecord, AttemptReport, Delivery};
use crate::domain::ids::{shard_char, SHARD_COUNT};
use crate::domain::postback_url::{PostbackTemplate, PostbackValues};
use crate::metrics::{Metrics, StoreOperation};
use crate::offers::ConfigCache;
use crate::store::{Lease, Store, StoreError};

/// How long a delivery's record is kept after its last change (and how far
/// back the listings reach).
pub const DELIVERY_RETENTION_SECS: u64 = 30 * 86_400;

/// How long a delivery waits when its target host already has its share of
/// requests in flight. Nothing was sent, so no attempt is counted.
const HOST_BUSY_DELAY_MS: u64 = 250;

/// How often the backlog gauges are refreshed, in poll periods: a read of
/// every shard, not something to do per delivery.
const BACKLOG_EVERY_POLLS: u32 = 10;

/// How an attempt ended, as `clickback_deliveries_total{result}` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryResult {
    /// The affiliate answered 2xx.
    Delivered,
    /// It failed; a retry is scheduled.
    Failed,
    /// It failed and no retry is left (or it can never succeed).
    Dead,
    /// The target host was busy; nothing was sent.
    Postponed,
}

impl DeliveryResult {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Postponed => "postponed",
        }
    }

    fn of(record: &AttemptRecord) -> Option<Self> {
        match record {
            AttemptRecord::Delivered { .. } => Some(Self::Delivered),
            AttemptRecord::Failed { .. } => Some(Self::Failed),
            AttemptRecord::Dead { .. } => Some(Self::Dead),
            AttemptRecord::Postponed { .. } => Some(Self::Postponed),
            AttemptRecord::Gone => None,
        }
    }
}

/// Wakes the delivery worker of this instance when a postback or an
/// operator queued a delivery, so it goes out at once instead of at the
/// next poll. Other instances find it at their next poll.
#[derive(Clone, Debug, Default)]
pub struct DeliveryWake(Arc<Notify>);

impl DeliveryWake {
    /// Wakes the worker (or makes its next wait return at once).
    pub fn wake(&self) {
        self.0.notify_one();
    }

    async fn woken(&self) {
        self.0.notified().await;
    }
}

/// What the worker needs besides the store.
pub struct DeliveryWorker {
    /// Where deliveries are queued.
    pub store: Arc<dyn Store>,
    /// Affiliates' postback URLs, read at each attempt (a URL fixed after a
    /// failure is used by the next retry).
    pub cache: Arc<ConfigCache>,
    /// Due times, leases, the schedule.
    pub clock: Arc<dyn Clock>,
    /// Attempts, backlog, latency.
    pub metrics: Metrics,
    /// One attempt over HTTP.
    pub sender: Sender,
    /// Delays before each retry.
    pub schedule: Schedule,
    /// Attempts in flight at most (this instance).
    pub concurrency: usize,
    /// Pause between claims while nothing is due.
    pub poll: Duration,
    /// How long a claimed delivery is held before another worker may take
    /// it: longer than any attempt can last.
    pub lease: Duration,
    /// How long shutdown waits for attempts in flight.
    pub drain: Duration,
    /// Rung by postbacks that queued a delivery.
    pub wake: DeliveryWake,
    /// The platforms' base URLs (configurable for tests and proxies).
    pub endpoints: Endpoints,
    /// Keys the GA4 client id derived from a click that brought none, so
    /// the id reveals nothing but stays the same for the click's events.
    pub pseudonym_key: Vec<u8>,
}

impl DeliveryWorker {
    /// Claims and sends deliveries until `shutdown`, then lets the attempts
    /// in flight finish within [`DeliveryWorker::drain`]; those that do not
    /// are left to their leases and retried by whichever worker comes next.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut in_flight = JoinSet::new();
        let mut first_shard = 0;
        let mut backlog_read: Option<Instant> = None;
        // Claim once a quarter of the slots are free (or none is busy): a
        // claim costs a round trip per shard it looks at, so claiming one
        // delivery after each finished attempt would cost one per delivery.
        let low_water = (self.concurrency / 4).max(1);
        loop {
            while let Some(done) = in_flight.try_join_next() {
                if done.is_err() {
                    self.metrics.background_failure("deliveries");
                }
            }
            if backlog_read.is_none_or(|at| at.elapsed() >= self.poll * BACKLOG_EVERY_POLLS) {
                self.refresh_backlog().await;
                backlog_read = Some(Instant::now());
            }
            let free = self.concurrency.saturating_sub(in_flight.len());
            let claimed = if free >= low_water || in_flight.is_empty() {
                match self
                    .claim_round(free, &mut first_shard, &mut in_flight)
                    .await
                {
                    Ok(n) => n,
                    Err(e) => {
                        self.metrics.store_error(StoreOperation::Deliveries);
                        self.metrics.background_failure("deliveries");
                        log::warn!("cannot claim deliveries: {e}");
                        0
                    }
                }
            } else {
                0
            };
            if claimed > 0 && in_flight.len() < self.concurrency {
                // More may be due: claim again before waiting.
                if *shutdown.borrow() {
                    break;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                () = self.wake.woken() => {}
                () = tokio::time::sleep(self.poll) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
        let left = in_flight.len();
        if left > 0 {
            log::info!(
                "shutting down: waiting up to {:?} for {left} deliveries in flight",
                self.drain
            );
        }
        let drained = tokio::time::timeout(self.drain, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            log::warn!(
                "{left} deliveries were in flight at shutdown; those unfinished are sent again when their lease ends"
            );
            in_flight.abort_all();
        }
    }

    /// Claims up to `free` due deliveries, shard after shard (starting where
    /// the last round stopped, so no shard waits behind the others), and
    /// starts an attempt for each.
    async fn claim_round(
        self: &Arc<Self>,
        free: usize,
        first_shard: &mut usize,
        in_flight: &mut JoinSet<()>,
    ) -> Result<usize, StoreError> {
        let mut claimed = 0;
        for step in 0..SHARD_COUNT {
            if claimed >= free {
                break;
            }
            let shard = (*first_shard + step) % SHARD_COUNT;
            let now_ms = self.clock.now_ms();
            let lease = Lease::until(
                now_ms + self.lease.as_millis() as u64,
                fraction(uuid::Uuid::new_v4().as_u128()),
            );
            let batch = self
                .store
                .claim_deliveries(shard_char(shard), now_ms, lease, free - claimed)
                .await?;
            claimed += batch.len();
            for entry in batch {
                let worker = Arc::clone(self);
                in_flight.spawn(async move { worker.attempt(entry, lease).await });
            }
            if claimed >= free {
                *first_shard = (shard + 1) % SHARD_COUNT;
            }
        }
        Ok(claimed)
    }

    /// One attempt, reported to the store.
    async fn attempt(
        &self,
        entry: Result<Delivery, crate::domain::delivery::DeliveryId>,
        lease: Lease,
    ) {
        let target = match &entry {
            Ok(Delivery {
                destination: Some((_, kind)),
                ..
            }) => kind.label(),
            _ => "affiliate",
        };
        let (id, report, queued_ms) = match entry {
            Err(id) => {
                let report = AttemptReport {
                    record: AttemptRecord::Gone,
                    now_ms: self.clock.now_ms(),
                    url: None,
                    retention_secs: DELIVERY_RETENTION_SECS,
                };
                (id, report, None)
            }
            Ok(delivery) => {
                let started = Instant::now();
                let (record, url) = match &delivery.destination {
                    None => self.send(&delivery).await,
                    Some((destination, _)) => self.forward(&delivery, destination).await,
                };
                if !matches!(record, AttemptRecord::Postponed { .. }) {
                    self.metrics
                        .delivery_attempt_duration
                        .observe(started.elapsed().as_secs_f64());
                }
                let report = AttemptReport {
                    record,
                    now_ms: self.clock.now_ms(),
                    url,
                    retention_secs: DELIVERY_RETENTION_SECS,
                };
                (delivery.id, report, Some(delivery.created_at_ms))
            }
        };
        match self.store.finish_delivery(&id, lease, &report).await {
            Ok(true) => {
                if let Some(result) = DeliveryResult::of(&report.record) {
                    self.metrics
                        .deliveries
                        .with_label_values(&[target, result.label()])
                        .inc();
                    if result == DeliveryResult::Delivered {
                        if let Some(queued) = queued_ms {
                            let waited = report.now_ms.saturating_sub(queued);
                            self.metrics
                                .delivery_latency
                                .observe(waited as f64 / 1000.0);
                        }
                    }
                    if result == DeliveryResult::Dead {
                        log::warn!(
                            "delivery {id} is dead after its last retry: {}",
                            match &report.record {
                                AttemptRecord::Dead { error, .. } => error.as_str(),
                                _ => "",
                            }
                        );
                    }
                }
            }
            Ok(false) => log::debug!("delivery {id}: lease lost; another worker took it over"),
            Err(e) => {
                // The lease ends and the delivery is sent again: at least once.
                self.metrics.store_error(StoreOperation::Deliveries);
                self.metrics.background_failure("deliveries");
                log::warn!("cannot record the attempt of delivery {id}: {e}");
            }
        }
    }

    /// Sends `delivery` to the affiliate's URL for its offer, as configured
    /// now, and decides what comes next.
    async fn send(&self, delivery: &Delivery) -> (AttemptRecord, Option<String>) {
        let target = self
            .cache
            .affiliate(delivery.aff_id.as_str())
            .and_then(|a| a.postback_target(&delivery.offer_id).map(str::to_owned));
        let Some(url) = target else {
            return (
                AttemptRecord::Dead {
                    http_status: None,
                    error: "the affiliate has no postback URL for this offer".into(),
                },
                None,
            );
        };
        let template = match PostbackTemplate::parse(&url) {
            Ok(template) => template,
            Err(e) => {
                return (
                    AttemptRecord::Dead {
                        http_status: None,
                        error: format!("the postback URL is not usable: {}", e.detail),
                    },
                    Some(url),
                )
            }
        };
        let payout = delivery.payout.to_string();
        let amount = delivery.amount.map(|m| m.to_string()).unwrap_or_default();
        let context = &delivery.context;
        let values = PostbackValues {
            click_id: &delivery.click_id,
            conversion_id: &delivery.conversion_id,
            offer_id: delivery.offer_id.as_str(),
            aff_id: delivery.aff_id.as_str(),
            subs: context.sub_values(),
            source: &context.source,
            txid: &context.txid,
            goal: &context.goal,
            status: delivery.status.as_str(),
            payout: &payout,
            currency: &context.currency,
            amount: &amount,
        };
        let idempotency_key = format!("{}:{}", delivery.conversion_id, delivery.status.as_str());
        let sent = self
            .sender
            .send(&template.expand(&values), &idempotency_key)
            .await;
        let now_ms = self.clock.now_ms();
        let record = match sent {
            SendResult::Delivered { status } => AttemptRecord::Delivered {
                http_status: status,
            },
            SendResult::HostBusy => AttemptRecord::Postponed {
                retry_at_ms: now_ms + HOST_BUSY_DELAY_MS,
            },
            SendResult::Failed { status, error } => self.failed(delivery, status, error, now_ms),
        };
        (record, Some(url))
    }

    /// A failed attempt: the next retry of the schedule, or dead when it has
    /// none left.
    fn failed(
        &self,
        delivery: &Delivery,
        http_status: Option<u16>,
        error: String,
        now_ms: u64,
    ) -> AttemptRecord {
        let seed = format!("{}#{}", delivery.id, delivery.attempts);
        match self
            .schedule
            .delay_with_jitter(delivery.run_attempts as usize, &seed)
        {
            Some(delay) => AttemptRecord::Failed {
                http_status,
                error,
                retry_at_ms: now_ms + delay.as_millis() as u64,
            },
            None => AttemptRecord::Dead { http_status, error },
        }
    }

    /// Sends `delivery` to the offer's destination `destination`, as
    /// configured now, in the shape its platform expects, and reads the
    /// platform's answer. The URL recorded is the endpoint without its
    /// query, which may hold a credential.
    async fn forward(
        &self,
        delivery: &Delivery,
        destination: &str,
    ) -> (AttemptRecord, Option<String>) {
        let dead = |error: String| AttemptRecord::Dead {
            http_status: None,
            error,
        };
        let configured = self
            .cache
            .offer(delivery.offer_id.as_str())
            .and_then(|offer| {
                offer
                    .destinations
                    .iter()
                    .find(|d| d.id.as_str() == destination)
                    .cloned()
            });
        let Some(target) = configured else {
            return (
                dead(format!(
                    "the offer has no destination {destination} any more"
                )),
                None,
            );
        };
        let context = &delivery.context;
        let event = ConversionEvent {
            delivery_id: delivery.id.as_str(),
            conversion_id: &delivery.conversion_id,
            click_id: &delivery.click_id,
            offer_id: delivery.offer_id.as_str(),
            aff_id: delivery.aff_id.as_str(),
            status: delivery.status,
            payout: delivery.payout,
            revenue: delivery.revenue,
            amount: delivery.amount,
            currency: &context.currency,
            subs: context.sub_values(),
            source: &context.source,
            txid: &context.txid,
            goal: &context.goal,
            click_at: context.click_at,
            converted_at: delivery.converted_at,
            status_at: delivery.created_at_ms / 1000,
            gclid: &context.ad_ids.gclid,
            fbclid: &context.ad_ids.fbclid,
            ttclid: &context.ad_ids.ttclid,
            ga_client_id: &context.ad_ids.ga_client_id,
        };
        let now_secs = self.clock.now_ms() / 1000;
        let request = match platforms::prepare(
            &target,
            &event,
            &self.endpoints,
            &self.pseudonym_key,
            now_secs,
        ) {
            Prepared::Send(request) => request,
            Prepared::Dead(reason) => return (dead(reason), None),
            // Nothing was sent, and retrying cannot change that: dead, so
            // the log says why rather than claiming a delivery.
            Prepared::Skip(reason) => return (dead(format!("nothing to send: {reason}")), None),
        };
        let url = request
            .url
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned();
        let answer = self.sender.send_request(request).await;
        let now_ms = self.clock.now_ms();
        let record = match answer {
            Answer::HostBusy => AttemptRecord::Postponed {
                retry_at_ms: now_ms + HOST_BUSY_DELAY_MS,
            },
            Answer::Failed(error) => self.failed(delivery, None, error, now_ms),
            Answer::Status { status, body } => {
                match platforms::classify_for(&target, status, &body) {
                    Verdict::Delivered => AttemptRecord::Delivered {
                        http_status: status,
                    },
                    Verdict::Retry(error) => self.failed(delivery, Some(status), error, now_ms),
                    Verdict::Dead(error) => AttemptRecord::Dead {
                        http_status: Some(status),
                        error,
                    },
                }
            }
        };
        (record, Some(url))
    }

    /// Reads the backlog into its gauges; a failure leaves them as they were.
    async fn refresh_backlog(&self) {
        match self.store.delivery_backlog().await {
            Ok(backlog) => {
                self.metrics
                    .delivery_backlog
                    .set(i64::try_from(backlog.pending).unwrap_or(i64::MAX));
                let age_ms = backlog
                    .oldest_created_ms
                    .map_or(0, |created| self.clock.now_ms().saturating_sub(created));
                self.metrics.delivery_oldest_age.set(age_ms as f64 / 1000.0);
            }
            Err(e) => {
                self.metrics.store_error(StoreOperation::Deliveries);
                log::debug!("cannot read the delivery backlog: {e}");
            }
        }
    }
}

/// A number in [0, 1) from random bits, to tell leases apart.
fn fraction(bits: u128) -> f64 {
    (bits % 1000) as f64 / 1000.0
}
