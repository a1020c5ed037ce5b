//! Signed postbacks: HMAC-SHA256 over the canonical parameters with a timestamp.
//!
//! A shared token proves little once it has been seen in one log file. When an
//! offer has a `postback_signing_secret`, every postback must also carry
//! - `ts`: the Unix time it was signed, within ±5 minutes of clickback's clock;
//! - `sig`: lowercase hex of HMAC-SHA256(secret, canonical), where canonical
//!   is every parameter except `sig`, each name and value percent-encoded
//!   (RFC 3986 unreserved characters kept), sorted by name then value, joined
//!   as `name=value` with `&`.
//!
//! A signature is accepted once: a replay inside the window is refused. See
//! docs/signed-postbacks.md for copy-paste signers in PHP, Node and Python.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::redirect::percent_encode;

/// How far a postback's `ts` may be from clickback's clock.
pub const MAX_SKEW_SECS: u64 = 300;

/// Why a signed postback was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// `ts` or `sig` is missing or malformed.
    Missing,
    /// `ts` is more than five minutes away.
    Expired,
    /// The HMAC does not match.
    Mismatch,
}

/// Compares secrets in time independent of where they differ, so a token
/// cannot be guessed byte by byte from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The canonical string a signature covers.
pub fn canonical<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(name, _)| *name != "sig")
        .map(|(name, value)| (percent_encode(name), percent_encode(value)))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (name, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Lowercase hex HMAC-SHA256 of `message` under `secret`.
pub fn sign(secret: &str, message: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(message.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks `ts` and `sig` among `pairs` against `secret` at time `now`.
pub fn verify<'a>(
    secret: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    now: u64,
) -> Result<(), SignatureError> {
    let find = |name: &str| {
        pairs
            .clone()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    };
    let ts: u64 = find("ts")
        .and_then(|t| t.parse().ok())
        .ok_or(SignatureError::Missing)?;
    let sig = find("sig")
        .filter(|s| s.len() == 64)
        .ok_or(SignatureError::Missing)?;
    if ts.abs_diff(now) > MAX_SKEW_SECS {
        return Err(SignatureError::Expired);
    }
    let expected = sign(secret, &canonical(pairs));
    if constant_time_eq(expected.as_bytes(), sig.to_ascii_lowercase().as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_contents_and_length() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    const SECRET: &str = "0123456789abcdef-secret";

    fn signed(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let sig = sign(SECRET, &canonical(pairs.iter().copied()));
        let mut all: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        all.push(("sig".into(), sig));
        all
    }

    fn check(pairs: &[(String, String)], now: u64) -> Result<(), SignatureError> {
        verify(
            SECRET,
            pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            now,
        )
    }

    #[test]
    fn canonical_form_sorts_and_encodes() {
        let c = canonical([
            ("txid", "a b"),
            ("click_id", "X"),
            ("ts", "1"),
            ("sig", "ignored"),
            ("amount", "1.5"),
        ]);
        assert_eq!(c, "amount=1.5&click_id=X&ts=1&txid=a%20b");
    }

    #[test]
    fn a_known_vector_matches_other_languages() {
        // Computed independently with Python's hmac module.
        assert_eq!(
            sign(SECRET, "click_id=abc&ts=1700000000&txid=o-1"),
            "1612fd5f13fb419622ce92fa90767a3a9c9521c6e05f49494b1adec33b17baf8"
        );
    }

    #[test]
    fn reserved_and_non_ascii_characters_sign_like_the_documented_php_node_and_python_signers() {
        // docs/signed-postbacks.md's Node and Python signers give this signature.
        let pairs = [
            ("click_id", "abc"),
            ("txid", "a b!'()*é"),
            ("amount", "12.5"),
            ("ts", "1700000000"),
        ];
        assert_eq!(
            sign(SECRET, &canonical(pairs)),
            "c8fa6d6b65e09eff2b2822d4a7010ff14af13cf8a041bd8442f0d7e058bf78bb"
        );
    }

    #[test]
    fn a_fresh_correct_signature_passes_in_any_parameter_order() {
        let pairs = signed(&[("click_id", "abc"), ("ts", "1000"), ("txid", "o-1")]);
        assert_eq!(check(&pairs, 1000), Ok(()));
        let mut shuffled = pairs.clone();
        shuffled.reverse();
        assert_eq!(check(&shuffled, 1200), Ok(()));
    }

    #[test]
    fn tampering_age_and_missing_fields_are_refused() {
        let pairs = signed(&[("click_id", "abc"), ("ts", "1000"), ("amount", "10")]);
        assert_eq!(
            check(&pairs, 1000 + MAX_SKEW_SECS + 1),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            check(&pairs, 1000 - MAX_SKEW_SECS - 1),
            Err(SignatureError::Expired)
        );
        let mut tampered = pairs.clone();
        tampered[2].1 = "1000".into();
        assert_eq!(check(&tampered, 1000), Err(SignatureError::Mismatch));
        let unsigned: Vec<(String, String)> =
            pairs.iter().filter(|(n, _)| n != "sig").cloned().collect();
        assert_eq!(check(&unsigned, 1000), Err(SignatureError::Missing));
        let mut extra = pairs.clone();
        extra.push(("goal".into(), "sale".into()));
        assert_eq!(check(&extra, 1000), Err(SignatureError::Mismatch));
    }
}
