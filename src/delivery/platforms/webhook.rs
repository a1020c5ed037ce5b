//! Signed webhooks: the conversion as JSON, `POST`ed to any receiver.
//!
//! ```text
//! POST <url>
//! Content-Type: application/json
//! Idempotency-Key: <delivery id>
//! Clickback-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//! ```
//!
//! The signature covers the timestamp and the exact body bytes, so a
//! receiver can prove the request came from clickback and refuse a replay
//! older than its tolerance (docs/destinations.md shows verifiers in Python
//! and Node.js; [`verify`] is the reference). Money travels as decimal
//! strings, like everywhere in clickback's API, so no receiver rounds it
//! through a float.

use serde::Serialize;

use super::{body_text, by_status, hex, hmac_sha256, json_body, json_content_type};
use super::{ConversionEvent, OutboundRequest, Prepared, Verdict};
use crate::domain::money::Money;
use crate::domain::signature::constant_time_eq;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Clickback-Signature";

/// The `event` of the body when the destination sets no `event_name`.
pub const DEFAULT_EVENT: &str = "conversion";

/// The body of a webhook: one conversion at one status.
#[derive(Serialize)]
struct Body<'a> {
    event: &'a str,
    delivery_id: &'a str,
    conversion_id: &'a str,
    click_id: &'a str,
    offer_id: &'a str,
    aff_id: &'a str,
    status: &'a str,
    payout: Money,
    revenue: Money,
    amount: Option<Money>,
    currency: &'a str,
    sub1: &'a str,
    sub2: &'a str,
    sub3: &'a str,
    sub4: &'a str,
    sub5: &'a str,
    source: &'a str,
    txid: &'a str,
    goal: &'a str,
    click_at: u64,
    converted_at: u64,
    status_at: u64,
    /// The click's Google Ads click id ("" when absent), for the
    /// advertiser's own systems to import (Google Ads' offline conversion
    /// import takes it): Google Ads is the one platform without a
    /// destination of its own. The other ad click ids go only to their
    /// platform.
    gclid: &'a str,
}

/// The signed request for `event` to `url`, stamped `now_secs`.
pub fn prepare(
    url: &str,
    secret: &[u8],
    event_name: Option<&str>,
    event: &ConversionEvent<'_>,
    now_secs: u64,
) -> Prepared {
    let [sub1, sub2, sub3, sub4, sub5] = event.subs;
    let body = json_body(&Body {
        event: event_name.unwrap_or(DEFAULT_EVENT),
        delivery_id: event.delivery_id,
        conversion_id: event.conversion_id,
        click_id: event.click_id,
        offer_id: event.offer_id,
        aff_id: event.aff_id,
        status: event.status.as_str(),
        payout: event.payout,
        revenue: event.revenue,
        amount: event.amount,
        currency: event.currency,
        sub1,
        sub2,
        sub3,
        sub4,
        sub5,
        source: event.source,
        txid: event.txid,
        goal: event.goal,
        click_at: event.click_at,
        converted_at: event.converted_at,
        status_at: event.status_at,
        gclid: event.gclid,
    });
    let signature = sign(secret, now_secs, &body);
    Prepared::Send(OutboundRequest {
        method: reqwest::Method::POST,
        url: url.to_owned(),
        headers: vec![
            json_content_type(),
            (SIGNATURE_HEADER.to_owned(), signature),
        ],
        body: Some(body),
        idempotency_key: event.delivery_id.to_owned(),
    })
}

/// The `Clickback-Signature` value for `body` sent at `t`:
/// `t=<t>,v1=<lowercase hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex(&mac(secret, t, body)))
}

fn mac(secret: &[u8], t: u64, body: &[u8]) -> [u8; 32] {
    let mut message = Vec::with_capacity(body.len() + 21);
    message.extend_from_slice(t.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    hmac_sha256(secret, &message)
}

/// Whether `header` is a valid signature of `body` under `secret`, made at
/// most `tolerance_secs` away from `now_secs` (either way). Any `v1=` entry
/// may match, so a receiver can accept a rotated secret; comparison is in
/// constant time.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> bool {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let Some(t) = t else {
        return false;
    };
    if t.abs_diff(now_secs) > tolerance_secs {
        return false;
    }
    let expected = hex(&mac(secret, t, body));
    signatures
        .iter()
        .any(|candidate| constant_time_eq(candidate.as_bytes(), expected.as_bytes()))
}

/// The shared status table, with the receiver's body as the reason.
pub fn classify(status: u16, body: &[u8]) -> Verdict {
    by_status(status, &body_text(body))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    const SECRET: &[u8] = b"whsec-0123456789abcdef";

    fn prepared() -> (OutboundRequest, serde_json::Value, String) {
        sent(prepare(
            "https://hooks.example/cb?x=1",
            SECRET,
            None,
            &event(),
            NOW,
        ))
    }

    #[test]
    fn the_conversion_is_posted_as_json_with_money_as_decimal_strings() {
        let (request, body, _) = prepared();

        assert_eq!(request.method, reqwest::Method::POST);
        assert_eq!(request.url, "https://hooks.example/cb?x=1");
        assert_eq!(header(&request, "content-type"), Some("application/json"));
        assert_eq!(request.idempotency_key, "conv-1:approved:ga4");
        assert_eq!(
            body,
            serde_json::json!({
                "event": "conversion",
                "delivery_id": "conv-1:approved:ga4",
                "conversion_id": "conv-1",
                "click_id": "CLICK123",
                "offer_id": "summer",
                "aff_id": "aff_7",
                "status": "approved",
                "payout": "1.5",
                "revenue": "12.345",
                "amount": "99.99",
                "currency": "EUR",
                "sub1": "s1", "sub2": "s2", "sub3": "", "sub4": "", "sub5": "s5",
                "source": "fb",
                "txid": "ORDER-9",
                "goal": "sale",
                "click_at": NOW - 7200,
                "converted_at": NOW - 3600,
                "status_at": NOW - 3600,
                "gclid": "Cj0KCQ",
            })
        );
    }

    #[test]
    fn of_the_ad_click_ids_only_the_gclid_is_forwarded_to_a_webhook() {
        let (_, _, raw) = prepared();

        for value in ["IwAR0abc", "E.C.P.tt", "1234567890.1700000000"] {
            assert!(!raw.contains(value), "{raw}");
        }
    }

    #[test]
    fn the_signature_header_signs_the_exact_body_at_now() {
        let (request, _, raw) = prepared();

        let signature = header(&request, "clickback-signature").expect("signed");

        assert_eq!(signature, sign(SECRET, NOW, raw.as_bytes()));
        assert!(
            signature.starts_with(&format!("t={NOW},v1=")),
            "{signature}"
        );
        assert!(verify(SECRET, signature, raw.as_bytes(), NOW, 300));
    }

    #[test]
    fn a_known_vector_matches_any_hmac_sha256_implementation() {
        // HMAC-SHA256("secret", "1700000000.{}") computed independently
        // (python3 -c "import hmac,hashlib;print(hmac.new(b'secret',b'1700000000.{}',hashlib.sha256).hexdigest())").
        assert_eq!(
            sign(b"secret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn verification_refuses_tampering_other_secrets_and_stale_or_future_stamps() {
        let body = br#"{"status":"approved"}"#;
        let header = sign(SECRET, NOW, body);

        assert!(verify(SECRET, &header, body, NOW + 300, 300));
        assert!(verify(SECRET, &header, body, NOW - 300, 300));
        assert!(!verify(
            SECRET,
            &header,
            br#"{"status":"rejected"}"#,
            NOW,
            300
        ));
        assert!(!verify(b"another-secret-value", &header, body, NOW, 300));
        assert!(!verify(SECRET, &header, body, NOW + 301, 300));
        assert!(!verify(SECRET, &header, body, NOW - 301, 300));
        let restamped = header.replacen(&format!("t={NOW}"), &format!("t={}", NOW + 1), 1);
        assert!(!verify(SECRET, &restamped, body, NOW, 300));
        for malformed in ["", "v1=abc", "t=abc,v1=def", "t=1"] {
            assert!(!verify(SECRET, malformed, body, NOW, 300), "{malformed}");
        }
    }

    #[test]
    fn any_of_several_v1_entries_may_match_for_secret_rotation() {
        let body = b"{}";
        let old = sign(b"old-secret-0123456", NOW, body);
        let new = sign(SECRET, NOW, body);
        let old_v1 = old.split_once(",v1=").expect("v1").1;
        let both = format!("{new},v1={old_v1}");

        assert!(verify(SECRET, &both, body, NOW, 300));
        assert!(verify(b"old-secret-0123456", &both, body, NOW, 300));
    }

    #[test]
    fn a_custom_event_name_and_a_missing_amount_appear_in_the_body() {
        let event = ConversionEvent {
            amount: None,
            ..event()
        };

        let (_, body, _) = sent(prepare(
            "https://hooks.example/cb",
            SECRET,
            Some("sale.approved"),
            &event,
            NOW,
        ));

        assert_eq!(body["event"], "sale.approved");
        assert_eq!(body["amount"], serde_json::Value::Null);
    }
}
