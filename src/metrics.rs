//! Prometheus metrics: one struct owns the registry and every metric.
//!
//! Labels are bounded by design: offers (operator-defined), results (a fixed
//! set of words), route *templates* (`/c/{offer_id}`, never a real path) and
//! status codes. No click id, IP or sub-ID ever becomes a label.

use prometheus::{
    CounterVec, Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// The `destination` label values of `clickback_deliveries_total`: the
/// affiliate's postback, then each destination platform.
pub const DELIVERY_TARGETS: [&str; 5] = ["affiliate", "ga4", "meta", "tiktok", "webhook"];

/// The store operations whose failures `clickback_store_errors_total`
/// counts: one label each, all known in advance so that every series exists
/// (at 0) from the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOperation {
    /// The click write of a redirect.
    RecordClick,
    /// The count of a declined or capped click.
    CountUntrackedClick,
    /// Any store step of a postback.
    Postback,
    /// The background config and cap refresh.
    ConfigRefresh,
    /// A stats report.
    ReadCounters,
    /// `/readyz`.
    Ping,
    /// An offer write of the admin API.
    PutOffer,
    /// An affiliate write of the admin API.
    PutAffiliate,
    /// A read of the postback log.
    ReadPostbackLog,
    /// The delivery worker's claims and reports.
    Deliveries,
    /// A listing or an operator's retry of deliveries.
    ReadDeliveries,
    /// An advertiser or API key write, or a read of keys' last use.
    Access,
    /// A write or read of the audit log.
    Audit,
    /// A read of the conversion list, or a manual status change.
    Conversions,
}

impl StoreOperation {
    /// Every operation.
    pub const ALL: [StoreOperation; 14] = [
        Self::RecordClick,
        Self::CountUntrackedClick,
        Self::Postback,
        Self::ConfigRefresh,
        Self::ReadCounters,
        Self::Ping,
        Self::PutOffer,
        Self::PutAffiliate,
        Self::ReadPostbackLog,
        Self::Deliveries,
        Self::ReadDeliveries,
        Self::Access,
        Self::Audit,
        Self::Conversions,
    ];

    /// The `operation` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::RecordClick => "record_click",
            Self::CountUntrackedClick => "count_untracked_click",
            Self::Postback => "postback",
            Self::ConfigRefresh => "config_refresh",
            Self::ReadCounters => "read_counters",
            Self::Ping => "ping",
            Self::PutOffer => "put_offer",
            Self::PutAffiliate => "put_affiliate",
            Self::ReadPostbackLog => "read_postback_log",
            Self::Deliveries => "deliveries",
            Self::ReadDeliveries => "read_deliveries",
            Self::Access => "access",
            Self::Audit => "audit",
            Self::Conversions => "conversions",
        }
    }
}

/// Every metric clickback exports.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    registry: Registry,
    /// Clicks by offer and result: `tracked`, `declined` (consent), `bot`,
    /// `capped`, `store_error`, `unknown_offer`, `unknown_affiliate`, `invalid`.
    pub clicks: IntCounterVec,
    /// Tracked clicks by offer that repeated a visitor's recent click.
    pub duplicate_clicks: IntCounterVec,
    /// Postbacks by result: `credited`, `pending`, `duplicate`, `updated`,
    /// `rejected`, or a refusal's label (`src/postback/outcome.rs`):
    /// `unknown_click`, `invalid_token`, `invalid`, `ip_not_allowed`,
    /// `invalid_signature`, `replayed`, `in_flight`, `contended`, `store_error`.
    pub postbacks: IntCounterVec,
    /// Postbacks answered as usual that the operator should look at, by
    /// reason (`ignored_event_param`: a duplicate carrying an unread
    /// event- or order-like parameter; `src/postback/outcome.rs`).
    pub postback_warnings: IntCounterVec,
    /// Approved conversions by offer.
    pub conversions: IntCounterVec,
    /// Payout credited by offer and currency, in currency units. A float, as
    /// Prometheus has no other kind; the exact figure lives in the stats API.
    pub payout: CounterVec,
    /// HTTP latency by route template, method and status.
    pub http_duration: HistogramVec,
    /// Failed store operations by operation.
    pub store_errors: IntCounterVec,
    /// Failed rounds of background work by task (`config_refresh`,
    /// `postback_log`, `write_behind`, `deliveries`).
    pub background_failures: IntCounterVec,
    /// Delivery attempts by target (`affiliate` for the affiliate's
    /// postback, else the destination's platform: `ga4`, `meta`, `tiktok`,
    /// `webhook`) and result (`src/delivery/mod.rs`): `delivered`,
    /// `failed` (a retry is scheduled), `dead`, `postponed` (the target host
    /// was busy; nothing was sent).
    pub deliveries: IntCounterVec,
    /// Deliveries pending (queued, in flight or waiting for a retry).
    pub delivery_backlog: IntGauge,
    /// Age of the oldest pending delivery: a queue that stopped moving shows here.
    pub delivery_oldest_age: Gauge,
    /// Time of one delivery attempt (resolve, connect, answer).
    pub delivery_attempt_duration: Histogram,
    /// Time from queuing a delivery to the affiliate's 2xx.
    pub delivery_latency: Histogram,
    /// Requests to the API refused for their credentials, by result:
    /// `missing` (no bearer), `invalid` (wrong or revoked), `limited` (the
    /// source address failed too often and must wait).
    pub auth_failures: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric. Label values owned by other
    /// modules are created there (`postback::outcome::register_labels`).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let clicks = IntCounterVec::new(
            Opts::new(
                "clickback_clicks_total",
                "Clicks on tracking links, by offer and result.",
            ),
            &["offer", "result"],
        )?;
        let duplicate_clicks = IntCounterVec::new(
            Opts::new(
                "clickback_duplicate_clicks_total",
                "Tracked clicks that repeat the same visitor's click on the same offer and affiliate within the duplicate window, by offer.",
            ),
            &["offer"],
        )?;
        let postbacks = IntCounterVec::new(
            Opts::new(
                "clickback_postbacks_total",
                "Advertiser postbacks received, by result.",
            ),
            &["result"],
        )?;
        let conversions = IntCounterVec::new(
            Opts::new(
                "clickback_conversions_total",
                "Approved conversions credited, by offer.",
            ),
            &["offer"],
        )?;
        let payout = CounterVec::new(
            Opts::new(
                "clickback_payout_total",
                "Affiliate payout credited for approved conversions, by offer and currency (approximate; exact figures in /api/v1/stats).",
            ),
            &["offer", "currency"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "clickback_http_request_duration_seconds",
                "HTTP request latency, by route template, method and status.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["route", "method", "status"],
        )?;
        let store_errors = IntCounterVec::new(
            Opts::new(
                "clickback_store_errors_total",
                "Store operations that failed (unreachable, timed out), by operation.",
            ),
            &["operation"],
        )?;
        registry.register(Box::new(clicks.clone()))?;
        registry.register(Box::new(duplicate_clicks.clone()))?;
        registry.register(Box::new(postbacks.clone()))?;
        registry.register(Box::new(conversions.clone()))?;
        registry.register(Box::new(payout.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        let background_failures = IntCounterVec::new(
            Opts::new(
                "clickback_background_failures_total",
                "Rounds of background work that failed and will be tried again, by task.",
            ),
            &["task"],
        )?;
        for operation in StoreOperation::ALL {
            store_errors.with_label_values(&[operation.label()]);
        }
        registry.register(Box::new(store_errors.clone()))?;
        registry.register(Box::new(background_failures.clone()))?;
        let deliveries = IntCounterVec::new(
            Opts::new(
                "clickback_deliveries_total",
                "Delivery attempts (affiliate postbacks and destinations), by target and result.",
            ),
            &["destination", "result"],
        )?;
        for destination in DELIVERY_TARGETS {
            for result in ["delivered", "failed", "dead", "postponed"] {
                deliveries.with_label_values(&[destination, result]);
            }
        }
        let delivery_backlog = IntGauge::new(
            "clickback_delivery_queue_pending",
            "Affiliate postbacks pending: queued, in flight or waiting for a retry.",
        )?;
        let delivery_oldest_age = Gauge::new(
            "clickback_delivery_oldest_pending_seconds",
            "Age of the oldest pending affiliate postback, seconds (0 when none is pending).",
        )?;
        let delivery_attempt_duration = Histogram::with_opts(
            HistogramOpts::new(
                "clickback_delivery_attempt_duration_seconds",
                "Time of one affiliate postback attempt.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )?;
        let delivery_latency = Histogram::with_opts(
            HistogramOpts::new(
                "clickback_delivery_latency_seconds",
                "Time from queuing an affiliate postback to the affiliate's 2xx.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.5, 1.0, 10.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0, 86400.0,
                172800.0,
            ]),
        )?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(delivery_backlog.clone()))?;
        registry.register(Box::new(delivery_oldest_age.clone()))?;
        registry.register(Box::new(delivery_attempt_duration.clone()))?;
        registry.register(Box::new(delivery_latency.clone()))?;
        let postback_warnings = IntCounterVec::new(
            Opts::new(
                "clickback_postback_warnings_total",
                "Postbacks answered as usual that the operator should look at, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(postback_warnings.clone()))?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "clickback_auth_failures_total",
                "API requests refused for their credentials, by result (missing, invalid, limited).",
            ),
            &["result"],
        )?;
        for result in ["missing", "invalid", "limited"] {
            auth_failures.with_label_values(&[result]);
        }
        registry.register(Box::new(auth_failures.clone()))?;
        Ok(Self {
            registry,
            clicks,
            duplicate_clicks,
            postbacks,
            postback_warnings,
            conversions,
            payout,
            http_duration,
            store_errors,
            background_failures,
            deliveries,
            delivery_backlog,
            delivery_oldest_age,
            delivery_attempt_duration,
            delivery_latency,
            auth_failures,
        })
    }

    /// Counts one failed round of a background task.
    pub fn background_failure(&self, task: &str) {
        self.background_failures.with_label_values(&[task]).inc();
    }

    /// Counts one failed store operation.
    pub fn store_error(&self, operation: StoreOperation) {
        self.store_errors
            .with_label_values(&[operation.label()])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
