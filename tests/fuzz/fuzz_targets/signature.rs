//! The signed-postback canonicaliser: `canonical`, `sign`, `verify`.
//!
//! Properties, for any list of (name, value) pairs and any secret:
//! - `canonical` never panics and does not depend on the pairs' order;
//! - `sig` never takes part in the canonical form;
//! - a request signed with `sign` over `canonical` with `ts` = now verifies,
//!   also 300 s either side, and is `Expired` at 301 s;
//! - changing one character of any signed value (`ts` included), or
//!   appending a byte to it, makes `verify` fail; so does replacing one hex
//!   digit of `sig` with another digit (its case is ignored by design).
#![no_main]

use arbitrary::Arbitrary;
use clickback::domain::signature::{canonical, sign, verify, SignatureError, MAX_SKEW_SECS};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    secret: String,
    pairs: Vec<(String, String)>,
    /// Drives the shuffle and the choice of the character to change.
    seed: u64,
    now: u32,
}

/// A small deterministic generator (xorshift64*), enough for shuffling.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn as_refs(pairs: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> + Clone {
    pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
}

/// `value` with one character replaced by a different one.
fn change_one_char(value: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = value.chars().collect();
    let i = rng.below(chars.len());
    let old = chars[i];
    let mut new = old;
    while new == old {
        let mask = 1 + rng.below(0x7f) as u32;
        new = char::from_u32(u32::from(old) ^ mask).unwrap_or('x');
    }
    chars[..i]
        .iter()
        .chain([new].iter())
        .chain(chars[i + 1..].iter())
        .collect()
}

fuzz_target!(|input: Input| {
    let mut rng = Rng(input.seed | 1);
    let now = u64::from(input.now) + 1_000_000;

    // Order independence, with `sig` in the mix.
    let original = canonical(as_refs(&input.pairs));
    let mut shuffled = input.pairs.clone();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.below(i + 1));
    }
    assert_eq!(
        canonical(as_refs(&shuffled)),
        original,
        "order changed the canonical form"
    );
    let without_sig: Vec<(String, String)> = input
        .pairs
        .iter()
        .filter(|(n, _)| n != "sig")
        .cloned()
        .collect();
    assert_eq!(canonical(as_refs(&without_sig)), original, "sig is signed");

    // Sign as a shop would: the pairs, plus ts = now, then sig.
    let mut signed: Vec<(String, String)> = input
        .pairs
        .into_iter()
        .filter(|(n, _)| n != "sig" && n != "ts")
        .collect();
    signed.insert(rng.below(signed.len() + 1), ("ts".into(), now.to_string()));
    let sig = sign(&input.secret, &canonical(as_refs(&signed)));
    assert_eq!(sig.len(), 64);
    let mut request = signed.clone();
    request.push(("sig".into(), sig.clone()));

    assert_eq!(verify(&input.secret, as_refs(&request), now), Ok(()));
    assert_eq!(
        verify(&input.secret, as_refs(&request), now + MAX_SKEW_SECS),
        Ok(())
    );
    assert_eq!(
        verify(&input.secret, as_refs(&request), now - MAX_SKEW_SECS),
        Ok(())
    );
    assert_eq!(
        verify(&input.secret, as_refs(&request), now + MAX_SKEW_SECS + 1),
        Err(SignatureError::Expired)
    );
    let last = request.len() - 1;
    request.swap(0, last);
    assert_eq!(
        verify(&input.secret, as_refs(&request), now),
        Ok(()),
        "sig moved first"
    );
    let upper: Vec<(String, String)> = request
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                if n == "sig" {
                    v.to_ascii_uppercase()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    assert_eq!(
        verify(&input.secret, as_refs(&upper), now),
        Ok(()),
        "uppercase sig"
    );

    // Tampering with any signed value fails: every pair of a short request,
    // `ts` and three random pairs of a longer one (each check re-sorts and
    // re-hashes the whole request; across runs every position gets its turn).
    let mut chosen: Vec<usize> = (0..request.len()).collect();
    if chosen.len() > 4 {
        let ts = request
            .iter()
            .position(|(n, _)| n == "ts")
            .expect("signed with ts");
        chosen = (0..3).map(|_| rng.below(request.len())).collect();
        chosen.push(ts);
    }
    for i in chosen {
        if request[i].0 == "sig" {
            continue;
        }
        let mut tampered = request.clone();
        tampered[i].1.push(char::from(b'0' + (rng.below(10) as u8)));
        assert!(
            verify(&input.secret, as_refs(&tampered), now).is_err(),
            "appending to {:?} kept the signature valid",
            request[i].0
        );
        if !request[i].1.is_empty() {
            let mut tampered = request.clone();
            tampered[i].1 = change_one_char(&request[i].1, &mut rng);
            assert!(
                verify(&input.secret, as_refs(&tampered), now).is_err(),
                "changing {:?} from {:?} to {:?} kept the signature valid",
                request[i].0,
                request[i].1,
                tampered[i].1
            );
        }
    }
    // Another hex digit in the signature fails.
    let at = rng.below(64);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digit = HEX
        .iter()
        .position(|h| *h == sig.as_bytes()[at])
        .expect("lowercase hex");
    let mut forged = sig.into_bytes();
    forged[at] = HEX[(digit + 1 + rng.below(15)) % 16];
    let forged = String::from_utf8(forged).expect("hex");
    let mut tampered = signed;
    tampered.push(("sig".into(), forged));
    assert_eq!(
        verify(&input.secret, as_refs(&tampered), now),
        Err(SignatureError::Mismatch)
    );
});
