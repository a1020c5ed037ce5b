//! A postback's query string: `Params::parse` then `PostbackRequest::from_params`.
//!
//! Properties, when a request is accepted:
//! - the click id is 23 (or, minted before hour buckets, 22) characters of
//!   the base64url alphabet;
//! - txid / goal are at most 255 bytes without control characters;
//! - the amount formats back (`Display`) to a string `Money::parse` accepts
//!   with the same value, and is never negative;
//! - the currency is three uppercase ASCII letters;
//! - parsing is a function: the same parameters give the same request.
#![no_main]

use clickback::domain::query::Params;
use clickback::domain::{Identity, Money};
use clickback::postback::PostbackRequest;
use libfuzzer_sys::fuzz_target;

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fuzz_target!(|data: &[u8]| {
    let Ok(params) = Params::parse(data) else {
        return;
    };
    let Ok(request) = PostbackRequest::from_params(&params) else {
        return;
    };

    let id = request.click_id.as_str();
    assert!(id.len() == 23 || id.len() == 22, "click id {id:?}");
    assert!(
        id.bytes().all(|b| BASE64URL.contains(&b)),
        "click id {id:?}"
    );

    let text = match &request.identity {
        Identity::Txid(t) | Identity::Goal(t) => t,
    };
    assert!(!text.is_empty() && text.len() <= 255, "identity {text:?}");
    assert!(!text.chars().any(char::is_control), "identity {text:?}");

    if let Some(amount) = request.amount {
        assert!(amount.micros() >= 0, "negative amount {amount:?}");
        let shown = amount.to_string();
        assert_eq!(Money::parse(&shown), Ok(amount), "amount {shown:?}");
    }
    if let Some(currency) = &request.currency {
        let c = currency.as_str();
        assert!(
            c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()),
            "{c:?}"
        );
    }

    let again = PostbackRequest::from_params(&params).expect("accepted once, accepted twice");
    assert_eq!(again.click_id, request.click_id);
    assert_eq!(again.identity, request.identity);
    assert_eq!(again.amount, request.amount);
    assert_eq!(again.status, request.status);
});
