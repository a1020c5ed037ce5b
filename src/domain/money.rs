//! Exact decimal money: integer micro-units end to end.
//!
//! Amounts travel as decimal strings with at most six fraction digits and are
//! held as `i64` micro-units (1 = 0.000001), which covers ±9.2 trillion with
//! no rounding anywhere except the one documented place, [`Money::percent_of`].

use std::fmt;

use super::DomainError;

const MICROS_PER_UNIT: i64 = 1_000_000;

/// An exact amount of money (or a percentage) in micro-units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Money {
    /// Zero, the payout of a conversion that earns nothing.
    pub const ZERO: Money = Money(0);

    /// Wraps a count of micro-units (as stored in Redis counters).
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// The amount in micro-units, the unit every counter and script uses.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Parses a non-negative decimal string: digits, optionally a dot and 1–6
    /// fraction digits. Signs, exponents, spaces and more precision are refused
    /// rather than rounded, so nobody is ever paid a cent they did not expect.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let invalid = || {
            DomainError::invalid(
                "must be a non-negative decimal with at most 6 fraction digits, like \"12.50\"",
            )
        };
        let (whole, fraction) = match raw.split_once('.') {
            Some((w, f)) => (w, f),
            None => (raw, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || fraction.len() > 6
            || (raw.contains('.') && fraction.is_empty())
            || whole.len() > 12
        {
            return Err(invalid());
        }
        let mut micros: i64 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            micros = micros
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(digit - b'0')))
                .ok_or_else(invalid)?;
        }
        for _ in fraction.len()..6 {
            micros = micros.checked_mul(10).ok_or_else(invalid)?;
        }
        Ok(Self(micros))
    }

    /// `percent` % of `self`, rounded half-up to the micro-unit.
    ///
    /// This is the only rounding in clickback: 12.5 % of 0.000005 is
    /// 0.000000625, which pays 0.000001. Half-up on non-negative amounts is
    /// what spreadsheets and accountants do by hand, so reports reconcile.
    pub fn percent_of(self, percent: Money) -> Money {
        let product = i128::from(self.0) * i128::from(percent.0);
        let divisor = 100 * i128::from(MICROS_PER_UNIT);
        let rounded = (product + divisor / 2) / divisor;
        Money(i64::try_from(rounded).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Money {
    /// Shortest exact decimal: `2.5`, `0`, `12.000001`, `-3.25`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        MoneyTotal(i128::from(self.0)).fmt(f)
    }
}

impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Money {
    /// Only the documented decimal string: a JSON number would already have
    /// passed through a binary float in most clients and parsers.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DecimalString;
        impl serde::de::Visitor<'_> for DecimalString {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string such as \"2.50\"")
            }
            fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<Money, E> {
                Money::parse(raw).map_err(|e| E::custom(e.detail))
            }
        }
        d.deserialize_str(DecimalString)
    }
}

/// A sum of many amounts, in micro-units: reports add up counters of every
/// shard and day, and an `i128` holds any such sum exactly (an `i64` sum of
/// counters near their bound would wrap to a negative number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MoneyTotal(i128);

impl MoneyTotal {
    /// Nothing yet.
    pub const ZERO: MoneyTotal = MoneyTotal(0);

    /// Adds a counter's micro-units.
    pub fn add_micros(&mut self, micros: i128) {
        self.0 += micros;
    }

    /// The sum in micro-units.
    pub fn micros(self) -> i128 {
        self.0
    }
}

impl fmt::Display for MoneyTotal {
    /// Shortest exact decimal, like [`Money`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per_unit = MICROS_PER_UNIT as u128;
        let (whole, fraction) = (abs / per_unit, abs % per_unit);
        if fraction == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let digits = format!("{fraction:06}");
            write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl serde::Serialize for MoneyTotal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An ISO 4217 currency code: three uppercase ASCII letters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    /// Accepts three ASCII letters in any case and stores them uppercase, as
    /// advertisers send `eur` as often as `EUR`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Self(raw.to_ascii_uppercase()))
        } else {
            Err(DomainError::invalid(
                "currency must be a three-letter ISO 4217 code",
            ))
        }
    }

    /// The code, uppercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Currency::parse(&raw).map_err(|e| serde::de::Error::custom(e.detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_beyond_i64_stay_exact_and_positive() {
        let mut total = MoneyTotal::ZERO;
        for _ in 0..3 {
            total.add_micros(i128::from(i64::MAX));
        }
        assert_eq!(total.to_string(), "27670116110564.327421");
        assert!(total > MoneyTotal::ZERO);
    }

    fn m(s: &str) -> Money {
        Money::parse(s).expect(s)
    }

    #[test]
    fn parses_decimal_strings_exactly() {
        assert_eq!(m("2.5").micros(), 2_500_000);
        assert_eq!(m("12.000001").micros(), 12_000_001);
        assert_eq!(m("0").micros(), 0);
        assert_eq!(m("007.10").micros(), 7_100_000);
        assert_eq!(m("999999999999.999999").micros(), 999_999_999_999_999_999);
    }

    #[test]
    fn refuses_anything_that_is_not_a_plain_non_negative_decimal() {
        for bad in [
            "",
            "-1",
            "+1",
            "1e3",
            "1.",
            ".5",
            " 1",
            "1 ",
            "1,5",
            "0.0000001",
            "NaN",
            "inf",
            "0x10",
            "1.2.3",
            "9999999999999",
        ] {
            assert!(Money::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn formats_the_shortest_exact_decimal() {
        assert_eq!(m("2.50").to_string(), "2.5");
        assert_eq!(m("0").to_string(), "0");
        assert_eq!(m("12.000001").to_string(), "12.000001");
        assert_eq!(Money::from_micros(-3_250_000).to_string(), "-3.25");
        assert_eq!(Money::from_micros(1).to_string(), "0.000001");
    }

    #[test]
    fn percent_payout_rounds_half_up_to_the_micro_unit() {
        assert_eq!(m("100").percent_of(m("12.5")), m("12.5"));
        assert_eq!(m("19.99").percent_of(m("10")), m("1.999"));
        assert_eq!(m("0.000005").percent_of(m("12.5")), m("0.000001")); // 0.000000625
        assert_eq!(m("0.000003").percent_of(m("10")), m("0")); // 0.0000003
        assert_eq!(m("0.000005").percent_of(m("10")), m("0.000001")); // exactly half
        assert_eq!(m("33.33").percent_of(m("33.333333")), m("11.11")); // 11.1099998889
    }

    #[test]
    fn no_float_drift_over_many_additions() {
        let total: i64 = (0..10_000).map(|_| m("0.1").micros()).sum();
        assert_eq!(Money::from_micros(total).to_string(), "1000");
    }

    #[test]
    fn currency_codes_are_normalised_to_uppercase() {
        assert_eq!(Currency::parse("eur").map(|c| c.0), Ok("EUR".to_owned()));
        for bad in ["EU", "EURO", "E1R", ""] {
            assert!(Currency::parse(bad).is_err());
        }
    }
}
