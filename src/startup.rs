//! Building and running the application: store, cache, metrics, HTTP server
//! and the background config refresher.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, Service};
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpServer};
use tokio::sync::watch;

use crate::caps::CapWatch;
use crate::config::Settings;
use crate::domain::ids::base64url;
use crate::domain::visitor::VisitorHasher;
use crate::metrics::Metrics;
use crate::offers::ConfigCache;
use crate::postback_log::PostbackLog;
use crate::routes;
use crate::state::AppState;
use crate::store::keys::Keys;
use crate::store::{MemoryStore, RedisStore, Store};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// `CLICKBACK_LISTEN`.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store could not be set up (e.g. a malformed `REDIS_URL`).
    #[error("REDIS_URL: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The HTTP server failed to start.
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
}

/// A built, bound, not yet running clickback.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    shutdown: watch::Sender<bool>,
    refresher: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Builds everything and binds the listener (port 0 picks a free port).
    ///
    /// Never fails because Redis is down: clickback starts, redirects with
    /// whatever config it could load, reports 503 on `/readyz`, and catches
    /// up when Redis comes back.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let store: Arc<dyn Store> = match &settings.redis_url {
            Some(url) => {
                let store = RedisStore::new(
                    url,
                    Keys::new(settings.key_prefix.clone()),
                    settings.redis_pool_size,
                    settings.store_timeout,
                )?;
                store.warn_about_memory_settings().await;
                Arc::new(store)
            }
            None => {
                log::warn!("************************************************************");
                log::warn!("REDIS_URL is not set: using the EMBEDDED IN-MEMORY STORE.");
                log::warn!("Clicks, conversions and offers are LOST on restart and not");
                log::warn!("shared between instances. Set REDIS_URL for real traffic.");
                log::warn!("************************************************************");
                Arc::new(MemoryStore::new())
            }
        };
        Self::build_with_store(settings, store).await
    }

    /// Like [`Application::build`] with a store supplied by the caller (tests).
    pub async fn build_with_store(
        settings: Settings,
        store: Arc<dyn Store>,
    ) -> Result<Self, StartupError> {
        let metrics = Metrics::new()?;
        for operation in [
            "record_click",
            "count_declined_click",
            "postback",
            "config_refresh",
            "read_counters",
            "ping",
        ] {
            metrics.store_errors.with_label_values(&[operation]);
        }
        let cache = Arc::new(ConfigCache::new());
        let caps = Arc::new(CapWatch::new());
        if let Err(e) = cache.reload(store.as_ref()).await {
            log::warn!("starting without configuration, will keep retrying: {e}");
        }
        let salt = match &settings.hash_salt {
            Some(salt) => salt.clone().into_bytes(),
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

        let state = web::Data::new(AppState {
            store: Arc::clone(&store),
            cache: Arc::clone(&cache),
            metrics: metrics.clone(),
            hasher: VisitorHasher::new(salt),
            admin_token: settings.admin_token.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            caps: Arc::clone(&caps),
            unique_click_window_secs: settings.unique_click_window_secs,
            fallback_url: settings.fallback_url.clone(),
            postback_log_size: settings.postback_log_size,
            postback_log: PostbackLog::new(Arc::clone(&store), settings.postback_log_size),
            click_buckets: settings.click_buckets,
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
        .shutdown_timeout(10)
        .listen(listener)?
        .run();

        let (shutdown, mut stopped) = watch::channel(false);
        let refresher = tokio::spawn(Arc::clone(&cache).keep_fresh(
            store,
            caps,
            metrics,
            settings.config_refresh,
            async move {
                let _ = stopped.changed().await;
            },
        ));

        Ok(Self {
            port,
            server,
            state,
            shutdown,
            refresher,
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

    /// Serves until the server stops (SIGINT/SIGTERM, handled by actix), then
    /// stops the background refresher and writes what the store still holds
    /// back (unique-click counts).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.shutdown.send(true);
        let _ = self.refresher.await;
        if let Err(e) = self.state.store.flush().await {
            log::warn!("shutting down with unwritten unique-click counts: {e}");
        }
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
