//! Server-side destinations: the request each platform expects for one
//! conversion, and how its answer is read (docs/destinations.md).
//!
//! [`prepare`] turns a [`ConversionEvent`] and a [`Destination`] into an
//! [`OutboundRequest`] (or says why nothing is sent); the worker hands it to
//! [`Sender::send_request`](super::sender::Sender::send_request) and passes
//! the answer to [`classify`], whose [`Verdict`] decides between delivered,
//! retry and dead. One module per platform:
//!
//! - [`ga4`]: Google Analytics 4 Measurement Protocol;
//! - [`meta`]: Meta Conversions API;
//! - [`tiktok`]: TikTok Events API;
//! - [`webhook`]: a JSON `POST` signed with HMAC-SHA256.
//!
//! Nothing here reads a clock or the network: `now_secs` and the endpoints
//! are passed in, so every request is a pure function of its inputs.
//!
//! What is never sent, to any platform: an IP address, a user agent, an
//! email address or phone number — clickback has none of them for a
//! conversion. The ad click ids (`gclid`, `fbclid`, `ttclid`) and the GA
//! client id are the ones captured on the tracked click.

pub mod ga4;
pub mod meta;
pub mod tiktok;
pub mod webhook;

use std::fmt;

use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::domain::conversion::ConversionStatus;
use crate::domain::destination::{Destination, DestinationKind};
use crate::domain::money::Money;

/// How much of an answer's body [`classify`] reads, like the sender.
pub const MAX_ANSWER_BODY: usize = 64 * 1024;

/// The longest error text a [`Verdict`] carries, so a platform's chatty
/// answer cannot bloat the delivery log.
const MAX_REASON_CHARS: usize = 300;

/// Everything a destination may send about one conversion at one status.
#[derive(Clone, Copy, Debug)]
pub struct ConversionEvent<'a> {
    /// The delivery being attempted: the webhook's `Idempotency-Key`.
    pub delivery_id: &'a str,
    /// clickback's id of the conversion; the dedupe key when there is no txid.
    pub conversion_id: &'a str,
    /// The click credited.
    pub click_id: &'a str,
    /// The offer converted on.
    pub offer_id: &'a str,
    /// The affiliate credited.
    pub aff_id: &'a str,
    /// The status reached, which is what fires the destination.
    pub status: ConversionStatus,
    /// The affiliate's payout.
    pub payout: Money,
    /// The network's revenue (what the advertiser pays for the conversion).
    pub revenue: Money,
    /// The sale amount the advertiser reported, if any.
    pub amount: Option<Money>,
    /// The ISO 4217 code of payout, revenue and amount.
    pub currency: &'a str,
    /// `sub1`…`sub5` of the click.
    pub subs: [&'a str; 5],
    /// The traffic source of the click.
    pub source: &'a str,
    /// The advertiser's transaction id; "" when none was sent.
    pub txid: &'a str,
    /// The goal converted, for multi-goal offers.
    pub goal: &'a str,
    /// Unix seconds of the click.
    pub click_at: u64,
    /// Unix seconds the conversion was created.
    pub converted_at: u64,
    /// Unix seconds it reached `status`.
    pub status_at: u64,
    /// Google Ads click id captured at click time; "" when absent.
    pub gclid: &'a str,
    /// Meta click id captured at click time; "" when absent.
    pub fbclid: &'a str,
    /// TikTok click id captured at click time; "" when absent.
    pub ttclid: &'a str,
    /// The GA4 client id (or raw `_ga` cookie) captured at click time; ""
    /// when absent.
    pub ga_client_id: &'a str,
}

impl ConversionEvent<'_> {
    /// The `value` reported to ad platforms: what the sale was worth to the
    /// advertiser, i.e. the amount its postback reported, else the offer's
    /// revenue (what the conversion costs the advertiser, for offers whose
    /// postbacks carry no amount).
    pub fn value(&self) -> Money {
        self.amount.unwrap_or(self.revenue)
    }

    /// The id a browser pixel would use for the same order, so the platform
    /// counts a conversion once however many times (and from wherever) it is
    /// reported: the advertiser's txid when there is one, else clickback's
    /// conversion id.
    pub fn dedupe_key(&self) -> &str {
        if self.txid.is_empty() {
            self.conversion_id
        } else {
            self.txid
        }
    }
}

/// The platforms' base URLs, configurable so tests (and proxies) can stand
/// in for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The GA4 collect URL (`CLICKBACK_GA4_ENDPOINT`).
    pub ga4: String,
    /// The Graph API base (`CLICKBACK_META_ENDPOINT`).
    pub meta: String,
    /// The TikTok Business API base (`CLICKBACK_TIKTOK_ENDPOINT`).
    pub tiktok: String,
}

impl Default for Endpoints {
    /// The public endpoints of each platform.
    fn default() -> Self {
        Self {
            ga4: "https://www.google-analytics.com/mp/collect".to_owned(),
            meta: "https://graph.facebook.com".to_owned(),
            tiktok: "https://business-api.tiktok.com".to_owned(),
        }
    }
}

/// One HTTP request to make for a destination.
///
/// Its URL and headers may carry credentials (GA4's `api_secret` in the
/// query, TikTok's `Access-Token` header, Meta's token in the body), so
/// `Debug` shows the URL without query values, header names only and the
/// body's length.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    /// `POST` for every platform.
    pub method: reqwest::Method,
    /// The absolute URL, query included.
    pub url: String,
    /// Header name and value pairs, besides `User-Agent` and
    /// `Idempotency-Key` which the sender adds.
    pub headers: Vec<(String, String)>,
    /// The body, JSON for every platform.
    pub body: Option<Vec<u8>>,
    /// Sent as `Idempotency-Key` by the sender: the delivery id, so a
    /// receiver can drop a retry it already processed.
    pub idempotency_key: String,
}

impl fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, _)| format!("{name}: ***"))
            .collect();
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("url", &redact_query(&self.url))
            .field("headers", &headers)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .field("idempotency_key", &self.idempotency_key)
            .finish()
    }
}

/// `url` with every query value replaced by `***`.
pub fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, _)) => (q, "#…"),
        None => (query, ""),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{name}=***"),
            None => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}{fragment}", pairs.join("&"))
}

/// What to do for one destination and one conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prepared {
    /// Make this request.
    Send(OutboundRequest),
    /// Never sendable (e.g. a Meta event older than 7 days): the delivery is
    /// dead at once, with this reason.
    Dead(String),
    /// Nothing to send for this status (the destination no longer fires
    /// for it, or a rejected conversion reaches a platform without a refund
    /// event, which configuration refuses): the worker records the delivery
    /// as dead with this note, never as delivered, and never retries it.
    Skip(String),
}

/// Builds the request `dest` expects for `event`, or says why there is none.
///
/// `pseudonym_key` keys the GA4 client id derived from the click id when no
/// client id was captured; `now_secs` decides the platforms' age limits and
/// the webhook signature's timestamp.
pub fn prepare(
    dest: &Destination,
    event: &ConversionEvent<'_>,
    endpoints: &Endpoints,
    pseudonym_key: &[u8],
    now_secs: u64,
) -> Prepared {
    if !dest.fires_for(event.status) {
        return Prepared::Skip(format!(
            "destination {} does not fire for {} conversions",
            dest.id.as_str(),
            event.status.as_str()
        ));
    }
    use crate::domain::destination::DestinationTarget as T;
    let event_name = dest.event_name.as_deref();
    match &dest.target {
        T::Ga4 {
            measurement_id,
            api_secret,
        } => ga4::prepare(
            &ga4::Ga4Target {
                measurement_id,
                api_secret: api_secret.expose(),
                event_name,
            },
            event,
            &endpoints.ga4,
            pseudonym_key,
            now_secs,
        ),
        T::Meta {
            pixel_id,
            access_token,
            test_event_code,
        } => meta::prepare(
            &meta::MetaTarget {
                pixel_id,
                access_token: access_token.expose(),
                test_event_code: test_event_code.as_deref(),
                event_name,
            },
            event,
            &endpoints.meta,
            now_secs,
        ),
        T::TikTok {
            pixel_code,
            access_token,
            test_event_code,
        } => tiktok::prepare(
            &tiktok::TikTokTarget {
                pixel_code,
                access_token: access_token.expose(),
                test_event_code: test_event_code.as_deref(),
                event_name,
            },
            event,
            &endpoints.tiktok,
            now_secs,
        ),
        T::Webhook { url, secret } => {
            webhook::prepare(url, secret.expose().as_bytes(), event_name, event, now_secs)
        }
    }
}

/// How an answered attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The platform took the event.
    Delivered,
    /// A passing failure (rate limit, timeout, 5xx): retry on the schedule.
    Retry(String),
    /// Retrying cannot help (bad credentials, invalid event): dead at once.
    Dead(String),
}

/// Reads the platform's answer: status and (at most 64 KiB of) body.
///
/// 2xx is delivered (TikTok: only when the body's `code` is 0); 408, 429 and
/// 5xx are retried; any other 4xx is dead with the platform's own message.
/// Reasons are at most 300 characters, and anything shaped like an access
/// token is replaced by `***`; [`classify_for`] also removes the
/// destination's own secret.
pub fn classify(kind: DestinationKind, status: u16, body: &[u8]) -> Verdict {
    let body = &body[..body.len().min(MAX_ANSWER_BODY)];
    match kind {
        DestinationKind::Ga4 => ga4::classify(status, body),
        DestinationKind::Meta => meta::classify(status, body),
        DestinationKind::TikTok => tiktok::classify(status, body),
        DestinationKind::Webhook => webhook::classify(status, body),
    }
}

/// [`classify`] for `dest`, with its secret scrubbed from the reason even
/// if the platform echoed it.
pub fn classify_for(dest: &Destination, status: u16, body: &[u8]) -> Verdict {
    let secret = match &dest.target {
        crate::domain::destination::DestinationTarget::Ga4 { api_secret, .. } => api_secret,
        crate::domain::destination::DestinationTarget::Meta { access_token, .. }
        | crate::domain::destination::DestinationTarget::TikTok { access_token, .. } => {
            access_token
        }
        crate::domain::destination::DestinationTarget::Webhook { secret, .. } => secret,
    };
    let scrub_secret = |reason: String| {
        if secret.expose().is_empty() {
            reason
        } else {
            reason.replace(secret.expose(), "***")
        }
    };
    match classify(dest.kind(), status, body) {
        Verdict::Delivered => Verdict::Delivered,
        Verdict::Retry(reason) => Verdict::Retry(scrub_secret(reason)),
        Verdict::Dead(reason) => Verdict::Dead(scrub_secret(reason)),
    }
}

/// The verdict every platform shares for a status, with `detail` (the
/// platform's message) after the status: 2xx delivered; 408, 429, 5xx retry;
/// other 4xx dead; anything else (1xx, 3xx) retry.
fn by_status(status: u16, detail: &str) -> Verdict {
    let reason = if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    };
    let reason = reason_text(&reason);
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry(reason),
        400..=499 => Verdict::Dead(reason),
        _ => Verdict::Retry(reason),
    }
}

/// A body as text for a reason: lossy UTF-8, control characters as spaces,
/// trimmed.
fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    text.trim().to_owned()
}

/// `text` scrubbed of token-shaped runs and cut to [`MAX_REASON_CHARS`].
fn reason_text(text: &str) -> String {
    shorten(&scrub_tokens(text), MAX_REASON_CHARS)
}

/// Replaces every run of 32 or more `[A-Za-z0-9_-]` characters by `***`:
/// access tokens (Meta's `EAA…`, TikTok's hex) are such runs, and no word of
/// an error message is.
fn scrub_tokens(text: &str) -> String {
    const MIN_TOKEN: usize = 32;
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= MIN_TOKEN {
            out.push_str("***");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_token_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// At most `max` characters of `text`, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max - 1).collect();
        short.push('…');
        short
    }
}

/// The exact decimal of `money` as a JSON number: built from its string
/// form, never through a float, so `0.1` stays `0.1` and 18 significant
/// digits survive.
fn money_json(money: Money) -> Box<RawValue> {
    RawValue::from_string(money.to_string())
        .expect("Money's Display is an optional minus, digits and an optional fraction")
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex SHA-256 of `text`: how Meta and TikTok expect an
/// `external_id` to be hashed.
fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// HMAC-SHA256 of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The JSON body of a request; serialising plain structs of strings,
/// numbers and raw numbers cannot fail.
fn json_body<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("request bodies are plain structs that always serialise")
}

/// `Content-Type: application/json`, the header every platform needs.
fn json_content_type() -> (String, String) {
    ("Content-Type".to_owned(), "application/json".to_owned())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A conversion every platform test starts from.

    use super::*;

    /// 2026-11-30T12:00:00Z, the tests' "now".
    pub const NOW: u64 = 1_796_040_000;

    /// An approved conversion made an hour ago, from a click two hours ago,
    /// with every click id captured.
    pub fn event() -> ConversionEvent<'static> {
        ConversionEvent {
            delivery_id: "conv-1:approved:ga4",
            conversion_id: "conv-1",
            click_id: "CLICK123",
            offer_id: "summer",
            aff_id: "aff_7",
            status: ConversionStatus::Approved,
            payout: Money::parse("1.5").expect("money"),
            revenue: Money::parse("12.345").expect("money"),
            amount: Some(Money::parse("99.99").expect("money")),
            currency: "EUR",
            subs: ["s1", "s2", "", "", "s5"],
            source: "fb",
            txid: "ORDER-9",
            goal: "sale",
            click_at: NOW - 7200,
            converted_at: NOW - 3600,
            status_at: NOW - 3600,
            gclid: "Cj0KCQ",
            fbclid: "IwAR0abc",
            ttclid: "E.C.P.tt",
            ga_client_id: "GA1.1.1234567890.1700000000",
        }
    }

    /// The body of a prepared request as JSON, and as raw text.
    pub fn sent(prepared: Prepared) -> (OutboundRequest, serde_json::Value, String) {
        let Prepared::Send(request) = prepared else {
            panic!("expected a request, got {prepared:?}");
        };
        let raw = String::from_utf8(request.body.clone().expect("a body")).expect("utf-8");
        let json = serde_json::from_str(&raw).expect("JSON body");
        (request, json, raw)
    }

    /// The value of header `name`, by case-insensitive name.
    pub fn header<'a>(request: &'a OutboundRequest, name: &str) -> Option<&'a str> {
        request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::domain::destination::DestinationSpec;

    fn destinations() -> Vec<Destination> {
        let specs: Vec<DestinationSpec> = serde_json::from_value(serde_json::json!([
            {"type":"ga4","measurement_id":"G-ABC1234","api_secret":"ga4-secret-value"},
            {"type":"meta","pixel_id":"1234567890","access_token":"EAAmetatokenvalue"},
            {"type":"tiktok","pixel_code":"C4ABCDEF","access_token":"tiktoktokenvalue"},
            {"type":"webhook","url":"https://hooks.example/cb","secret":"webhook-secret-value"}
        ]))
        .expect("specs");
        Destination::from_specs(specs, &[], false).expect("valid")
    }

    #[test]
    fn money_becomes_an_exact_json_number() {
        for (decimal, json) in [
            ("0.1", "0.1"),
            ("12.5", "12.5"),
            ("0", "0"),
            ("999999999999.999999", "999999999999.999999"),
        ] {
            let money = Money::parse(decimal).expect("money");

            assert_eq!(money_json(money).get(), json);
        }
    }

    #[test]
    fn the_dedupe_key_is_the_txid_or_else_the_conversion_id() {
        let with_txid = event();
        let without = ConversionEvent {
            txid: "",
            ..event()
        };

        assert_eq!(with_txid.dedupe_key(), "ORDER-9");
        assert_eq!(without.dedupe_key(), "conv-1");
    }

    #[test]
    fn no_prepared_request_shows_a_secret_in_its_debug_output() {
        for dest in destinations() {
            let prepared = prepare(&dest, &event(), &Endpoints::default(), b"key", NOW);

            let text = format!("{prepared:?}");

            for secret in [
                "ga4-secret-value",
                "EAAmetatokenvalue",
                "tiktoktokenvalue",
                "webhook-secret-value",
            ] {
                assert!(!text.contains(secret), "{text}");
            }
            assert!(matches!(prepared, Prepared::Send(_)), "{text}");
        }
    }

    #[test]
    fn redacting_a_query_keeps_names_and_hides_values() {
        assert_eq!(
            redact_query("https://x.example/mp/collect?measurement_id=G-1&api_secret=abc#f"),
            "https://x.example/mp/collect?measurement_id=***&api_secret=***#…"
        );
        assert_eq!(redact_query("https://x.example/a"), "https://x.example/a");
    }

    #[test]
    fn a_status_the_destination_does_not_fire_for_is_skipped() {
        let dest = &destinations()[0];
        let pending = ConversionEvent {
            status: ConversionStatus::Pending,
            ..event()
        };

        let prepared = prepare(dest, &pending, &Endpoints::default(), b"key", NOW);

        assert_eq!(
            prepared,
            Prepared::Skip("destination ga4 does not fire for pending conversions".into())
        );
    }

    #[test]
    fn the_status_table_every_platform_shares() {
        for (status, expected) in [
            (200, "delivered"),
            (204, "delivered"),
            (302, "retry"),
            (400, "dead"),
            (401, "dead"),
            (403, "dead"),
            (404, "dead"),
            (408, "retry"),
            (413, "dead"),
            (429, "retry"),
            (500, "retry"),
            (502, "retry"),
            (503, "retry"),
        ] {
            for kind in [DestinationKind::Ga4, DestinationKind::Webhook] {
                let verdict = match classify(kind, status, b"") {
                    Verdict::Delivered => "delivered",
                    Verdict::Retry(_) => "retry",
                    Verdict::Dead(_) => "dead",
                };
                assert_eq!(verdict, expected, "{kind:?} {status}");
            }
        }
    }

    #[test]
    fn reasons_are_short_and_token_free() {
        let token = format!("EAA{}", "x".repeat(180));
        let body = format!(
            "{{\"error\":\"bad token {token} {}\"}}",
            "blah ".repeat(200)
        );

        let verdict = classify(DestinationKind::Webhook, 400, body.as_bytes());

        let Verdict::Dead(reason) = verdict else {
            panic!("expected dead, got {verdict:?}");
        };
        assert!(reason.chars().count() <= 300, "{reason}");
        assert!(!reason.contains(&token), "{reason}");
        assert!(reason.contains("***"), "{reason}");
    }

    #[test]
    fn classify_for_scrubs_the_destinations_own_secret_even_when_short() {
        let dest = &destinations()[3];

        let verdict = classify_for(dest, 401, b"unknown key webhook-secret-value");

        assert_eq!(
            verdict,
            Verdict::Dead("HTTP 401: unknown key ***".to_owned())
        );
    }
}
