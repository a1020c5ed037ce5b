//! Settings, read from the environment once at startup.
//!
//! Every variable, its default and its meaning are listed once, in
//! [`VARIABLES`]; `clickback --help` prints that table. A value that cannot
//! be used stops the process at start with a [`ConfigError`] that names the
//! variable, shows the value (never a secret) and says how to put it right.
//!
//! Secrets (the admin token, the hash salt, the password in `REDIS_URL`) are
//! held as [`Secret`] and [`RedisUrl`], whose `Debug` never shows them, so a
//! `{settings:?}` in a log line cannot leak them.

use std::fmt;
use std::time::Duration;

use crate::domain::ids::MAX_CLICK_BUCKETS;
use crate::domain::net::IpNet;

/// One environment variable clickback reads.
#[derive(Clone, Copy, Debug)]
pub struct Variable {
    /// Its name.
    pub name: &'static str,
    /// What applies while it is unset (an empty value counts as unset).
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

const fn row(name: &'static str, default: &'static str, meaning: &'static str) -> Variable {
    Variable {
        name,
        default,
        meaning,
    }
}

/// The shortest admin token accepted: 24 characters of `openssl rand
/// -base64 32` are far beyond guessing; `change-me` is not.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 24;

/// The most distinct values per report dimension and day an operator may
/// allow: each costs its counters in every hour of the day.
pub const MAX_REPORT_VALUES_PER_DAY: usize = 1_000_000;

/// GA4's Measurement Protocol collection endpoint.
pub const DEFAULT_GA4_ENDPOINT: &str = "https://www.google-analytics.com/mp/collect";
/// Meta's Graph API.
pub const DEFAULT_META_ENDPOINT: &str = "https://graph.facebook.com";
/// TikTok's Business API.
pub const DEFAULT_TIKTOK_ENDPOINT: &str = "https://business-api.tiktok.com";

/// Every variable clickback reads, its default and its meaning: the one
/// table `clickback --help` prints and configuration errors take defaults from.
pub const VARIABLES: &[Variable] = &[
    row("CLICKBACK_LISTEN", "0.0.0.0:8080", "address to serve HTTP on"),
    row(
        "REDIS_URL",
        "unset",
        "Redis to use, redis://[[user]:password@]host[:port][/db]; unset runs the embedded in-memory store (nothing survives a restart)",
    ),
    row(
        "REDIS_CLUSTER_NODES",
        "unset",
        "Redis Cluster to use instead of REDIS_URL: some of its nodes, comma-separated, each host:port or redis://[[user]:password@]host:port",
    ),
    row(
        "CLICKBACK_ADMIN_TOKEN",
        "unset",
        "bearer token of the admin API, at least 24 characters (make one with `openssl rand -base64 32`); unset refuses every admin request",
    ),
    row(
        "CLICKBACK_HASH_SALT",
        "random per start",
        "secret salt of the visitor hash; set it so hashes agree across instances and restarts",
    ),
    row("CLICKBACK_KEY_PREFIX", "cb", "prefix of every Redis key"),
    row(
        "CLICKBACK_DEMO",
        "1 without REDIS_URL and REDIS_CLUSTER_NODES, else 0",
        "1 seeds a demo offer and affiliate (unless they exist) and logs a ready-to-click link",
    ),
    row("CLICKBACK_WORKERS", "CPU count", "HTTP worker threads"),
    row("CLICKBACK_REDIS_POOL_SIZE", "64", "Redis connections"),
    row(
        "CLICKBACK_STORE_TIMEOUT_MS",
        "1000",
        "bound on any one store operation",
    ),
    row(
        "CLICKBACK_CONFIG_REFRESH_MS",
        "1000",
        "how often each instance checks for offer/affiliate changes (at least 10)",
    ),
    row(
        "CLICKBACK_SHUTDOWN_TIMEOUT_SECS",
        "10",
        "on SIGTERM clickback stops accepting connections and gives requests in flight this long to finish before it closes them; then the background writers flush (at least 1)",
    ),
    row(
        "CLICKBACK_BODY_TIMEOUT_MS",
        "10000",
        "a request body must arrive whole within this, else 408 and the connection is closed",
    ),
    row(
        "CLICKBACK_TRUSTED_PROXIES",
        "empty",
        "comma-separated IPs/CIDRs whose X-Forwarded-For is believed",
    ),
    row(
        "CLICKBACK_PUBLIC_URL",
        "http://localhost:<port>",
        "how the demo spells links in its log",
    ),
    row(
        "CLICKBACK_UNIQUE_CLICK_WINDOW_SECS",
        "86400",
        "a visitor's repeat clicks on one offer + affiliate within this window count as non-unique; 0 turns detection off",
    ),
    row(
        "CLICKBACK_FALLBACK_URL",
        "unset",
        "where clicks go while an offer's cap is full and it has no fallback_url",
    ),
    row(
        "CLICKBACK_POSTBACK_LOG_SIZE",
        "1000",
        "postbacks kept per offer for GET /api/v1/postbacks",
    ),
    row(
        "CLICKBACK_REPORT_VALUES_PER_DAY",
        "10000",
        "distinct values of each report dimension (sub1-sub5, source, goal) counted per UTC day; later values are summed in one \"other\" row (1-1000000; bounds the report counters' memory)",
    ),
    row(
        "CLICKBACK_CLICK_BUCKETS",
        "64",
        "Redis hashes per shard and hour that clicks are spread over (1-4096); keep peak clicks per hour / (64 x this) under ~400",
    ),
    row(
        "CLICKBACK_DELIVERY_SCHEDULE",
        crate::delivery::schedule::DEFAULT,
        "delays before each retry of a delivery (affiliate postback or destination) that did not get through (units ms s m h, jittered by 10 %); after the last it is dead",
    ),
    row(
        "CLICKBACK_DELIVERY_CONNECT_TIMEOUT_MS",
        "3000",
        "bound on connecting to an affiliate's server or a destination",
    ),
    row(
        "CLICKBACK_DELIVERY_TIMEOUT_MS",
        "10000",
        "bound on one delivery request (affiliate postback or destination), connecting included",
    ),
    row(
        "CLICKBACK_DELIVERY_HOST_CONCURRENCY",
        "16",
        "deliveries in flight to one host at most (per instance), so one slow affiliate cannot hold up the others",
    ),
    row(
        "CLICKBACK_DELIVERY_CONCURRENCY",
        "64",
        "deliveries in flight at most (per instance); 0 leaves sending to other instances",
    ),
    row(
        "CLICKBACK_DELIVERY_POLL_MS",
        "500",
        "how often an idle instance looks for due deliveries (its own are sent at once)",
    ),
    row(
        "CLICKBACK_ALLOW_PRIVATE_TARGETS",
        "0",
        "1 lets affiliate postbacks and webhooks go to loopback, private, link-local and other internal addresses (tests, private networks)",
    ),
    row(
        "CLICKBACK_GA4_ENDPOINT",
        DEFAULT_GA4_ENDPOINT,
        "where GA4 destinations send (the Measurement Protocol's /mp/collect): a proxy or a test receiver",
    ),
    row(
        "CLICKBACK_META_ENDPOINT",
        DEFAULT_META_ENDPOINT,
        "the Graph API base Meta destinations send to (/<version>/<pixel_id>/events is appended)",
    ),
    row(
        "CLICKBACK_TIKTOK_ENDPOINT",
        DEFAULT_TIKTOK_ENDPOINT,
        "the Business API base TikTok destinations send to (/open_api/v1.3/event/track/ is appended)",
    ),
    row("RUST_LOG", "info", "log filter (env_logger)"),
];

/// The default of `name` as [`VARIABLES`] states it, for error messages.
fn default_of(name: &str) -> &'static str {
    VARIABLES
        .iter()
        .find(|v| v.name == name)
        .map_or("none", |v| v.default)
}

/// What `clickback --help` prints: usage, every variable of [`VARIABLES`]
/// with its default and meaning, and the exit statuses.
pub fn help_text() -> String {
    let mut text = format!(
        "clickback {}: server-to-server (postback) affiliate tracker\n\n\
         Usage: clickback                run the server\n       \
         clickback --help         print this help\n       \
         clickback --version      print the version\n       \
         clickback --healthcheck  exit 0 if the clickback on CLICKBACK_LISTEN answers\n                                \
         GET /healthz with 200, else 1 (for container health checks)\n\n\
         Configuration comes from environment variables (an empty value counts as unset):\n",
        env!("CARGO_PKG_VERSION")
    );
    for variable in VARIABLES {
        text.push_str(&format!(
            "\n  {} (default: {})\n",
            variable.name, variable.default
        ));
        text.push_str(&wrap(variable.meaning, "      ", 78));
    }
    text.push_str(
        "\nExit status: 0 after a clean shutdown (and for --help, --version), \
         1 when starting or serving fails, 2 when a variable or an argument cannot be used.\n",
    );
    text
}

/// `text` broken at spaces into lines of at most `width` columns, each
/// starting with `indent` (a word longer than a line gets a line of its own).
fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from(indent);
    for word in text.split_whitespace() {
        if line.len() > indent.len() && line.len() + 1 + word.len() > width {
            out.push_str(&line);
            out.push('\n');
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// A value that must never reach a log or a debug print (the admin token,
/// the hash salt); the one secret type of the crate.
pub use crate::domain::Secret;

/// `REDIS_URL`, which may carry a password: `Debug` and `Display` show it
/// with the password masked (`redis://:****@host:6379/0`), so it can be
/// logged; [`RedisUrl::expose`] gives the URL to connect with.
#[derive(Clone)]
pub struct RedisUrl(Secret);

impl RedisUrl {
    /// The URL with its password, to connect with.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with its password masked, to show.
    pub fn redacted(&self) -> String {
        redact_url(self.0.expose())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl From<String> for RedisUrl {
    fn from(value: String) -> Self {
        Self(Secret::from(value))
    }
}

impl From<&str> for RedisUrl {
    fn from(value: &str) -> Self {
        Self(Secret::from(value))
    }
}

/// `url` with the password masked: everything between the user name and the
/// last `@` (`redis://user:****@host`, or `redis://****@host` when there is
/// no user name to keep), and the `pass`/`password` query parameters of
/// socket URLs. Works on malformed URLs too, masking more rather than less.
fn redact_url(url: &str) -> String {
    const MASK: &str = "****";
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (userinfo, host_and_more) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut out = String::from(scheme);
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _password)) => out.push_str(&format!("{user}:{MASK}@")),
            None => out.push_str(&format!("{MASK}@")),
        }
    }
    match host_and_more.split_once('?') {
        None => out.push_str(host_and_more),
        Some((before, query)) => {
            out.push_str(before);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _))
                        if key.eq_ignore_ascii_case("pass")
                            || key.eq_ignore_ascii_case("password") =>
                    {
                        format!("{key}={MASK}")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
    }
    out
}

/// A setting that cannot be used. Its message names the variable and shows
/// the value (masked for `REDIS_URL`, left out for secrets); [`ConfigError::fix`]
/// says how to put it right.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// The value as it may be shown; `None` for secrets.
    pub value: Option<String>,
    /// What is wrong with it, e.g. "is not a whole number of at least 1".
    pub problem: String,
    /// How to put it right, e.g. "set a whole number of at least 1, or unset it".
    pub fix: String,
    /// The parser's own complaint, when there is one.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value:?} {}", self.variable, self.problem),
            None => write!(f, "{} {}", self.variable, self.problem),
        }
    }
}

impl ConfigError {
    fn new(
        variable: &'static str,
        value: Option<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            variable,
            value,
            problem: problem.into(),
            fix: fix.into(),
            source: None,
        }
    }

    fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

/// Everything clickback can be configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to bind; port 0 picks a free port (tests).
    pub listen: String,
    /// `None` runs the in-memory store (unless `redis_cluster_nodes` is set).
    pub redis_url: Option<RedisUrl>,
    /// Some nodes of a Redis Cluster, comma-separated: runs on the cluster
    /// ([`Settings::cluster_nodes`]). Never set together with `redis_url`.
    pub redis_cluster_nodes: Option<RedisUrl>,
    /// `None` disables the admin API entirely.
    pub admin_token: Option<Secret>,
    /// Secret for the visitor hash; `None` draws a random one at start.
    pub hash_salt: Option<Secret>,
    /// Prefix of every Redis key (a random one per test keeps tests apart).
    pub key_prefix: String,
    /// Seed demo data and log a tracking link.
    pub demo: bool,
    /// HTTP worker threads.
    pub workers: usize,
    /// Redis pool size.
    pub redis_pool_size: usize,
    /// Bound on any one store operation.
    pub store_timeout: Duration,
    /// Period of the config version poll.
    pub config_refresh: Duration,
    /// How long a graceful shutdown (SIGTERM) waits for requests in flight
    /// before closing their connections: long enough for a slow postback,
    /// short enough to fit the orchestrator's grace period.
    pub shutdown_timeout: Duration,
    /// Bound on reading a whole request body, so that a client trickling
    /// bytes cannot hold a connection and a handler forever.
    pub body_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` names the real visitor.
    pub trusted_proxies: Vec<IpNet>,
    /// Base URL the demo prints links with.
    pub public_url: Option<String>,
    /// Duplicate-click window, seconds (0: off).
    pub unique_click_window_secs: u64,
    /// Global landing page for capped offers without their own.
    pub fallback_url: Option<String>,
    /// Postbacks kept per offer in the troubleshooting log.
    pub postback_log_size: usize,
    /// Hash buckets per shard and hour that clicks are spread over; sized so
    /// a bucket stays a compact listpack (docs/operations.md).
    pub click_buckets: u16,
    /// Distinct values per report dimension and UTC day before the "other"
    /// bucket (the bound of docs/architecture.md, "Report counters").
    pub report_values_per_day: usize,
    /// Affiliate postbacks: schedule, timeouts, limits, address guard.
    pub delivery: DeliverySettings,
}

/// How deliveries are sent: affiliate postbacks (API.md §6) and destinations (docs/destinations.md).
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// Delays before each retry.
    pub schedule: crate::delivery::schedule::Schedule,
    /// Bound on connecting.
    pub connect_timeout: Duration,
    /// Bound on one request, connecting included.
    pub timeout: Duration,
    /// Requests in flight to one host at most.
    pub host_concurrency: usize,
    /// Requests in flight at most; 0 runs no delivery worker here.
    pub concurrency: usize,
    /// Pause between looks for due deliveries while idle.
    pub poll: Duration,
    /// Lift the guard against internal addresses.
    pub allow_private_targets: bool,
    /// Host names answered before DNS, like `/etc/hosts` (tests make a name
    /// resolve to loopback with it); not read from the environment.
    pub static_hosts: Vec<(String, std::net::IpAddr)>,
    /// Where GA4 destinations send (`CLICKBACK_GA4_ENDPOINT`).
    pub ga4_endpoint: String,
    /// The Graph API base of Meta destinations (`CLICKBACK_META_ENDPOINT`).
    pub meta_endpoint: String,
    /// The Business API base of TikTok destinations (`CLICKBACK_TIKTOK_ENDPOINT`).
    pub tiktok_endpoint: String,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            schedule: crate::delivery::schedule::Schedule::default_schedule(),
            connect_timeout: Duration::from_millis(3000),
            timeout: Duration::from_millis(10_000),
            host_concurrency: 16,
            concurrency: 64,
            poll: Duration::from_millis(500),
            allow_private_targets: false,
            static_hosts: Vec::new(),
            ga4_endpoint: DEFAULT_GA4_ENDPOINT.to_owned(),
            meta_endpoint: DEFAULT_META_ENDPOINT.to_owned(),
            tiktok_endpoint: DEFAULT_TIKTOK_ENDPOINT.to_owned(),
        }
    }
}

impl DeliverySettings {
    /// How long a claimed delivery is held before another worker may take
    /// it: well past the longest attempt.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(10)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            redis_url: None,
            redis_cluster_nodes: None,
            admin_token: None,
            hash_salt: None,
            key_prefix: "cb".into(),
            demo: false,
            workers: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            redis_pool_size: 64,
            store_timeout: Duration::from_millis(1000),
            config_refresh: Duration::from_millis(1000),
            shutdown_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_millis(10_000),
            trusted_proxies: Vec::new(),
            public_url: None,
            unique_click_window_secs: 86_400,
            fallback_url: None,
            postback_log_size: 1000,
            click_buckets: crate::domain::ids::DEFAULT_CLICK_BUCKETS,
            report_values_per_day: crate::store::report::VALUES_PER_DAY,
            delivery: DeliverySettings::default(),
        }
    }
}

/// The variables as `lookup` reports them; empty or blank counts as unset.
struct Env<L>(L);

impl<L: Fn(&str) -> Option<String>> Env<L> {
    fn var(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn number<T>(&self, name: &'static str, min: T) -> Result<Option<T>, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display,
    {
        match self.var(name) {
            None => Ok(None),
            Some(raw) => match raw.trim().parse::<T>() {
                Ok(n) if n >= min => Ok(Some(n)),
                _ => Err(ConfigError::new(
                    name,
                    Some(raw),
                    format!("is not a whole number of at least {min}"),
                    format!(
                        "set a whole number of at least {min}, or unset it for the default ({})",
                        default_of(name)
                    ),
                )),
            },
        }
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.var(name) {
            None => Ok(default),
            Some(raw) => match raw.trim() {
                "0" | "false" | "no" => Ok(false),
                "1" | "true" | "yes" => Ok(true),
                _ => Err(ConfigError::new(
                    name,
                    Some(raw),
                    "is neither 1 nor 0",
                    format!(
                        "set 1 (or true, yes) or 0 (or false, no), or unset it for the default ({})",
                        default_of(name)
                    ),
                )),
            },
        }
    }
}

/// The node URLs of a `REDIS_CLUSTER_NODES` list: `host:port` entries get
/// the `redis://` scheme; empty entries are skipped.
fn cluster_node_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(|node| {
            if node.contains("://") {
                node.to_owned()
            } else {
                format!("redis://{node}")
            }
        })
        .collect()
}

impl Settings {
    /// The cluster's seed nodes as URLs to connect with (passwords
    /// included), or `None` on one Redis or the in-memory store.
    pub fn cluster_nodes(&self) -> Option<Vec<String>> {
        self.redis_cluster_nodes
            .as_ref()
            .map(|nodes| cluster_node_urls(nodes.expose()))
    }

    /// Reads every variable of [`VARIABLES`]; the error names the culprit.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`Settings::from_env`], reading each variable through `lookup`,
    /// so tests need not change the process environment.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let defaults = Settings::default();
        let redis_url = env.var("REDIS_URL").map(RedisUrl::from);
        if let Some(url) = &redis_url {
            redis::IntoConnectionInfo::into_connection_info(url.expose()).map_err(|e| {
                ConfigError::new(
                    "REDIS_URL",
                    Some(url.redacted()),
                    "is not a Redis URL",
                    "write it as redis://[[user]:password@]host[:port][/db], with special characters in the password percent-encoded",
                )
                .caused_by(e)
            })?;
        }
        let redis_cluster_nodes = env.var("REDIS_CLUSTER_NODES").map(RedisUrl::from);
        if let Some(nodes) = &redis_cluster_nodes {
            if redis_url.is_some() {
                return Err(ConfigError::new(
                    "REDIS_CLUSTER_NODES",
                    Some(nodes.redacted()),
                    "is set together with REDIS_URL",
                    "set REDIS_CLUSTER_NODES for a Redis Cluster or REDIS_URL for one Redis, not both",
                ));
            }
            let urls = cluster_node_urls(nodes.expose());
            if urls.is_empty() {
                return Err(ConfigError::new(
                    "REDIS_CLUSTER_NODES",
                    Some(nodes.redacted()),
                    "names no node",
                    "list some of the cluster's nodes as host:port,host:port",
                ));
            }
            for url in &urls {
                redis::IntoConnectionInfo::into_connection_info(url.as_str()).map_err(|e| {
                    ConfigError::new(
                        "REDIS_CLUSTER_NODES",
                        Some(nodes.redacted()),
                        "has an entry that is not a node address",
                        "list nodes as host:port or redis://[[user]:password@]host:port, separated by commas",
                    )
                    .caused_by(e)
                })?;
            }
        }
        let admin_token = env.var("CLICKBACK_ADMIN_TOKEN").map(Secret::from);
        if let Some(token) = &admin_token {
            let chars = token.expose().chars().count();
            if chars < MIN_ADMIN_TOKEN_CHARS {
                return Err(ConfigError::new(
                    "CLICKBACK_ADMIN_TOKEN",
                    None,
                    format!(
                        "is too short: {chars} character{}, at least {MIN_ADMIN_TOKEN_CHARS} are needed",
                        if chars == 1 { "" } else { "s" }
                    ),
                    "make one with `openssl rand -base64 32` (or `head -c 32 /dev/urandom | base64`), or unset it to keep the admin API closed",
                ));
            }
        }
        let key_prefix = env
            .var("CLICKBACK_KEY_PREFIX")
            .unwrap_or(defaults.key_prefix);
        validate_prefix(&key_prefix)?;
        let trusted_proxies = match env.var("CLICKBACK_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.parse().map_err(|e: crate::domain::DomainError| {
                        ConfigError::new(
                            "CLICKBACK_TRUSTED_PROXIES",
                            Some(list.clone()),
                            "has an entry that is not a network",
                            "list IP addresses or CIDR blocks separated by commas, e.g. 10.0.0.0/8,192.168.1.7",
                        )
                        .caused_by(e)
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            listen: env.var("CLICKBACK_LISTEN").unwrap_or(defaults.listen),
            // The embedded store exists for the demo: seed it unless told not to.
            demo: env.flag(
                "CLICKBACK_DEMO",
                redis_url.is_none() && redis_cluster_nodes.is_none(),
            )?,
            redis_url,
            redis_cluster_nodes,
            admin_token,
            hash_salt: env.var("CLICKBACK_HASH_SALT").map(Secret::from),
            key_prefix,
            workers: env
                .number("CLICKBACK_WORKERS", 1)?
                .unwrap_or(defaults.workers),
            redis_pool_size: env
                .number("CLICKBACK_REDIS_POOL_SIZE", 1)?
                .unwrap_or(defaults.redis_pool_size),
            store_timeout: env
                .number("CLICKBACK_STORE_TIMEOUT_MS", 1)?
                .map(Duration::from_millis)
                .unwrap_or(defaults.store_timeout),
            config_refresh: env
                .number("CLICKBACK_CONFIG_REFRESH_MS", 10)?
                .map(Duration::from_millis)
                .unwrap_or(defaults.config_refresh),
            shutdown_timeout: env
                .number("CLICKBACK_SHUTDOWN_TIMEOUT_SECS", 1)?
                .map(Duration::from_secs)
                .unwrap_or(defaults.shutdown_timeout),
            body_timeout: env
                .number("CLICKBACK_BODY_TIMEOUT_MS", 1)?
                .map(Duration::from_millis)
                .unwrap_or(defaults.body_timeout),
            trusted_proxies,
            public_url: env.var("CLICKBACK_PUBLIC_URL"),
            unique_click_window_secs: env
                .number("CLICKBACK_UNIQUE_CLICK_WINDOW_SECS", 0)?
                .unwrap_or(defaults.unique_click_window_secs),
            fallback_url: match env.var("CLICKBACK_FALLBACK_URL") {
                None => None,
                // Kept in its normalised form: it goes out in `Location` as is.
                Some(url) => match crate::domain::redirect::RedirectTemplate::parse(&url, "click_id")
                {
                    Ok(template) => Some(template.as_str().to_owned()),
                    Err(e) => {
                        return Err(ConfigError::new(
                            "CLICKBACK_FALLBACK_URL",
                            Some(url),
                            "is not a usable landing page",
                            "set an absolute http:// or https:// URL without credentials, or unset it",
                        )
                        .caused_by(e));
                    }
                },
            },
            postback_log_size: env
                .number("CLICKBACK_POSTBACK_LOG_SIZE", 1)?
                .unwrap_or(defaults.postback_log_size),
            click_buckets: match env.number::<u16>("CLICKBACK_CLICK_BUCKETS", 1)? {
                None => defaults.click_buckets,
                Some(n) if n <= MAX_CLICK_BUCKETS => n,
                Some(n) => {
                    return Err(ConfigError::new(
                        "CLICKBACK_CLICK_BUCKETS",
                        Some(n.to_string()),
                        format!("is more than {MAX_CLICK_BUCKETS}"),
                        format!(
                            "set 1 to {MAX_CLICK_BUCKETS} (docs/operations.md says how to size it), or unset it for the default ({})",
                            default_of("CLICKBACK_CLICK_BUCKETS")
                        ),
                    ))
                }
            },
            report_values_per_day: match env.number::<usize>("CLICKBACK_REPORT_VALUES_PER_DAY", 1)? {
                None => defaults.report_values_per_day,
                Some(n) if n <= MAX_REPORT_VALUES_PER_DAY => n,
                Some(n) => {
                    return Err(ConfigError::new(
                        "CLICKBACK_REPORT_VALUES_PER_DAY",
                        Some(n.to_string()),
                        format!("is more than {MAX_REPORT_VALUES_PER_DAY}"),
                        format!(
                            "set 1 to {MAX_REPORT_VALUES_PER_DAY}, or unset it for the default ({})",
                            default_of("CLICKBACK_REPORT_VALUES_PER_DAY")
                        ),
                    ))
                }
            },
            delivery: delivery_settings(&env, defaults.delivery)?,
        })
    }
}

/// The `CLICKBACK_DELIVERY_*` variables and `CLICKBACK_ALLOW_PRIVATE_TARGETS`.
fn delivery_settings<L: Fn(&str) -> Option<String>>(
    env: &Env<L>,
    defaults: DeliverySettings,
) -> Result<DeliverySettings, ConfigError> {
    let millis = |name, min| -> Result<Option<Duration>, ConfigError> {
        Ok(env.number(name, min)?.map(Duration::from_millis))
    };
    let schedule = match env.var("CLICKBACK_DELIVERY_SCHEDULE") {
        None => defaults.schedule,
        Some(raw) => crate::delivery::schedule::Schedule::parse(&raw).map_err(|problem| {
            ConfigError::new(
                "CLICKBACK_DELIVERY_SCHEDULE",
                Some(raw.clone()),
                format!("is not a retry schedule: {problem}"),
                format!(
                    "list delays separated by commas, each a whole number with a unit of ms, s, m or h, e.g. {}",
                    crate::delivery::schedule::DEFAULT
                ),
            )
        })?,
    };
    Ok(DeliverySettings {
        schedule,
        connect_timeout: millis("CLICKBACK_DELIVERY_CONNECT_TIMEOUT_MS", 1)?
            .unwrap_or(defaults.connect_timeout),
        timeout: millis("CLICKBACK_DELIVERY_TIMEOUT_MS", 1)?.unwrap_or(defaults.timeout),
        host_concurrency: env
            .number("CLICKBACK_DELIVERY_HOST_CONCURRENCY", 1)?
            .unwrap_or(defaults.host_concurrency),
        concurrency: env
            .number("CLICKBACK_DELIVERY_CONCURRENCY", 0)?
            .unwrap_or(defaults.concurrency),
        poll: millis("CLICKBACK_DELIVERY_POLL_MS", 1)?.unwrap_or(defaults.poll),
        allow_private_targets: env.flag("CLICKBACK_ALLOW_PRIVATE_TARGETS", false)?,
        static_hosts: defaults.static_hosts,
        ga4_endpoint: endpoint(env, "CLICKBACK_GA4_ENDPOINT", defaults.ga4_endpoint)?,
        meta_endpoint: endpoint(env, "CLICKBACK_META_ENDPOINT", defaults.meta_endpoint)?,
        tiktok_endpoint: endpoint(env, "CLICKBACK_TIKTOK_ENDPOINT", defaults.tiktok_endpoint)?,
    })
}

/// A platform endpoint: an absolute http(s) URL without a query, its
/// trailing `/` dropped.
fn endpoint<L: Fn(&str) -> Option<String>>(
    env: &Env<L>,
    name: &'static str,
    default: String,
) -> Result<String, ConfigError> {
    let Some(raw) = env.var(name) else {
        return Ok(default);
    };
    match url::Url::parse(raw.trim()) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.query().is_none() =>
        {
            Ok(raw.trim().trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError::new(
            name,
            Some(raw.clone()),
            "is not an absolute http(s) URL without a query".to_owned(),
            format!("e.g. {}", default_of(name)),
        )),
    }
}

/// Key prefixes may not contain hash-tag braces (they would move keys between
/// cluster slots) nor whitespace.
pub fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    if prefix.is_empty()
        || prefix.len() > 64
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        return Err(ConfigError::new(
            "CLICKBACK_KEY_PREFIX",
            Some(prefix.to_owned()),
            "is not a usable key prefix",
            "use 1-64 characters of A-Z a-z 0-9 _ - . :",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TOKEN: &str = "admin-token-that-is-long-enough-0001";
    const SALT: &str = "salt-nobody-may-see-9c1e";
    const PASSWORD: &str = "redis-password-4b7d";

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn debug_output_of_the_settings_shows_no_secret() {
        let settings = settings(&[
            ("CLICKBACK_ADMIN_TOKEN", TOKEN),
            ("CLICKBACK_HASH_SALT", SALT),
            (
                "REDIS_URL",
                &format!("redis://app:{PASSWORD}@10.0.0.5:6379/2"),
            ),
        ])
        .expect("valid settings");

        let printed = format!("{settings:?}");

        for secret in [TOKEN, SALT, PASSWORD] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(
            printed.contains("redis://app:****@10.0.0.5:6379/2"),
            "{printed}"
        );
        assert!(printed.contains("[redacted]"), "{printed}");
    }

    #[test]
    fn an_admin_token_shorter_than_24_characters_is_refused_without_showing_it() {
        let error = settings(&[("CLICKBACK_ADMIN_TOKEN", "short-but-secret-23chrs")])
            .expect_err("a 23-character token must be refused");

        let message = format!("{error} {}", error.fix);

        assert_eq!(error.variable, "CLICKBACK_ADMIN_TOKEN");
        assert!(!message.contains("short-but-secret"), "{message}");
        assert!(message.contains("openssl rand -base64 32"), "{message}");
    }

    #[test]
    fn an_admin_token_of_24_characters_is_accepted() {
        let settings =
            settings(&[("CLICKBACK_ADMIN_TOKEN", "abcdefghijklmnopqrstuvwx")]).expect("accepted");

        assert_eq!(
            settings.admin_token.as_ref().map(Secret::expose),
            Some("abcdefghijklmnopqrstuvwx")
        );
    }

    #[test]
    fn cluster_nodes_are_read_as_urls_with_host_port_entries_given_the_redis_scheme() {
        let settings = settings(&[(
            "REDIS_CLUSTER_NODES",
            &format!("10.0.0.1:7000, redis://:{PASSWORD}@10.0.0.2:7001,,"),
        )])
        .expect("valid settings");

        assert_eq!(
            settings.cluster_nodes(),
            Some(vec![
                "redis://10.0.0.1:7000".to_owned(),
                format!("redis://:{PASSWORD}@10.0.0.2:7001"),
            ])
        );
        assert!(!settings.demo, "a cluster is no demo");
        assert!(!format!("{settings:?}").contains(PASSWORD));
    }

    #[test]
    fn cluster_nodes_together_with_a_redis_url_are_refused_naming_the_variable() {
        let error = settings(&[
            ("REDIS_URL", "redis://10.0.0.5:6379"),
            ("REDIS_CLUSTER_NODES", "10.0.0.1:7000"),
        ])
        .expect_err("both set must be refused");

        assert_eq!(error.variable, "REDIS_CLUSTER_NODES");
        assert!(error.fix.contains("not both"), "{}", error.fix);
    }

    #[test]
    fn a_cluster_node_that_is_no_address_is_refused_with_the_password_masked() {
        let error = settings(&[(
            "REDIS_CLUSTER_NODES",
            &format!("redis://:{PASSWORD}@10.0.0.1:port"),
        )])
        .expect_err("a port that is not a number must be refused");

        assert_eq!(error.variable, "REDIS_CLUSTER_NODES");
        assert!(!error.to_string().contains(PASSWORD), "{error}");
        assert!(!format!("{error:?}").contains(PASSWORD));
    }

    #[test]
    fn a_malformed_redis_url_is_refused_naming_the_variable_with_the_password_masked() {
        let error = settings(&[("REDIS_URL", &format!("redis://:{PASSWORD}@host:port/0"))])
            .expect_err("a port that is not a number must be refused");

        assert_eq!(error.variable, "REDIS_URL");
        assert_eq!(error.value.as_deref(), Some("redis://:****@host:port/0"));
        assert!(!error.to_string().contains(PASSWORD));
    }

    #[test]
    fn redacting_a_url_masks_every_spelling_of_a_password() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:pw@host:6379/0", "redis://:****@host:6379/0"),
            ("redis://user:pw@host/1", "redis://user:****@host/1"),
            ("redis://pw@host", "redis://****@host"),
            ("redis://:p@ss/w:rd@host:1", "redis://:****@host:1"),
            (
                "redis+unix:///tmp/r.sock?db=1&pass=pw",
                "redis+unix:///tmp/r.sock?db=1&pass=****",
            ),
            (
                "unix:///tmp/r.sock?password=pw",
                "unix:///tmp/r.sock?password=****",
            ),
            ("nonsense:pw@x", "nonsense:****@x"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn the_report_values_per_day_are_read_and_bounded() {
        assert_eq!(
            settings(&[]).expect("defaults").report_values_per_day,
            crate::store::report::VALUES_PER_DAY
        );
        let read = settings(&[("CLICKBACK_REPORT_VALUES_PER_DAY", "50000")]).expect("valid");
        assert_eq!(read.report_values_per_day, 50_000);
        for bad in ["0", "1000001", "lots"] {
            let error = settings(&[("CLICKBACK_REPORT_VALUES_PER_DAY", bad)]).expect_err(bad);
            assert!(
                error
                    .to_string()
                    .starts_with("CLICKBACK_REPORT_VALUES_PER_DAY="),
                "{error}"
            );
        }
    }

    #[test]
    fn a_bad_number_names_the_variable_its_value_and_its_default() {
        let error = settings(&[("CLICKBACK_WORKERS", "many")]).expect_err("not a number");

        assert_eq!(
            format!("{error}; {}", error.fix),
            "CLICKBACK_WORKERS=\"many\" is not a whole number of at least 1; \
             set a whole number of at least 1, or unset it for the default (CPU count)"
        );
    }

    #[test]
    fn the_help_lists_every_variable_with_its_default() {
        let help = help_text();

        for variable in VARIABLES {
            assert!(
                help.contains(&format!(
                    "{} (default: {})",
                    variable.name, variable.default
                )),
                "{} missing from the help",
                variable.name
            );
        }
    }

    #[test]
    fn the_shutdown_timeout_is_read_in_seconds_and_zero_is_refused_naming_it() {
        let read = settings(&[("CLICKBACK_SHUTDOWN_TIMEOUT_SECS", "25")]).expect("valid");
        assert_eq!(read.shutdown_timeout, Duration::from_secs(25));
        assert_eq!(
            settings(&[]).expect("defaults").shutdown_timeout,
            Duration::from_secs(10)
        );

        let error = settings(&[("CLICKBACK_SHUTDOWN_TIMEOUT_SECS", "0")]).expect_err("zero");

        assert_eq!(error.variable, "CLICKBACK_SHUTDOWN_TIMEOUT_SECS");
        assert!(error.fix.contains("default (10)"), "{}", error.fix);
    }

    #[test]
    fn the_delivery_variables_are_read_and_a_bad_schedule_names_its_variable() {
        let read = settings(&[
            ("CLICKBACK_DELIVERY_SCHEDULE", "500ms, 2s"),
            ("CLICKBACK_DELIVERY_TIMEOUT_MS", "2500"),
            ("CLICKBACK_DELIVERY_CONCURRENCY", "0"),
            ("CLICKBACK_ALLOW_PRIVATE_TARGETS", "1"),
        ])
        .expect("valid settings");
        assert_eq!(read.delivery.schedule.retries(), 2);
        assert_eq!(read.delivery.timeout, Duration::from_millis(2500));
        assert_eq!(read.delivery.concurrency, 0);
        assert!(read.delivery.allow_private_targets);
        assert_eq!(read.delivery.lease(), Duration::from_secs(15));

        let error =
            settings(&[("CLICKBACK_DELIVERY_SCHEDULE", "10s,soon")]).expect_err("not a schedule");
        assert_eq!(error.variable, "CLICKBACK_DELIVERY_SCHEDULE");
        assert!(
            error
                .to_string()
                .starts_with("CLICKBACK_DELIVERY_SCHEDULE=\"10s,soon\""),
            "{error}"
        );
        assert!(error.fix.contains("10s,1m"), "{}", error.fix);
    }
}
