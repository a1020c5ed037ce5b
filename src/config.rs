//! Settings, read from the environment once at startup.
//!
//! | variable                        | default          | meaning |
//! |---------------------------------|------------------|---------|
//! | `CLICKBACK_LISTEN`              | `0.0.0.0:8080`   | address to serve HTTP on |
//! | `REDIS_URL`                     | unset            | Redis to use; unset runs the embedded in-memory store (nothing survives a restart) |
//! | `CLICKBACK_ADMIN_TOKEN`         | unset            | bearer token of the admin API; unset refuses every admin request |
//! | `CLICKBACK_HASH_SALT`           | random per start | secret salt of the visitor hash; set it so hashes agree across instances and restarts |
//! | `CLICKBACK_KEY_PREFIX`          | `cb`             | prefix of every Redis key |
//! | `CLICKBACK_DEMO`                | `1` without `REDIS_URL`, else `0` | `1` seeds a demo offer and affiliate (unless they exist) and logs a ready-to-click link |
//! | `CLICKBACK_WORKERS`             | CPU count        | HTTP worker threads |
//! | `CLICKBACK_REDIS_POOL_SIZE`     | `64`             | Redis connections |
//! | `CLICKBACK_STORE_TIMEOUT_MS`    | `1000`           | bound on any one store operation |
//! | `CLICKBACK_CONFIG_REFRESH_MS`   | `1000`           | how often each instance checks for offer/affiliate changes |
//! | `CLICKBACK_BODY_TIMEOUT_MS`     | `10000`          | a request body must arrive whole within this, else `408` and the connection is closed |
//! | `CLICKBACK_TRUSTED_PROXIES`     | empty            | comma-separated IPs/CIDRs whose `X-Forwarded-For` is believed |
//! | `CLICKBACK_PUBLIC_URL`          | `http://localhost:<port>` | how the demo spells links in its log |
//! | `CLICKBACK_UNIQUE_CLICK_WINDOW_SECS` | `86400`     | a visitor's repeat clicks on one offer + affiliate within this window count as non-unique; `0` turns detection off |
//! | `CLICKBACK_FALLBACK_URL`        | unset            | where clicks go while an offer's cap is full and it has no `fallback_url` |
//! | `CLICKBACK_POSTBACK_LOG_SIZE`   | `1000`           | postbacks kept per offer for `GET /api/v1/postbacks` |
//! | `CLICKBACK_CLICK_BUCKETS`       | `64`             | Redis hashes per shard and hour that clicks are spread over (1-4096); keep peak clicks per hour / (64 × this) under ~400 |
//! | `RUST_LOG`                      | `info`           | log filter (env_logger) |

use std::time::Duration;

use crate::domain::ids::MAX_CLICK_BUCKETS;
use crate::domain::net::IpNet;

/// A setting that could not be understood; names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// Everything clickback can be configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to bind; port 0 picks a free port (tests).
    pub listen: String,
    /// `None` runs the in-memory store.
    pub redis_url: Option<String>,
    /// `None` disables the admin API entirely.
    pub admin_token: Option<String>,
    /// Secret for the visitor hash; `None` draws a random one at start.
    pub hash_salt: Option<String>,
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            redis_url: None,
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
            body_timeout: Duration::from_millis(10_000),
            trusted_proxies: Vec::new(),
            public_url: None,
            unique_click_window_secs: 86_400,
            fallback_url: None,
            postback_log_size: 1000,
            click_buckets: crate::domain::ids::DEFAULT_CLICK_BUCKETS,
        }
    }
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T>(name: &'static str, min: T) -> Result<Option<T>, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match var(name) {
        None => Ok(None),
        Some(raw) => match raw.trim().parse::<T>() {
            Ok(n) if n >= min => Ok(Some(n)),
            _ => Err(ConfigError {
                variable: name,
                problem: format!("expected a whole number of at least {min}, got {raw:?}"),
            }),
        },
    }
}

fn flag(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match var(name).as_deref() {
        None => Ok(default),
        Some("0") | Some("false") | Some("no") => Ok(false),
        Some("1") | Some("true") | Some("yes") => Ok(true),
        Some(other) => Err(ConfigError {
            variable: name,
            problem: format!("expected 1 or 0, got {other:?}"),
        }),
    }
}

impl Settings {
    /// Reads every variable in the table above; the error names the culprit.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Settings::default();
        let redis_url = var("REDIS_URL");
        let key_prefix = var("CLICKBACK_KEY_PREFIX").unwrap_or(defaults.key_prefix);
        validate_prefix(&key_prefix)?;
        let trusted_proxies = match var("CLICKBACK_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.parse()
                        .map_err(|e: crate::domain::DomainError| ConfigError {
                            variable: "CLICKBACK_TRUSTED_PROXIES",
                            problem: e.detail,
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            listen: var("CLICKBACK_LISTEN").unwrap_or(defaults.listen),
            redis_url: redis_url.clone(),
            admin_token: var("CLICKBACK_ADMIN_TOKEN"),
            hash_salt: var("CLICKBACK_HASH_SALT"),
            key_prefix,
            // The embedded store exists for the demo: seed it unless told not to.
            demo: flag("CLICKBACK_DEMO", redis_url.is_none())?,
            workers: number("CLICKBACK_WORKERS", 1)?.unwrap_or(defaults.workers),
            redis_pool_size: number("CLICKBACK_REDIS_POOL_SIZE", 1)?
                .unwrap_or(defaults.redis_pool_size),
            store_timeout: number("CLICKBACK_STORE_TIMEOUT_MS", 1)?
                .map(Duration::from_millis)
                .unwrap_or(defaults.store_timeout),
            config_refresh: number("CLICKBACK_CONFIG_REFRESH_MS", 10)?
                .map(Duration::from_millis)
                .unwrap_or(defaults.config_refresh),
            body_timeout: number("CLICKBACK_BODY_TIMEOUT_MS", 1)?
                .map(Duration::from_millis)
                .unwrap_or(defaults.body_timeout),
            trusted_proxies,
            public_url: var("CLICKBACK_PUBLIC_URL"),
            unique_click_window_secs: number("CLICKBACK_UNIQUE_CLICK_WINDOW_SECS", 0)?
                .unwrap_or(defaults.unique_click_window_secs),
            fallback_url: match var("CLICKBACK_FALLBACK_URL") {
                None => None,
                Some(url) => {
                    crate::domain::redirect::RedirectTemplate::parse(&url, "click_id").map_err(
                        |e| ConfigError {
                            variable: "CLICKBACK_FALLBACK_URL",
                            problem: e.detail,
                        },
                    )?;
                    Some(url)
                }
            },
            postback_log_size: number("CLICKBACK_POSTBACK_LOG_SIZE", 1)?
                .unwrap_or(defaults.postback_log_size),
            click_buckets: match number::<u16>("CLICKBACK_CLICK_BUCKETS", 1)? {
                None => defaults.click_buckets,
                Some(n) if n <= MAX_CLICK_BUCKETS => n,
                Some(n) => {
                    return Err(ConfigError {
                        variable: "CLICKBACK_CLICK_BUCKETS",
                        problem: format!("at most {MAX_CLICK_BUCKETS}, got {n}"),
                    })
                }
            },
        })
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
        return Err(ConfigError {
            variable: "CLICKBACK_KEY_PREFIX",
            problem: "must be 1-64 characters of A-Z a-z 0-9 _ - . :".into(),
        });
    }
    Ok(())
}
