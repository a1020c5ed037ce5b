//! The ad and analytics platforms clickback forwards conversions to, as one
//! loopback server answering 200 to everything and remembering what came:
//!
//! - `/mp/collect` — GA4 Measurement Protocol (`CLICKBACK_GA4_ENDPOINT`);
//! - `/v<version>/<pixel id>/events` — Meta Conversions API
//!   (`CLICKBACK_META_ENDPOINT` is this server's base);
//! - `/hook` — the offer's signed webhook, whose `Clickback-Signature:
//!   t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` is checked.
//!
//! Forwarding is at least once, so each platform's requests are also read
//! for the order they report (GA4's `transaction_id`, Meta's `event_id`,
//! the webhook's `txid`, else its `conversion_id`): a retried request counts
//! once, like the platforms themselves count it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::Error;

/// How far a webhook's `t` may be from now, as a receiver would bound replays.
const SIGNATURE_TOLERANCE_SECS: u64 = 300;

/// Which platform a request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Platform {
    /// GA4 Measurement Protocol.
    Ga4,
    /// Meta Conversions API.
    Meta,
    /// The signed webhook.
    Webhook,
}

impl Platform {
    /// The destination's type, as the offer names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ga4 => "ga4",
            Self::Meta => "meta",
            Self::Webhook => "webhook",
        }
    }

    fn of_path(path: &str) -> Option<Self> {
        if path == "/mp/collect" {
            return Some(Self::Ga4);
        }
        if path == "/hook" {
            return Some(Self::Webhook);
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            [version, _pixel, "events"] if version.starts_with('v') => Some(Self::Meta),
            _ => None,
        }
    }
}

/// What one platform received.
#[derive(Clone, Debug, Default)]
pub struct Received {
    /// Requests, retries included.
    pub requests: usize,
    /// The ids the requests reported (order id or conversion id).
    pub keys: BTreeSet<String>,
    /// Webhook requests whose signature did not verify.
    pub bad_signatures: usize,
}

#[derive(Default)]
struct Log {
    by_platform: BTreeMap<Platform, Received>,
    /// Requests to a path no platform here serves.
    unexpected: Vec<String>,
}

struct Shared {
    webhook_secret: String,
    log: Mutex<Log>,
}

/// The running receiver.
#[derive(Clone)]
pub struct Platforms {
    shared: Arc<Shared>,
}

impl Platforms {
    /// Serves the platforms on `listener`, checking webhooks against
    /// `webhook_secret`.
    pub fn start(listener: TcpListener, webhook_secret: &str) -> Result<Self, Error> {
        let shared = Arc::new(Shared {
            webhook_secret: webhook_secret.to_owned(),
            log: Mutex::default(),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        tokio::spawn(server);
        Ok(Self { shared })
    }

    /// What `platform` received so far.
    pub fn received(&self, platform: Platform) -> Received {
        self.log()
            .by_platform
            .get(&platform)
            .cloned()
            .unwrap_or_default()
    }

    /// Paths requested that no platform here serves (TikTok, a typo).
    pub fn unexpected(&self) -> Vec<String> {
        self.log().unexpected.clone()
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let path = req.path().to_owned();
    let Some(platform) = Platform::of_path(&path) else {
        shared
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .unexpected
            .push(format!("{} {path}", req.method()));
        return HttpResponse::Ok().json(serde_json::json!({}));
    };
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = match platform {
        Platform::Ga4 => json.pointer("/events/0/params/transaction_id"),
        Platform::Meta => json.pointer("/data/0/event_id"),
        Platform::Webhook => json
            .get("txid")
            .filter(|t| t.as_str().is_some_and(|t| !t.is_empty()))
            .or_else(|| json.get("conversion_id")),
    }
    .and_then(Value::as_str)
    .map(str::to_owned);
    let signed = platform != Platform::Webhook
        || req
            .headers()
            .get("clickback-signature")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|header| {
                verify(shared.webhook_secret.as_bytes(), header, &body, unix_now())
            });
    let mut log = shared
        .log
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let received = log.by_platform.entry(platform).or_default();
    received.requests += 1;
    if !signed {
        received.bad_signatures += 1;
    } else if let Some(key) = key {
        received.keys.insert(key);
    }
    match platform {
        Platform::Meta => HttpResponse::Ok().json(serde_json::json!({"events_received": 1})),
        Platform::Ga4 | Platform::Webhook => HttpResponse::Ok().finish(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Whether `header` (`t=<unix>,v1=<hex>[,v1=<hex>…]`) signs `body` under
/// `secret` within [`SIGNATURE_TOLERANCE_SECS`] of `now`; the MAC is
/// compared in constant time.
fn verify(secret: &[u8], header: &str, body: &[u8], now: u64) -> bool {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => signatures.extend(hex_decode(value)),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if t.abs_diff(now) > SIGNATURE_TOLERANCE_SECS {
        return false;
    }
    signatures.iter().any(|signature| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(signature).is_ok()
    })
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"demo-webhook-secret-0123456789";
    const BODY: &[u8] = br#"{"txid":"ORD-00001"}"#;
    /// HMAC-SHA256(SECRET, "1796036400." + BODY), computed independently.
    const V1: &str = "7729ebb483af4ef5a54a67c06a0865bb9402340ab1511944ae5c9a37b15488e9";

    #[test]
    fn a_webhook_signed_with_the_secret_verifies() {
        let header = format!("t=1796036400,v1={V1}");
        assert!(verify(SECRET, &header, BODY, 1_796_036_460));
    }

    #[test]
    fn a_webhook_with_another_body_secret_or_an_old_stamp_does_not_verify() {
        let header = format!("t=1796036400,v1={V1}");
        assert!(!verify(
            SECRET,
            &header,
            br#"{"txid":"ORD-00002"}"#,
            1_796_036_400
        ));
        assert!(!verify(
            b"another-secret-0123456789",
            &header,
            BODY,
            1_796_036_400
        ));
        assert!(!verify(SECRET, &header, BODY, 1_796_036_400 + 301));
        assert!(!verify(SECRET, "v1=00", BODY, 1_796_036_400));
    }

    #[test]
    fn requests_are_told_apart_by_platform_path() {
        assert_eq!(Platform::of_path("/mp/collect"), Some(Platform::Ga4));
        assert_eq!(
            Platform::of_path("/v25.0/123456789012345/events"),
            Some(Platform::Meta)
        );
        assert_eq!(Platform::of_path("/hook"), Some(Platform::Webhook));
        assert_eq!(Platform::of_path("/open_api/v1.3/event/track/"), None);
    }
}
