//! `spawn_app()` and friends: a real clickback on a free port, talking to a
//! real Redis under a random key prefix, on a clock that moves only when the
//! test advances it ([`TestApp::clock`]).

use std::sync::Arc;
use std::time::Duration;

pub use clickback::clock::{Clock, ManualClock};
use clickback::config::Settings;
use clickback::domain::Day;
use clickback::startup::Application;
use clickback::state::AppState;
use clickback::store::keys::Keys;
use clickback::store::{MemoryStore, Store};
use serde_json::{json, Value};

#[path = "../support/redis_server.rs"]
pub mod redis_server;

pub use redis_server::{random_prefix, shared_redis_url, Inspector, RedisServer};

/// The admin token every test app is configured with.
pub const ADMIN_TOKEN: &str = "test-admin-token-of-24-characters-or-more";
/// The postback token of offers made by [`TestApp::create_offer`].
pub const OFFER_TOKEN: &str = "offer-secret-token";

/// Which store a test app runs on.
#[derive(Clone)]
pub enum Backend {
    /// Redis at this URL, under this prefix.
    Redis { url: String, prefix: String },
    /// The embedded in-memory store.
    Memory,
}

/// A running clickback.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The bound port.
    pub port: u16,
    /// A client that does not follow redirects.
    pub client: reqwest::Client,
    /// The store backend.
    pub backend: Backend,
    /// The app's shared state (metrics, cache).
    pub state: actix_web::web::Data<AppState>,
    /// The app's clock: it stands still, so windows, the day of counters and
    /// cap periods never move under a test; `advance` it instead of sleeping.
    pub clock: Arc<ManualClock>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Settings every test app starts from.
pub fn test_settings(redis_url: Option<String>, prefix: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        redis_url: redis_url.map(Into::into),
        admin_token: Some(ADMIN_TOKEN.into()),
        hash_salt: Some("test-salt".into()),
        key_prefix: prefix.to_owned(),
        workers: 2,
        redis_pool_size: 16,
        store_timeout: Duration::from_millis(500),
        config_refresh: Duration::from_millis(100),
        ..Settings::default()
    }
}

/// A clickback on the shared test Redis, under a fresh prefix.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::Redis {
        url: shared_redis_url(),
        prefix: random_prefix(),
    })
    .await
}

/// A clickback on the shared test Redis with `tweak` applied to its settings.
pub async fn spawn_app_tweaked(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let url = shared_redis_url();
    let prefix = random_prefix();
    let mut settings = test_settings(Some(url.clone()), &prefix);
    tweak(&mut settings);
    spawn_app_with(Backend::Redis { url, prefix }, settings).await
}

/// A clickback on the given backend.
pub async fn spawn_app_on(backend: Backend) -> TestApp {
    let settings = match &backend {
        Backend::Redis { url, prefix } => test_settings(Some(url.clone()), prefix),
        Backend::Memory => test_settings(None, "mem"),
    };
    spawn_app_with(backend, settings).await
}

/// A clickback with custom settings (the backend must match them).
pub async fn spawn_app_with(backend: Backend, settings: Settings) -> TestApp {
    spawn_app_with_clock(backend, settings, Arc::new(ManualClock::starting_now())).await
}

/// A clickback with custom settings on the given clock (siblings share one).
pub async fn spawn_app_with_clock(
    backend: Backend,
    settings: Settings,
    clock: Arc<ManualClock>,
) -> TestApp {
    spawn_app_counting(backend, settings, clock, None).await
}

/// A clickback on the shared test Redis whose clock reads `unix_secs`.
pub async fn spawn_app_at(unix_secs: u64) -> TestApp {
    let url = shared_redis_url();
    let prefix = random_prefix();
    let settings = test_settings(Some(url.clone()), &prefix);
    let clock = Arc::new(ManualClock::at(unix_secs));
    spawn_app_with_clock(Backend::Redis { url, prefix }, settings, clock).await
}

/// A clickback on the shared test Redis counting at most `n` distinct
/// values of a report dimension per day (the "other" bucket's tests).
pub async fn spawn_app_with_report_cap(n: usize) -> TestApp {
    let url = shared_redis_url();
    let prefix = random_prefix();
    let settings = test_settings(Some(url.clone()), &prefix);
    let clock = Arc::new(ManualClock::starting_now());
    spawn_app_counting(Backend::Redis { url, prefix }, settings, clock, Some(n)).await
}

/// A clickback on `backend`, its store counting at most `report_cap`
/// values of a report dimension per day when given.
async fn spawn_app_counting(
    backend: Backend,
    settings: Settings,
    clock: Arc<ManualClock>,
    report_cap: Option<usize>,
) -> TestApp {
    let store: Arc<dyn Store> = match &backend {
        Backend::Redis { url, prefix } => {
            let store = redis_server::open_store(
                url,
                Keys::new(prefix.clone()),
                settings.redis_pool_size,
                settings.store_timeout,
            );
            Arc::new(match report_cap {
                Some(n) => store.with_report_values_per_day(n),
                None => store,
            })
        }
        Backend::Memory => Arc::new(match report_cap {
            Some(n) => MemoryStore::new().with_report_values_per_day(n),
            None => MemoryStore::new(),
        }),
    };
    let app = Application::build_with(settings, store, Arc::clone(&clock) as Arc<dyn Clock>)
        .await
        .expect("app builds");
    let port = app.port();
    let state = app.state();
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client,
        backend,
        state,
        clock,
        server,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        if let Backend::Redis { url, prefix } = &self.backend {
            redis_server::delete_prefix(url, prefix);
        }
    }
}

/// A typical offer body: fixed payout 2.50 EUR, 30-day window.
pub fn offer_body() -> Value {
    json!({
        "name": "Test shop",
        "url": "https://shop.example/landing?utm=x#top",
        "click_id_param": "click_id",
        "payout": "2.50",
        "payout_percent": null,
        "revenue": "4",
        "currency": "EUR",
        "attribution_window_secs": 2592000,
        "postback_token": OFFER_TOKEN,
        "status": "active"
    })
}

impl TestApp {
    /// The UTC day the app counts in (its clock's, not the system's).
    pub fn today(&self) -> Day {
        Day::from_unix(self.clock.now())
    }

    /// `PUT /api/v1/offers/{id}` with the admin token.
    pub async fn put_offer(&self, id: &str, body: &Value) -> reqwest::Response {
        self.admin_put(&format!("/api/v1/offers/{id}"), body).await
    }

    /// `PUT /api/v1/affiliates/{id}` with the admin token.
    pub async fn put_affiliate(&self, id: &str, body: &Value) -> reqwest::Response {
        self.admin_put(&format!("/api/v1/affiliates/{id}"), body)
            .await
    }

    /// Any admin `PUT` with a JSON body.
    pub async fn admin_put(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(format!("{}{path}", self.address))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Any admin `GET`.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent")
    }

    /// Creates offer `id` from [`offer_body`] with `overrides` merged in.
    pub async fn create_offer(&self, id: &str, overrides: Value) -> Value {
        let mut body = offer_body();
        if let (Some(target), Some(extra)) = (body.as_object_mut(), overrides.as_object()) {
            for (k, v) in extra {
                target.insert(k.clone(), v.clone());
            }
        }
        let response = self.put_offer(id, &body).await;
        assert_eq!(response.status(), 200, "offer {id} created");
        response.json().await.expect("offer json")
    }

    /// Creates an active affiliate.
    pub async fn create_affiliate(&self, id: &str) {
        let response = self
            .put_affiliate(id, &json!({"name": id, "status": "active"}))
            .await;
        assert_eq!(response.status(), 200, "affiliate {id} created");
    }

    /// An offer `o1` and an affiliate `a1`, ready for clicks.
    pub async fn with_offer_and_affiliate(&self) {
        self.create_offer("o1", json!({})).await;
        self.create_affiliate("a1").await;
    }

    /// `GET <path_and_query>` without following redirects.
    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path_and_query}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    /// Clicks `/c/{offer}?{query}`.
    pub async fn click(&self, offer: &str, query: &str) -> reqwest::Response {
        self.get(&format!("/c/{offer}?{query}")).await
    }

    /// Clicks and returns the click id from the redirect's `click_id` parameter.
    pub async fn click_id(&self, offer: &str, aff: &str) -> String {
        let response = self.click(offer, &format!("aff_id={aff}")).await;
        assert_eq!(response.status(), 302);
        let location = location(&response);
        click_id_from(&location).unwrap_or_else(|| panic!("no click id in {location}"))
    }

    /// `GET /postback?{query}`.
    pub async fn postback(&self, query: &str) -> reqwest::Response {
        self.get(&format!("/postback?{query}")).await
    }

    /// `GET /api/v1/stats?{query}` as JSON rows.
    pub async fn stats(&self, query: &str) -> Vec<Value> {
        let response = self.admin_get(&format!("/api/v1/stats?{query}")).await;
        assert_eq!(response.status(), 200, "stats answered");
        let body: Value = response.json().await.expect("stats json");
        body["rows"].as_array().cloned().unwrap_or_default()
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .await
            .text()
            .await
            .expect("metrics text")
    }

    /// A synchronous connection to this app's Redis (or cluster), for
    /// looking inside.
    pub fn redis(&self) -> Inspector {
        match &self.backend {
            Backend::Redis { url, .. } => redis_server::connect(url).expect("redis connection"),
            Backend::Memory => panic!("this app runs on the memory store"),
        }
    }

    /// This app's key prefix in Redis.
    pub fn key_prefix(&self) -> &str {
        let Backend::Redis { prefix, .. } = &self.backend else {
            panic!("this app runs on the memory store")
        };
        prefix
    }

    /// clickback's own key builder under this app's prefix, for tests that
    /// look at or plant data in Redis.
    pub fn keys(&self) -> Keys {
        Keys::new(self.key_prefix())
    }

    /// Every key under this app's prefix.
    pub fn redis_keys(&self) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}:*", self.key_prefix()))
            .query(&mut self.redis())
            .expect("KEYS")
    }
}

/// The `Location` header.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location header")
        .to_owned()
}

/// The `click_id` query parameter of a URL.
pub fn click_id_from(url: &str) -> Option<String> {
    let query = url.split('#').next()?.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("click_id="))
        .map(str::to_owned)
}

/// The value of a Prometheus sample line starting with `series` (0 when absent).
pub fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Reads an error answer and asserts API.md's JSON body
/// `{"status":"rejected","reason":"<snake_case>","detail":"<text>"}`;
/// returns the HTTP status, the body and its raw text. `what` names the case.
pub async fn error_body(response: reqwest::Response, what: &str) -> (u16, Value, String) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("error body");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: JSON error body, got {status} {content_type:?}: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("JSON error body");
    assert_eq!(body["status"], "rejected", "{what}: {body}");
    assert!(
        body["reason"].as_str().is_some_and(
            |r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        ),
        "{what}: snake_case reason in {body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}: a human detail in {body}"
    );
    (status, body, text)
}

/// Asserts a 200 answer and returns its JSON body.
pub async fn ok_json(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `GET /postback?click_id=<id>&token=<offer token>&<extra>`, answered 200.
pub async fn postback_ok(app: &TestApp, click_id: &str, extra: &str) -> Value {
    ok_json(
        app.postback(&format!("click_id={click_id}&token={OFFER_TOKEN}&{extra}"))
            .await,
    )
    .await
}

/// Asserts an error answer with this status and reason and API.md's JSON
/// body, and returns the body.
pub async fn assert_rejected(response: reqwest::Response, status: u16, reason: &str) -> Value {
    let (got, body, text) = error_body(response, reason).await;
    assert_eq!(got, status, "status; body {text}");
    assert_eq!(body["reason"], reason, "{body}");
    body
}

/// Another clickback on the same Redis URL and key prefix as `app` (a second
/// instance behind the same load balancer) and on its clock, with `tweak`
/// applied to its settings.
///
/// Keep both alive until the end of the test: dropping either deletes the prefix.
pub async fn spawn_sibling(app: &TestApp, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let Backend::Redis { url, prefix } = &app.backend else {
        panic!("siblings share a Redis")
    };
    let mut settings = test_settings(Some(url.clone()), prefix);
    tweak(&mut settings);
    spawn_app_with_clock(
        Backend::Redis {
            url: url.clone(),
            prefix: prefix.clone(),
        },
        settings,
        Arc::clone(&app.clock),
    )
    .await
}

/// Calls `check` every 50 ms until it answers `true`; returns how long that
/// took, or `None` if it did not happen `within`.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        if check().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Every click stored under this app's prefix as (click id, stored
    /// record, TTL of what holds it), sorted by id: clicks are fields of hour
    /// buckets (`…:{S}:c:<hour><bucket>`, field = the id's random part).
    pub fn stored_clicks(&self) -> Vec<(String, String, i64)> {
        let mut conn = self.redis();
        let mut clicks = Vec::new();
        for key in self.redis_keys().into_iter().filter(|k| k.contains(":c:")) {
            let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut conn).expect("TTL");
            let shard = key
                .split('{')
                .nth(1)
                .and_then(|rest| rest.split('}').next())
                .expect("hash tag")
                .to_owned();
            let bucket = key.rsplit(":c:").next().expect("bucket").to_owned();
            let fields: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(&key)
                .query(&mut conn)
                .expect("click buckets are hashes");
            for (field, record) in fields {
                clicks.push((format!("{shard}{bucket}{field}"), record, ttl));
            }
        }
        clicks.sort();
        clicks
    }

    /// Ids of the stored clicks, sorted.
    pub fn stored_click_ids(&self) -> Vec<String> {
        self.stored_clicks()
            .into_iter()
            .map(|(id, _, _)| id)
            .collect()
    }

    /// Keys of stored conversions (`…:v:<click_id>:…`) under this app's prefix.
    pub fn conversion_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .redis_keys()
            .into_iter()
            .filter(|k| k.contains(":v:"))
            .collect();
        keys.sort();
        keys
    }

    /// Everything Redis holds under this app's prefix as text: each key, and
    /// each string value or hash field and value. For "is X stored anywhere".
    pub fn stored_text(&self) -> Vec<String> {
        let mut conn = self.redis();
        let mut out = Vec::new();
        for key in self.redis_keys() {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).expect("TYPE");
            match kind.as_str() {
                "string" => {
                    let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut conn).expect("GET");
                    out.push(String::from_utf8_lossy(&value).into_owned());
                }
                "hash" => {
                    let pairs: Vec<Vec<u8>> = redis::cmd("HGETALL")
                        .arg(&key)
                        .query(&mut conn)
                        .expect("HGETALL");
                    out.extend(
                        pairs
                            .iter()
                            .map(|v| String::from_utf8_lossy(v).into_owned()),
                    );
                }
                "zset" => {
                    let members: Vec<Vec<u8>> = redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query(&mut conn)
                        .expect("ZRANGE");
                    out.extend(
                        members
                            .iter()
                            .map(|v| String::from_utf8_lossy(v).into_owned()),
                    );
                }
                "list" => {
                    let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query(&mut conn)
                        .expect("LRANGE");
                    out.extend(
                        items
                            .iter()
                            .map(|v| String::from_utf8_lossy(v).into_owned()),
                    );
                }
                other => panic!("unexpected key type {other} for {key}"),
            }
            out.push(key);
        }
        out
    }

    /// `POST /postback` with a raw body and content type.
    pub async fn postback_post(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}/postback", self.address))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Sends `GET /postback?<query>` for every query at the same moment (a
    /// barrier releases them together) and answers each one's status and JSON
    /// body, in order. Races are what these exercise.
    pub async fn postbacks_at_once(&self, queries: Vec<String>) -> Vec<(u16, Value)> {
        let start = Arc::new(tokio::sync::Barrier::new(queries.len()));
        let tasks: Vec<_> = queries
            .into_iter()
            .map(|query| {
                let client = self.client.clone();
                let url = format!("{}/postback?{query}", self.address);
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    let response = client.get(url).send().await.expect("request sent");
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.expect("json");
                    (status, body)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("task"));
        }
        answers
    }

    /// Today's single total row of `/api/v1/stats` (no grouping).
    pub async fn totals(&self) -> Value {
        let rows = self.stats("").await;
        assert_eq!(rows.len(), 1, "one total row: {rows:?}");
        rows[0].clone()
    }
}
