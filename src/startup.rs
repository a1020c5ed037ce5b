//! Building and running the application: store, cache, metrics, HTTP server
//! and the background tasks (config refresh, writers, affiliate postbacks).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, Service};
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpServer};

use crate::access::Access;
use crate::background::{Background, Work};
use crate::caps::CapWatch;
use crate::click::Clicks;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::delivery::platforms::Endpoints;
use crate::delivery::sender::{Sender, SenderConfig};
use crate::delivery::{DeliveryWake, DeliveryWorker};
use crate::domain::ids::base64url;
use crate::domain::visitor::VisitorHasher;
use crate::metrics::Metrics;
use crate::offers::ConfigCache;
use crate::postback::log::PostbackLog;
use crate::postback::Postbacks;
use crate::routes;
use crate::state::{AppState, TrustedProxies};
use crate::store::keys::Keys;
use crate::store::{MemoryStore, RedisStore, Store};

/// Why the application could not start. The message names the setting and
/// its value (never a secret) and keeps the cause as its source;
/// [`StartupError::fix`] says how to put it right.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listen address could not be bound.
    #[error("cannot listen on CLICKBACK_LISTEN={address:?}")]
    Bind {
        /// `CLICKBACK_LISTEN`.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Redis store could not be set up from `REDIS_URL`.
    #[error("cannot use REDIS_URL={url:?}")]
    Redis {
        /// `REDIS_URL` with its password masked.
        url: String,
        /// Why the store refused it.
        source: crate::store::StoreError,
    },
    /// The Redis Cluster store could not be set up from `REDIS_CLUSTER_NODES`.
    #[error("cannot use REDIS_CLUSTER_NODES={nodes:?}")]
    RedisCluster {
        /// `REDIS_CLUSTER_NODES` with passwords masked.
        nodes: String,
        /// Why the store refused it.
        source: crate::store::StoreError,
    },
    /// The store could not be set up.
    #[error("cannot set up the store")]
    Store(#[from] crate::store::StoreError),
    /// Metrics could not be registered.
    #[error("cannot register the metrics")]
    Metrics(#[from] prometheus::Error),
    /// The HTTP server failed to start.
    #[error("cannot start the HTTP server")]
    Http(#[from] std::io::Error),
    /// The HTTP client of affiliate postbacks could not be built.
    #[error("cannot set up affiliate postbacks: {0}")]
    Delivery(String),
}

/// The key of the GA4 client ids derived from clicks: the hash salt when
/// one is set, so every instance derives the same id for a click; else a
/// fixed key (the click id it is derived from is random and reveals
/// nothing; the key only keeps the derivation clickback's own).
fn pseudonym_key(settings: &Settings) -> Vec<u8> {
    let base = settings
        .hash_salt
        .as_ref()
        .map_or(&b"clickback"[..], |salt| salt.expose().as_bytes());
    let mut key = b"ga4-client-id:".to_vec();
    key.extend_from_slice(base);
    key
}

impl StartupError {
    /// How to put it right, for the end of the message.
    pub fn fix(&self) -> String {
        match self {
            Self::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => {
                "stop what listens there, or set CLICKBACK_LISTEN to another port".into()
            }
            Self::Bind { .. } => {
                "set CLICKBACK_LISTEN to an address of this machine and a free port, e.g. 0.0.0.0:8080".into()
            }
            Self::Redis { .. } | Self::Store(_) => {
                "check REDIS_URL: redis://[[user]:password@]host[:port][/db]".into()
            }
            Self::RedisCluster { .. } => {
                "check REDIS_CLUSTER_NODES: host:port,host:port,… (some nodes of the cluster)".into()
            }
            Self::Metrics(_) | Self::Delivery(_) => {
                "this is a bug in clickback; please report it".into()
            }
            Self::Http(_) => {
                "check the limits on open files and threads (ulimit -n, CLICKBACK_WORKERS)".into()
            }
        }
    }

    /// 2 when a setting cannot be understood, 1 when it can but starting failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Bind { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput => 2,
            Self::Redis { .. } | Self::RedisCluster { .. } => 2,
            _ => 1,
        }
    }
}

/// A built, bound, not yet running clickback.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    background: Background,
}

impl Application {
    /// Builds everything and binds the listener (port 0 picks a free port).
    ///
    /// Never fails because Redis is down: clickback starts, redirects with
    /// whatever config it could load, reports 503 on `/readyz`, and catches
    /// up when Redis comes back.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let store: Arc<dyn Store> = match (&settings.redis_url, settings.cluster_nodes()) {
            (_, Some(nodes)) => {
                let shown = settings
                    .redis_cluster_nodes
                    .as_ref()
                    .map(|n| n.redacted())
                    .unwrap_or_default();
                let store = RedisStore::new_cluster(
                    &nodes,
                    Keys::new(settings.key_prefix.clone()),
                    settings.store_timeout,
                )
                .map(|store| store.with_report_values_per_day(settings.report_values_per_day))
                .map_err(|source| StartupError::RedisCluster {
                    nodes: shown.clone(),
                    source,
                })?;
                match store.ping().await {
                    Ok(()) => {
                        log::info!("using the Redis Cluster of {shown}");
                        store.warn_about_memory_settings().await;
                    }
                    Err(e) => log::warn!(
                        "the Redis Cluster of {shown} does not answer ({e}); starting anyway: visitors are redirected without click IDs until it does"
                    ),
                }
                Arc::new(store)
            }
            (Some(url), None) => {
                let store = RedisStore::new(
                    url.expose(),
                    Keys::new(settings.key_prefix.clone()),
                    settings.redis_pool_size,
                    settings.store_timeout,
                )
                .map(|store| store.with_report_values_per_day(settings.report_values_per_day))
                .map_err(|source| StartupError::Redis {
                    url: url.redacted(),
                    source,
                })?;
                match store.ping().await {
                    Ok(()) => {
                        log::info!("using Redis at {url}");
                        store.warn_about_memory_settings().await;
                    }
                    Err(e) => log::warn!(
                        "Redis at {url} does not answer ({e}); starting anyway: visitors are redirected without click IDs until it does"
                    ),
                }
                Arc::new(store)
            }
            (None, None) => {
                log::warn!("************************************************************");
                log::warn!("REDIS_URL is not set: using the EMBEDDED IN-MEMORY STORE.");
                log::warn!("Clicks, conversions and offers are LOST on restart and not");
                log::warn!("shared between instances. Set REDIS_URL for real traffic.");
                log::warn!("************************************************************");
                Arc::new(
                    MemoryStore::new().with_report_values_per_day(settings.report_values_per_day),
                )
            }
        };
        Self::build_with_store(settings, store).await
    }

    /// Like [`Application::build`] with a store supplied by the caller (tests).
    pub async fn build_with_store(
        settings: Settings,
        store: Arc<dyn Store>,
    ) -> Result<Self, StartupError> {
        Self::build_with(settings, store, Arc::new(SystemClock)).await
    }

    /// Like [`Application::build_with_store`] with a clock supplied by the
    /// caller: tests move time forward instead of sleeping.
    pub async fn build_with(
        settings: Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let metrics = Metrics::new()?;
        crate::postback::outcome::register_labels(&metrics);
        let cache = Arc::new(ConfigCache::new());
        let caps = Arc::new(CapWatch::new());
        if let Err(e) = cache.reload(store.as_ref()).await {
            log::warn!("starting without configuration, will keep retrying: {e}");
        }
        let salt = match &settings.hash_salt {
            Some(salt) => salt.expose().as_bytes().to_vec(),
            None => {
                log::warn!("CLICKBACK_HASH_SALT is not set: using a random salt; visitor hashes will differ across restarts and instances");
                base64url(uuid::Uuid::new_v4().as_bytes()).into_bytes()
            }
        };
        if settings.admin_token.is_none() {
            log::warn!("CLICKBACK_ADMIN_TOKEN is not set: the admin API refuses every request");
        }

        // Builds the bot matcher now (~1 ms), not on the first visitor's click.
        crate::domain::bots::is_bot_user_agent("warm-up");

        let listener =
            TcpListener::bind(&settings.listen).map_err(|source| StartupError::Bind {
                address: settings.listen.clone(),
                source,
            })?;
        let port = listener.local_addr()?.port();

        if settings.demo {
            crate::demo::seed(store.as_ref(), &cache, &settings, port).await;
        }

        let postback_log = Arc::new(PostbackLog::new(settings.postback_log_size));
        let access = Arc::new(Access::default());
        let wake = DeliveryWake::default();
        let delivery = &settings.delivery;
        let deliveries = if delivery.concurrency == 0 {
            log::info!(
                "CLICKBACK_DELIVERY_CONCURRENCY is 0: deliveries are left to other instances"
            );
            None
        } else {
            let sender = Sender::new(SenderConfig {
                connect_timeout: delivery.connect_timeout,
                timeout: delivery.timeout,
                per_host: delivery.host_concurrency,
                allow_private: delivery.allow_private_targets,
                static_hosts: delivery.static_hosts.clone(),
                user_agent: format!(
                    "clickback/{} (+{})",
                    env!("CARGO_PKG_VERSION"),
                    env!("CARGO_PKG_REPOSITORY")
                ),
            })
            .map_err(StartupError::Delivery)?;
            Some(Arc::new(DeliveryWorker {
                store: Arc::clone(&store),
                cache: Arc::clone(&cache),
                clock: Arc::clone(&clock),
                metrics: metrics.clone(),
                sender,
                schedule: delivery.schedule.clone(),
                concurrency: delivery.concurrency,
                poll: delivery.poll,
                lease: delivery.lease(),
                drain: delivery.timeout,
                wake: wake.clone(),
                endpoints: Endpoints {
                    ga4: delivery.ga4_endpoint.clone(),
                    meta: delivery.meta_endpoint.clone(),
                    tiktok: delivery.tiktok_endpoint.clone(),
                },
                pseudonym_key: pseudonym_key(&settings),
            }))
        };
        let state = web::Data::new(AppState {
            clicks: Clicks {
                store: Arc::clone(&store),
                cache: Arc::clone(&cache),
                caps: Arc::clone(&caps),
                hasher: VisitorHasher::new(salt),
                clock: Arc::clone(&clock),
                metrics: metrics.clone(),
                unique_click_window_secs: settings.unique_click_window_secs,
                fallback_url: settings.fallback_url.clone(),
                click_buckets: settings.click_buckets,
            },
            postbacks: Postbacks::new(
                Arc::clone(&store),
                Arc::clone(&cache),
                Arc::clone(&clock),
                wake.clone(),
            ),
            store: Arc::clone(&store),
            cache: Arc::clone(&cache),
            metrics: metrics.clone(),
            admin_token: settings.admin_token.as_ref().map(|t| t.expose().to_owned()),
            trusted_proxies: TrustedProxies(settings.trusted_proxies.clone()),
            postback_log: Arc::clone(&postback_log),
            clock: Arc::clone(&clock),
            deliveries: wake,
            allow_private_targets: settings.delivery.allow_private_targets,
            access: Arc::clone(&access),
            public_url: settings.public_url.clone(),
        });

        let server_state = state.clone();
        let server = HttpServer::new(move || {
            let metrics = server_state.metrics.clone();
            App::new()
                .app_data(server_state.clone())
                .app_data(routes::BodyLimits::new(settings.body_timeout))
                .wrap(ErrorHandlers::new().default_handler(routes::json_error_bodies))
                .wrap_fn(move |req, srv| {
                    let started = Instant::now();
                    let route = routes::route_label(&req);
                    let method = method_label(req.method());
                    let metrics = metrics.clone();
                    let response = srv.call(req);
                    async move {
                        let response = response.await;
                        let status = match &response {
                            Ok(r) => r.status().as_u16(),
                            Err(e) => e.as_response_error().status_code().as_u16(),
                        };
                        metrics
                            .http_duration
                            .with_label_values(&[&route, method, itoa_status(status)])
                            .observe(started.elapsed().as_secs_f64());
                        response
                    }
                })
                .configure(routes::configure)
        })
        .workers(settings.workers)
        .backlog(4096)
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        .listen(listener)?
        .run();

        let background = Background::start(Work {
            store,
            cache,
            caps,
            postback_log,
            metrics,
            clock,
            config_refresh: settings.config_refresh,
            deliveries,
            access,
        });

        Ok(Self {
            port,
            server,
            state,
            background,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, for tests that need to look inside.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the server stops, then stops the background tasks, each
    /// draining what it holds (the postback log, the unique-click counts,
    /// keys' last use, deliveries in flight).
    ///
    /// Signals are handled by actix: SIGTERM (what `docker stop` and
    /// Kubernetes send) closes the listener at once and gives open
    /// connections `CLICKBACK_SHUTDOWN_TIMEOUT_SECS` to finish before they
    /// are closed; SIGINT and SIGQUIT close them at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.background.stop().await;
        result
    }
}

/// The method as a label: the standard ones by name, anything else as
/// `other`, so that invented methods cannot create time series.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Status codes as static strings, so the latency histogram's label costs no allocation.
fn itoa_status(status: u16) -> &'static str {
    match status {
        200 => "200",
        302 => "302",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        415 => "415",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}
