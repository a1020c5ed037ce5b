//! Google Analytics 4, Measurement Protocol.
//!
//! `POST {endpoint}?measurement_id=…&api_secret=…` with a JSON body of one
//! event, as documented at
//! <https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events>:
//!
//! ```json
//! {"client_id":"1234567890.1700000000","timestamp_micros":1796036400000000,
//!  "events":[{"name":"purchase","params":{"transaction_id":"ORDER-9","value":12.345,"currency":"EUR"}}]}
//! ```
//!
//! - `purchase` for approved and pending conversions (or the destination's
//!   `event_name`), `refund` with the same `transaction_id` for a rejected
//!   one (<https://developers.google.com/analytics/devguides/collection/ga4/reference/events>);
//!   GA4 counts a `transaction_id` once, so a pending and then approved
//!   conversion is one purchase.
//! - `client_id`: the GA client id captured on the click (the raw `_ga`
//!   cookie `GA1.1.123.456` is read as `123.456`); without one, a
//!   pseudonymous id derived from the click id with HMAC-SHA256 under
//!   clickback's key, shaped like a GA client id. Never derived from an IP.
//! - `timestamp_micros`: when the conversion happened (the rejection, for a
//!   refund), only within the 72 hours GA4 accepts backdated events;
//!   older, it is left out and GA4 uses the time of receipt.
//!
//! `/mp/collect` answers 2xx even for a malformed event (it does not validate;
//! <https://developers.google.com/analytics/devguides/collection/protocol/ga4/validating-events>),
//! so a 2xx only says the request arrived.

use serde::Serialize;
use serde_json::value::RawValue;

use super::{
    body_text, by_status, hmac_sha256, json_body, json_content_type, money_json, ConversionEvent,
    OutboundRequest, Prepared, Verdict,
};
use crate::domain::conversion::ConversionStatus;

/// How far back GA4 accepts `timestamp_micros`: 72 hours (sending-events).
pub const MAX_BACKDATE_SECS: u64 = 72 * 3600;

/// A GA4 destination's settings, borrowed from the destination.
pub struct Ga4Target<'a> {
    /// The web stream's measurement id.
    pub measurement_id: &'a str,
    /// The Measurement Protocol API secret.
    pub api_secret: &'a str,
    /// Replaces `purchase` (never `refund`).
    pub event_name: Option<&'a str>,
}

#[derive(Serialize)]
struct Body<'a> {
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_micros: Option<u64>,
    events: [Event<'a>; 1],
}

#[derive(Serialize)]
struct Event<'a> {
    name: &'a str,
    params: Params<'a>,
}

#[derive(Serialize)]
struct Params<'a> {
    transaction_id: &'a str,
    value: Box<RawValue>,
    currency: &'a str,
}

/// The request for `event`; see the module docs for its shape.
pub fn prepare(
    target: &Ga4Target<'_>,
    event: &ConversionEvent<'_>,
    endpoint: &str,
    pseudonym_key: &[u8],
    now_secs: u64,
) -> Prepared {
    let Ok(mut url) = url::Url::parse(endpoint) else {
        return Prepared::Dead("the GA4 endpoint is not a valid URL".to_owned());
    };
    url.query_pairs_mut()
        .append_pair("measurement_id", target.measurement_id)
        .append_pair("api_secret", target.api_secret);

    let (name, happened_at) = match event.status {
        ConversionStatus::Rejected => ("refund", event.status_at),
        ConversionStatus::Approved | ConversionStatus::Pending => {
            (target.event_name.unwrap_or("purchase"), event.converted_at)
        }
    };
    let backdate_ok = happened_at <= now_secs && now_secs - happened_at <= MAX_BACKDATE_SECS;
    let body = Body {
        client_id: client_id(event.ga_client_id, event.click_id, pseudonym_key),
        timestamp_micros: backdate_ok.then(|| happened_at.saturating_mul(1_000_000)),
        events: [Event {
            name,
            params: Params {
                transaction_id: event.dedupe_key(),
                value: money_json(event.value()),
                currency: event.currency,
            },
        }],
    };
    Prepared::Send(OutboundRequest {
        method: reqwest::Method::POST,
        url: url.into(),
        headers: vec![json_content_type()],
        body: Some(json_body(&body)),
        idempotency_key: event.delivery_id.to_owned(),
    })
}

/// The captured client id in GA's `<digits>.<digits>` form (from a bare id
/// or a `_ga` cookie `GA1.<n>.<digits>.<digits>`), else the pseudonym of
/// `click_id`.
pub fn client_id(captured: &str, click_id: &str, pseudonym_key: &[u8]) -> String {
    captured_client_id(captured)
        .map(str::to_owned)
        .unwrap_or_else(|| pseudonymous_client_id(click_id, pseudonym_key))
}

fn captured_client_id(raw: &str) -> Option<&str> {
    let id = match raw.strip_prefix("GA") {
        // GA1.1.123.456: version, domain depth, then the id.
        Some(rest) => rest.splitn(3, '.').nth(2)?,
        None => raw,
    };
    let (a, b) = id.split_once('.')?;
    let digits = |s: &str| (1..=20).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit());
    (digits(a) && digits(b)).then_some(id)
}

/// `<u32>.<u32>` from HMAC-SHA256(key, "ga4:" + click id): stable for a
/// click, so every conversion of one click is one GA user, and not
/// reversible to the click id without clickback's key.
pub fn pseudonymous_client_id(click_id: &str, pseudonym_key: &[u8]) -> String {
    let mac = hmac_sha256(pseudonym_key, format!("ga4:{click_id}").as_bytes());
    let a = u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let b = u32::from_be_bytes([mac[4], mac[5], mac[6], mac[7]]);
    format!("{a}.{b}")
}

/// GA4 answers 2xx for anything it received, valid or not; other statuses
/// follow the shared table, with the body's text as the reason.
pub fn classify(status: u16, body: &[u8]) -> Verdict {
    by_status(status, &body_text(body))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn target() -> Ga4Target<'static> {
        Ga4Target {
            measurement_id: "G-ABC1234",
            api_secret: "s3cr3t/+=",
            event_name: None,
        }
    }

    fn prepared(event: &ConversionEvent<'_>) -> (OutboundRequest, serde_json::Value, String) {
        sent(prepare(
            &target(),
            event,
            "https://www.google-analytics.com/mp/collect",
            b"pseudonym-key",
            NOW,
        ))
    }

    // sending-events: POST /mp/collect, measurement_id and api_secret in the
    // query, JSON body with client_id and events.
    #[test]
    fn a_purchase_is_posted_to_mp_collect_with_the_credentials_in_the_query() {
        let (request, body, _) = prepared(&event());

        assert_eq!(request.method, reqwest::Method::POST);
        assert_eq!(
            request.url,
            "https://www.google-analytics.com/mp/collect?measurement_id=G-ABC1234&api_secret=s3cr3t%2F%2B%3D"
        );
        assert_eq!(header(&request, "content-type"), Some("application/json"));
        assert_eq!(
            body,
            serde_json::json!({
                "client_id": "1234567890.1700000000",
                "timestamp_micros": (NOW - 3600) * 1_000_000,
                "events": [{"name": "purchase", "params": {
                    "transaction_id": "ORDER-9", "value": 99.99, "currency": "EUR"}}]
            })
        );
        assert_eq!(request.idempotency_key, "conv-1:approved:ga4");
    }

    // reference/events#purchase: value is a number; transaction_id dedupes.
    #[test]
    fn the_value_is_an_exact_number_and_the_transaction_falls_back_to_the_conversion_id() {
        let event = ConversionEvent {
            txid: "",
            amount: None,
            revenue: crate::domain::Money::parse("999999999999.999999").expect("money"),
            ..event()
        };

        let (_, body, raw) = prepared(&event);

        assert!(raw.contains("\"value\":999999999999.999999"), "{raw}");
        assert_eq!(body["events"][0]["params"]["transaction_id"], "conv-1");
    }

    // reference/events#refund: same transaction_id as the purchase.
    #[test]
    fn a_rejected_conversion_is_a_refund_of_the_same_transaction_at_its_rejection_time() {
        let rejected = ConversionEvent {
            status: ConversionStatus::Rejected,
            status_at: NOW - 60,
            ..event()
        };

        let (_, body, _) = prepared(&rejected);

        assert_eq!(body["events"][0]["name"], "refund");
        assert_eq!(body["events"][0]["params"]["transaction_id"], "ORDER-9");
        assert_eq!(body["timestamp_micros"], (NOW - 60) * 1_000_000);
    }

    #[test]
    fn a_custom_event_name_replaces_purchase_but_not_refund() {
        let custom = Ga4Target {
            event_name: Some("affiliate_sale"),
            ..target()
        };
        let endpoint = "https://www.google-analytics.com/mp/collect";
        let rejected = ConversionEvent {
            status: ConversionStatus::Rejected,
            ..event()
        };

        let (_, approved, _) = sent(prepare(&custom, &event(), endpoint, b"k", NOW));
        let (_, refund, _) = sent(prepare(&custom, &rejected, endpoint, b"k", NOW));

        assert_eq!(approved["events"][0]["name"], "affiliate_sale");
        assert_eq!(refund["events"][0]["name"], "refund");
    }

    // sending-events: events may be backdated up to 72 hours.
    #[test]
    fn the_timestamp_is_left_out_beyond_the_72_hour_backdating_limit() {
        let at_limit = ConversionEvent {
            converted_at: NOW - MAX_BACKDATE_SECS,
            ..event()
        };
        let too_old = ConversionEvent {
            converted_at: NOW - MAX_BACKDATE_SECS - 1,
            ..event()
        };
        let future = ConversionEvent {
            converted_at: NOW + 5,
            ..event()
        };

        let (_, at_limit, _) = prepared(&at_limit);
        let (_, too_old, _) = prepared(&too_old);
        let (_, future, _) = prepared(&future);

        assert_eq!(
            at_limit["timestamp_micros"],
            (NOW - MAX_BACKDATE_SECS) * 1_000_000
        );
        assert!(too_old.get("timestamp_micros").is_none(), "{too_old}");
        assert!(future.get("timestamp_micros").is_none(), "{future}");
    }

    #[test]
    fn captured_client_ids_are_read_in_both_forms() {
        for (captured, expected) in [
            ("GA1.1.1234567890.1700000000", "1234567890.1700000000"),
            ("GA1.2.42.7", "42.7"),
            ("1234567890.1700000000", "1234567890.1700000000"),
        ] {
            assert_eq!(client_id(captured, "C", b"k"), expected, "{captured}");
        }
    }

    #[test]
    fn without_a_usable_client_id_a_keyed_pseudonym_of_the_click_is_used() {
        let pseudonym = client_id("", "CLICK123", b"key-1");

        for unusable in ["", "GA1.1.abc.def", "123", "1.2.3", "GA1.1.123", "12 3.4"] {
            assert_eq!(
                client_id(unusable, "CLICK123", b"key-1"),
                pseudonym,
                "{unusable}"
            );
        }
        let (a, b) = pseudonym.split_once('.').expect("two parts");
        assert!(
            a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok(),
            "{pseudonym}"
        );
        assert_ne!(client_id("", "CLICK124", b"key-1"), pseudonym);
        assert_ne!(client_id("", "CLICK123", b"key-2"), pseudonym);
        assert!(!pseudonym.contains("CLICK123"));
    }

    // validating-events: /mp/collect answers 2xx even for malformed events.
    #[test]
    fn any_2xx_is_delivered_and_errors_follow_the_status_table() {
        assert_eq!(classify(204, b""), Verdict::Delivered);
        assert_eq!(
            classify(200, b"{\"validationMessages\":[]}"),
            Verdict::Delivered
        );
        assert_eq!(
            classify(400, b"bad request\n"),
            Verdict::Dead("HTTP 400: bad request".into())
        );
        assert_eq!(classify(503, b""), Verdict::Retry("HTTP 503".into()));
    }
}
