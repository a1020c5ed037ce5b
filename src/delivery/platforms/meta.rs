//! Meta Conversions API.
//!
//! `POST {endpoint}/v25.0/{pixel_id}/events` with a JSON body, as documented at
//! <https://developers.facebook.com/docs/marketing-api/conversions-api/parameters>
//! and its pages on server events
//! (<https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/server-event>)
//! and customer information
//! (<https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters>):
//!
//! ```json
//! {"data":[{"event_name":"Purchase","event_time":1796036400,"event_id":"ORDER-9",
//!   "action_source":"other",
//!   "user_data":{"fbc":"fb.1.1796032800000.IwAR0abc","external_id":["<sha256 of the click id>"]},
//!   "custom_data":{"value":12.345,"currency":"EUR","order_id":"ORDER-9"}}],
//!  "access_token":"…","test_event_code":"TEST123"}
//! ```
//!
//! Choices, and why:
//! - **Token in the body**, not the query: Meta takes `access_token` in
//!   either, and a body stays out of URL logs of every proxy on the way.
//! - **`action_source: "other"`**: website events must carry
//!   `client_user_agent` and `event_source_url`, which clickback never
//!   stores; non-web events require only `action_source`. The conversion is
//!   reported by the advertiser's server, not seen in a browser, and
//!   `system_generated` means automatic events such as subscription renewals,
//!   so `other` is the accurate source.
//! - **`user_data`**: `fbc` = `fb.1.<click time in ms>.<fbclid>` when the
//!   click carried an `fbclid`; always `external_id` = SHA-256 (hex) of the
//!   click id, the hashing Meta recommends. Meta needs at least one
//!   identifier in `user_data`, and `external_id` qualifies; a landing page
//!   that passes clickback's click id to the Pixel as `external_id` lets Meta
//!   join both sides. No IP address, user agent, email or phone is ever sent.
//! - **`event_id` and `order_id`** = the txid, else the conversion id: what a
//!   Pixel on the thank-you page would use as `eventID`, so Meta counts the
//!   order once (it dedupes on event name + event id within 48 hours).
//! - `Purchase` for approved and pending (or the destination's
//!   `event_name`); a rejected conversion is skipped: the Conversions API has
//!   no refund event.
//! - `event_time` may be at most 7 days old, or Meta refuses the whole
//!   request: an older conversion is dead at once, without a request.

use serde::Serialize;
use serde_json::value::RawValue;

use super::{
    body_text, by_status, json_body, json_content_type, money_json, reason_text, sha256_hex,
    ConversionEvent, OutboundRequest, Prepared, Verdict,
};
use crate::domain::conversion::ConversionStatus;

/// The Graph API version called; Meta supports each for about two years.
pub const GRAPH_VERSION: &str = "v25.0";

/// The oldest `event_time` Meta accepts: 7 days (server-event parameters).
pub const MAX_EVENT_AGE_SECS: u64 = 7 * 86_400;

/// Error codes Meta documents as passing: unknown error, service
/// unavailable, and the application, user, page and custom rate limits.
const TRANSIENT_CODES: &[i64] = &[1, 2, 4, 17, 32, 341, 613];

/// A Meta destination's settings, borrowed from the destination.
pub struct MetaTarget<'a> {
    /// The pixel (dataset) id.
    pub pixel_id: &'a str,
    /// The Conversions API access token.
    pub access_token: &'a str,
    /// Routes the event to the Test Events tab.
    pub test_event_code: Option<&'a str>,
    /// Replaces `Purchase`.
    pub event_name: Option<&'a str>,
}

#[derive(Serialize)]
struct Body<'a> {
    data: [Event<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    test_event_code: Option<&'a str>,
    access_token: &'a str,
}

#[derive(Serialize)]
struct Event<'a> {
    event_name: &'a str,
    event_time: u64,
    event_id: &'a str,
    action_source: &'a str,
    user_data: UserData,
    custom_data: CustomData<'a>,
}

#[derive(Serialize)]
struct UserData {
    #[serde(skip_serializing_if = "Option::is_none")]
    fbc: Option<String>,
    external_id: [String; 1],
}

#[derive(Serialize)]
struct CustomData<'a> {
    value: Box<RawValue>,
    currency: &'a str,
    order_id: &'a str,
}

/// The request for `event`; see the module docs for its shape.
pub fn prepare(
    target: &MetaTarget<'_>,
    event: &ConversionEvent<'_>,
    endpoint: &str,
    now_secs: u64,
) -> Prepared {
    if event.status == ConversionStatus::Rejected {
        return Prepared::Skip(
            "Meta's Conversions API has no refund event: a rejected conversion is not sent"
                .to_owned(),
        );
    }
    if now_secs.saturating_sub(event.converted_at) > MAX_EVENT_AGE_SECS {
        return Prepared::Dead(
            "the conversion is older than 7 days, the oldest event_time Meta accepts".to_owned(),
        );
    }
    let fbc = (!event.fbclid.is_empty()).then(|| {
        format!(
            "fb.1.{}.{}",
            event.click_at.saturating_mul(1000),
            event.fbclid
        )
    });
    let body = Body {
        data: [Event {
            event_name: target.event_name.unwrap_or("Purchase"),
            // A clock a little ahead elsewhere must not date the event in
            // the future, which Meta refuses.
            event_time: event.converted_at.min(now_secs),
            event_id: event.dedupe_key(),
            action_source: "other",
            user_data: UserData {
                fbc,
                external_id: [sha256_hex(event.click_id)],
            },
            custom_data: CustomData {
                value: money_json(event.value()),
                currency: event.currency,
                order_id: event.dedupe_key(),
            },
        }],
        test_event_code: target.test_event_code,
        access_token: target.access_token,
    };
    Prepared::Send(OutboundRequest {
        method: reqwest::Method::POST,
        url: format!(
            "{}/{GRAPH_VERSION}/{}/events",
            endpoint.trim_end_matches('/'),
            target.pixel_id
        ),
        headers: vec![json_content_type()],
        body: Some(json_body(&body)),
        idempotency_key: event.delivery_id.to_owned(),
    })
}

/// Meta's error body: `{"error":{"message","code","error_subcode","is_transient"}}`.
#[derive(serde::Deserialize)]
struct ErrorBody {
    error: GraphError,
}

#[derive(serde::Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    is_transient: bool,
}

/// 2xx is delivered; a Graph error is retried when Meta marks it transient
/// or its code is a rate limit or outage (these come as 4xx too), dead
/// otherwise; other answers follow the shared table.
pub fn classify(status: u16, body: &[u8]) -> Verdict {
    if (200..300).contains(&status) {
        return Verdict::Delivered;
    }
    let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) else {
        return by_status(status, &body_text(body));
    };
    let mut detail = error.message.clone();
    if let Some(code) = error.code {
        detail.push_str(&format!(" (code {code}"));
        if let Some(sub) = error.error_subcode {
            detail.push_str(&format!(", subcode {sub}"));
        }
        detail.push(')');
    }
    let transient = error.is_transient || error.code.is_some_and(|c| TRANSIENT_CODES.contains(&c));
    if transient {
        Verdict::Retry(reason_text(&format!("HTTP {status}: {detail}")))
    } else {
        by_status(status, &detail)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn target() -> MetaTarget<'static> {
        MetaTarget {
            pixel_id: "1234567890",
            access_token: "EAAtoken",
            test_event_code: Some("TEST123"),
            event_name: None,
        }
    }

    fn prepared(event: &ConversionEvent<'_>) -> Prepared {
        prepare(&target(), event, "https://graph.facebook.com/", NOW)
    }

    // parameters/server-event: event_name, event_time (seconds), event_id,
    // action_source, user_data required; custom_data value + currency.
    #[test]
    fn a_purchase_is_posted_to_the_pixels_events_edge_with_every_required_field() {
        let (request, body, _) = sent(prepared(&event()));

        assert_eq!(request.method, reqwest::Method::POST);
        assert_eq!(
            request.url,
            "https://graph.facebook.com/v25.0/1234567890/events"
        );
        assert_eq!(header(&request, "content-type"), Some("application/json"));
        assert_eq!(
            body,
            serde_json::json!({
                "data": [{
                    "event_name": "Purchase",
                    "event_time": NOW - 3600,
                    "event_id": "ORDER-9",
                    "action_source": "other",
                    "user_data": {
                        "fbc": format!("fb.1.{}.IwAR0abc", (NOW - 7200) * 1000),
                        "external_id": [sha256_hex("CLICK123")],
                    },
                    "custom_data": {"value": 99.99, "currency": "EUR", "order_id": "ORDER-9"},
                }],
                "test_event_code": "TEST123",
                "access_token": "EAAtoken",
            })
        );
        assert!(!request.url.contains("EAAtoken"));
    }

    // customer-information-parameters: fbc only with a click id; external_id
    // hashed with SHA-256; nothing we do not have (no IP, UA, email, phone).
    #[test]
    fn without_an_fbclid_user_data_carries_only_the_hashed_click_id() {
        let event = ConversionEvent {
            fbclid: "",
            ..event()
        };

        let (_, body, _) = sent(prepared(&event));

        let user_data = &body["data"][0]["user_data"];
        assert_eq!(
            user_data,
            &serde_json::json!({"external_id": [sha256_hex("CLICK123")]})
        );
        assert_eq!(
            sha256_hex("CLICK123").len(),
            64,
            "lowercase hex SHA-256 as Meta expects"
        );
    }

    #[test]
    fn the_event_id_falls_back_to_the_conversion_id_and_the_test_code_is_optional() {
        let event = ConversionEvent {
            txid: "",
            ..event()
        };
        let no_test = MetaTarget {
            test_event_code: None,
            event_name: Some("Lead"),
            ..target()
        };

        let (_, body, _) = sent(prepare(&no_test, &event, "https://graph.facebook.com", NOW));

        assert_eq!(body["data"][0]["event_id"], "conv-1");
        assert_eq!(body["data"][0]["custom_data"]["order_id"], "conv-1");
        assert_eq!(body["data"][0]["event_name"], "Lead");
        assert!(body.get("test_event_code").is_none(), "{body}");
    }

    // parameters/server-event: event_time up to 7 days in the past.
    #[test]
    fn a_conversion_older_than_7_days_is_dead_without_a_request() {
        let at_limit = ConversionEvent {
            converted_at: NOW - MAX_EVENT_AGE_SECS,
            ..event()
        };
        let too_old = ConversionEvent {
            converted_at: NOW - MAX_EVENT_AGE_SECS - 1,
            ..event()
        };

        assert!(matches!(prepared(&at_limit), Prepared::Send(_)));
        let Prepared::Dead(reason) = prepared(&too_old) else {
            panic!("expected dead");
        };
        assert!(reason.contains("older than 7 days"), "{reason}");
    }

    #[test]
    fn a_rejected_conversion_is_skipped_and_a_future_time_is_clamped_to_now() {
        let rejected = ConversionEvent {
            status: ConversionStatus::Rejected,
            ..event()
        };
        let ahead = ConversionEvent {
            converted_at: NOW + 30,
            ..event()
        };

        let (_, body, _) = sent(prepared(&ahead));

        assert!(matches!(prepared(&rejected), Prepared::Skip(_)));
        assert_eq!(body["data"][0]["event_time"], NOW);
    }

    #[test]
    fn graph_errors_are_dead_or_retried_by_their_code() {
        let invalid_token = br#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190,"fbtrace_id":"A1"}}"#;
        let bad_param = br#"{"error":{"message":"Invalid parameter","code":100,"error_subcode":2804003,"is_transient":false}}"#;
        let rate_limit = br#"{"error":{"message":"Application request limit reached","code":4,"is_transient":true}}"#;
        let user_limit = br#"{"error":{"message":"User request limit reached","code":17}}"#;

        assert_eq!(
            classify(200, br#"{"events_received":1}"#),
            Verdict::Delivered
        );
        assert_eq!(
            classify(400, invalid_token),
            Verdict::Dead("HTTP 400: Invalid OAuth access token. (code 190)".into())
        );
        assert_eq!(
            classify(400, bad_param),
            Verdict::Dead("HTTP 400: Invalid parameter (code 100, subcode 2804003)".into())
        );
        assert_eq!(
            classify(400, rate_limit),
            Verdict::Retry("HTTP 400: Application request limit reached (code 4)".into())
        );
        assert!(matches!(classify(403, user_limit), Verdict::Retry(_)));
        assert!(matches!(
            classify(500, b"<html>oops</html>"),
            Verdict::Retry(_)
        ));
        assert!(matches!(classify(429, b""), Verdict::Retry(_)));
    }

    #[test]
    fn an_echoed_access_token_never_reaches_the_reason() {
        let token = format!("EAAB{}", "Zx9".repeat(60));
        let body =
            format!(r#"{{"error":{{"message":"Malformed access token {token}","code":190}}}}"#);

        let verdict = classify(400, body.as_bytes());

        let Verdict::Dead(reason) = verdict else {
            panic!("expected dead, got {verdict:?}");
        };
        assert!(!reason.contains(&token), "{reason}");
        assert!(
            reason.starts_with("HTTP 400: Malformed access token ***"),
            "{reason}"
        );
    }
}
