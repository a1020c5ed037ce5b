//! TikTok Events API (2.0, for web events).
//!
//! `POST {endpoint}/open_api/v1.3/event/track/` with the pixel's token in the
//! `Access-Token` header and a JSON body, as documented at
//! <https://business-api.tiktok.com/portal/docs?id=1771100865818625>:
//!
//! ```json
//! {"event_source":"web","event_source_id":"C4ABCDEF",
//!  "data":[{"event":"Purchase","event_time":1796036400,"event_id":"ORDER-9",
//!    "user":{"ttclid":"E.C.P.tt","external_id":"<sha256 of the click id>"},
//!    "properties":{"value":12.345,"currency":"EUR","order_id":"ORDER-9"}}],
//!  "test_event_code":"TEST123"}
//! ```
//!
//! - `Purchase` is TikTok's standard event for a completed purchase; it
//!   replaced `CompletePayment` in the standard event list
//!   (<https://ads.tiktok.com/help/article/supported-standard-events>). A
//!   destination's `event_name` (e.g. `CompletePayment` for an older setup)
//!   replaces it. A rejected conversion is skipped: there is no refund event.
//! - `user`: the `ttclid` captured on the click, and `external_id` =
//!   SHA-256 (hex) of the click id, as TikTok expects it hashed. Never an IP
//!   address, user agent, email or phone.
//! - `event_id` and `order_id` = the txid, else the conversion id, the key
//!   a Pixel on the thank-you page would use, so TikTok counts the order once.
//!
//! TikTok answers HTTP 200 with `{"code":<non-zero>,"message":…}` on errors,
//! so the body's `code` decides: 0 is delivered; 40100 (too many requests)
//! and 5xxxx (TikTok's system errors) are retried; other 4xxxx codes
//! (authentication, permission, invalid parameter) are dead with TikTok's
//! message; an unknown code is retried, bounded by the retry schedule.

use serde::Serialize;
use serde_json::value::RawValue;

use super::{
    body_text, by_status, json_body, json_content_type, money_json, reason_text, sha256_hex,
    ConversionEvent, OutboundRequest, Prepared, Verdict,
};
use crate::domain::conversion::ConversionStatus;

/// TikTok's code for "too many requests" (QPS/QPM/QPD limits).
pub const RATE_LIMIT_CODE: i64 = 40100;

/// A TikTok destination's settings, borrowed from the destination.
pub struct TikTokTarget<'a> {
    /// The pixel code.
    pub pixel_code: &'a str,
    /// The Events API access token.
    pub access_token: &'a str,
    /// Routes the event to the Test Events tab.
    pub test_event_code: Option<&'a str>,
    /// Replaces `Purchase`.
    pub event_name: Option<&'a str>,
}

#[derive(Serialize)]
struct Body<'a> {
    event_source: &'a str,
    event_source_id: &'a str,
    data: [Event<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    test_event_code: Option<&'a str>,
}

#[derive(Serialize)]
struct Event<'a> {
    event: &'a str,
    event_time: u64,
    event_id: &'a str,
    user: User<'a>,
    properties: Properties<'a>,
}

#[derive(Serialize)]
struct User<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    ttclid: &'a str,
    external_id: String,
}

#[derive(Serialize)]
struct Properties<'a> {
    value: Box<RawValue>,
    currency: &'a str,
    order_id: &'a str,
}

/// The request for `event`; see the module docs for its shape.
pub fn prepare(
    target: &TikTokTarget<'_>,
    event: &ConversionEvent<'_>,
    endpoint: &str,
    now_secs: u64,
) -> Prepared {
    if event.status == ConversionStatus::Rejected {
        return Prepared::Skip(
            "TikTok's Events API has no refund event: a rejected conversion is not sent".to_owned(),
        );
    }
    let body = Body {
        event_source: "web",
        event_source_id: target.pixel_code,
        data: [Event {
            event: target.event_name.unwrap_or("Purchase"),
            event_time: event.converted_at.min(now_secs),
            event_id: event.dedupe_key(),
            user: User {
                ttclid: event.ttclid,
                external_id: sha256_hex(event.click_id),
            },
            properties: Properties {
                value: money_json(event.value()),
                currency: event.currency,
                order_id: event.dedupe_key(),
            },
        }],
        test_event_code: target.test_event_code,
    };
    Prepared::Send(OutboundRequest {
        method: reqwest::Method::POST,
        url: format!(
            "{}/open_api/v1.3/event/track/",
            endpoint.trim_end_matches('/')
        ),
        headers: vec![
            json_content_type(),
            ("Access-Token".to_owned(), target.access_token.to_owned()),
        ],
        body: Some(json_body(&body)),
        idempotency_key: event.delivery_id.to_owned(),
    })
}

#[derive(serde::Deserialize)]
struct Answer {
    code: i64,
    #[serde(default)]
    message: String,
}

/// Reads the body's `code` on a 2xx (see the module docs); other statuses
/// follow the shared table with TikTok's `message` as the reason.
pub fn classify(status: u16, body: &[u8]) -> Verdict {
    let answer = serde_json::from_slice::<Answer>(body).ok();
    if !(200..300).contains(&status) {
        let detail = match &answer {
            Some(a) => format!("{} (code {})", a.message, a.code),
            None => body_text(body),
        };
        return by_status(status, &detail);
    }
    let Some(Answer { code, message }) = answer else {
        return Verdict::Retry(reason_text(&format!(
            "HTTP {status} without TikTok's JSON answer: {}",
            body_text(body)
        )));
    };
    let reason = || reason_text(&format!("TikTok code {code}: {message}"));
    match code {
        0 => Verdict::Delivered,
        RATE_LIMIT_CODE | 50_000..=59_999 => Verdict::Retry(reason()),
        40_000..=49_999 => Verdict::Dead(reason()),
        _ => Verdict::Retry(reason()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn target() -> TikTokTarget<'static> {
        TikTokTarget {
            pixel_code: "C4ABCDEF",
            access_token: "tt-token",
            test_event_code: Some("TEST123"),
            event_name: None,
        }
    }

    fn prepared(event: &ConversionEvent<'_>) -> Prepared {
        prepare(&target(), event, "https://business-api.tiktok.com", NOW)
    }

    // Events API 2.0 (web): event_source "web", event_source_id = pixel code,
    // Access-Token header, data[] with event, event_time, event_id, user,
    // properties.
    #[test]
    fn a_purchase_is_posted_to_event_track_with_the_token_in_a_header() {
        let (request, body, _) = sent(prepared(&event()));

        assert_eq!(request.method, reqwest::Method::POST);
        assert_eq!(
            request.url,
            "https://business-api.tiktok.com/open_api/v1.3/event/track/"
        );
        assert_eq!(header(&request, "access-token"), Some("tt-token"));
        assert_eq!(header(&request, "content-type"), Some("application/json"));
        assert_eq!(
            body,
            serde_json::json!({
                "event_source": "web",
                "event_source_id": "C4ABCDEF",
                "data": [{
                    "event": "Purchase",
                    "event_time": NOW - 3600,
                    "event_id": "ORDER-9",
                    "user": {"ttclid": "E.C.P.tt", "external_id": sha256_hex("CLICK123")},
                    "properties": {"value": 99.99, "currency": "EUR", "order_id": "ORDER-9"},
                }],
                "test_event_code": "TEST123",
            })
        );
        let raw = String::from_utf8(request.body.clone().expect("body")).expect("utf-8");
        assert!(
            !raw.contains("tt-token"),
            "the token travels only in its header"
        );
    }

    #[test]
    fn without_a_ttclid_only_the_hashed_click_id_identifies_the_user() {
        let event = ConversionEvent {
            ttclid: "",
            txid: "",
            ..event()
        };
        let custom = TikTokTarget {
            event_name: Some("CompletePayment"),
            test_event_code: None,
            ..target()
        };

        let (_, body, _) = sent(prepare(
            &custom,
            &event,
            "https://business-api.tiktok.com/",
            NOW,
        ));

        assert_eq!(
            body["data"][0]["user"],
            serde_json::json!({"external_id": sha256_hex("CLICK123")})
        );
        assert_eq!(body["data"][0]["event"], "CompletePayment");
        assert_eq!(body["data"][0]["event_id"], "conv-1");
        assert!(body.get("test_event_code").is_none(), "{body}");
    }

    #[test]
    fn a_rejected_conversion_is_skipped() {
        let rejected = ConversionEvent {
            status: ConversionStatus::Rejected,
            ..event()
        };

        assert!(matches!(prepared(&rejected), Prepared::Skip(_)));
    }

    // TikTok answers 200 with a non-zero code on errors.
    #[test]
    fn a_200_is_classified_by_the_code_in_its_body() {
        let table: &[(&[u8], &str)] = &[
            (br#"{"code":0,"message":"OK","data":{}}"#, "delivered"),
            (br#"{"code":40001,"message":"No permission"}"#, "dead"),
            (br#"{"code":40002,"message":"Invalid parameter"}"#, "dead"),
            (
                br#"{"code":40105,"message":"Access token is incorrect or has been revoked"}"#,
                "dead",
            ),
            (br#"{"code":40100,"message":"Too many requests"}"#, "retry"),
            (br#"{"code":50000,"message":"System error"}"#, "retry"),
            (br#"{"code":51234,"message":"Internal"}"#, "retry"),
            (br#"{"code":7,"message":"?"}"#, "retry"),
            (b"<html>gateway</html>", "retry"),
        ];
        for (body, expected) in table {
            let verdict = match classify(200, body) {
                Verdict::Delivered => "delivered",
                Verdict::Retry(_) => "retry",
                Verdict::Dead(_) => "dead",
            };
            assert_eq!(verdict, *expected, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(
            classify(
                200,
                br#"{"code":40105,"message":"Access token is incorrect or has been revoked"}"#
            ),
            Verdict::Dead(
                "TikTok code 40105: Access token is incorrect or has been revoked".into()
            )
        );
    }

    #[test]
    fn other_statuses_follow_the_shared_table_with_tiktoks_message() {
        assert_eq!(
            classify(400, br#"{"code":40002,"message":"bad"}"#),
            Verdict::Dead("HTTP 400: bad (code 40002)".into())
        );
        assert!(matches!(classify(503, b""), Verdict::Retry(_)));
        assert!(matches!(classify(429, b""), Verdict::Retry(_)));
    }
}
