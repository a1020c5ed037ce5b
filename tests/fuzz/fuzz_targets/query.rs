//! `Params::parse` over arbitrary bytes (query strings and form bodies).
//!
//! Properties, when parsing succeeds:
//! - no name or value contains NUL (valid UTF-8 is guaranteed by `String`);
//! - the lenient WHATWG decoder (`form_urlencoded`) reads the same pairs, so
//!   the strict reader only ever refuses, it never decodes differently;
//! - re-encoding every pair with `percent_encode` and parsing again gives the
//!   same pairs in the same order (or the length limit, if the re-encoded form
//!   outgrew it).
#![no_main]

use clickback::domain::query::{Params, MAX_PARAMS_LEN};
use clickback::domain::redirect::percent_encode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(params) = Params::parse(data) else {
        return;
    };
    assert!(data.len() <= MAX_PARAMS_LEN, "oversized input accepted");
    let pairs: Vec<(&str, &str)> = params.pairs().collect();
    for (name, value) in &pairs {
        assert!(!name.contains('\0'), "NUL in name {name:?}");
        assert!(!value.contains('\0'), "NUL in value {value:?}");
    }

    let lenient: Vec<(String, String)> = form_urlencoded::parse(data)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let lenient: Vec<(&str, &str)> = lenient
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(pairs, lenient, "strict and lenient decoders disagree");

    let encoded = pairs
        .iter()
        .map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    match Params::parse(encoded.as_bytes()) {
        Ok(again) => {
            assert!(encoded.len() <= MAX_PARAMS_LEN);
            let again: Vec<(&str, &str)> = again.pairs().collect();
            assert_eq!(
                pairs, again,
                "re-encoded form {encoded:?} parses differently"
            );
        }
        Err(e) => assert!(
            encoded.len() > MAX_PARAMS_LEN,
            "re-encoded form {encoded:?} refused: {e}"
        ),
    }
});
