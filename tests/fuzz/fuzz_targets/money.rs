//! `Money::parse`, `Display` and `percent_of`.
//!
//! Properties:
//! - `parse` never panics, and accepts exactly `\d{1,12}(\.\d{1,6})?`, with
//!   the value an independent u128 reference computes;
//! - accepted values round-trip: `parse(value.to_string()) == value`, and
//!   `to_string` is the shortest form (no trailing fraction zeros, no dot
//!   without digits);
//! - `percent_of` never panics for any two parsed values and equals the
//!   half-up rounded exact product; for any two i64 micro-amounts it never
//!   panics either.
#![no_main]

use arbitrary::Arbitrary;
use clickback::domain::Money;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    amount: &'a str,
    percent: &'a str,
    raw_a: i64,
    raw_b: i64,
}

/// The documented grammar, implemented separately: micro-units or None.
fn reference(raw: &str) -> Option<i64> {
    let (whole, fraction) = match raw.split_once('.') {
        Some((w, f)) if !f.is_empty() => (w, f),
        Some(_) => return None,
        None => (raw, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 12
        || fraction.len() > 6
        || !digits(whole)
        || !digits(fraction)
    {
        return None;
    }
    let padded = format!("{fraction:0<6}");
    let micros: u128 = whole.parse::<u128>().ok()? * 1_000_000 + padded.parse::<u128>().ok()?;
    i64::try_from(micros).ok()
}

fn check(raw: &str) -> Option<Money> {
    let parsed = Money::parse(raw).ok();
    assert_eq!(parsed.map(Money::micros), reference(raw), "parse({raw:?})");
    let money = parsed?;
    let shown = money.to_string();
    assert_eq!(
        Money::parse(&shown),
        Ok(money),
        "{raw:?} shown as {shown:?}"
    );
    assert!(!shown.ends_with('.'), "{shown:?}");
    if shown.contains('.') {
        assert!(!shown.ends_with('0'), "{shown:?} is not the shortest form");
    }
    Some(money)
}

fuzz_target!(|input: Input<'_>| {
    let amount = check(input.amount);
    let percent = check(input.percent);
    if let (Some(a), Some(p)) = (amount, percent) {
        let product = i128::from(a.micros()) * i128::from(p.micros());
        let divisor = 100 * 1_000_000;
        let exact = product / divisor + i128::from(product % divisor * 2 >= divisor);
        let expected = i64::try_from(exact).unwrap_or(i64::MAX);
        assert_eq!(a.percent_of(p).micros(), expected, "{a} % of {p}");
        assert!(a.percent_of(p) >= Money::ZERO);
    }
    // Any stored micro-amounts (counters may be anything): no panic.
    let (a, b) = (
        Money::from_micros(input.raw_a),
        Money::from_micros(input.raw_b),
    );
    let _ = a.percent_of(b);
    let _ = a.to_string();
});
