//! Caps: limits on how many conversions (or how much payout) an offer, or one
//! affiliate on an offer, may earn per day, per month or in total.
//!
//! A conversion over a cap is recorded as rejected with reason `cap_reached`;
//! while a cap is full, clicks go to the offer's fallback URL.

use serde::{Deserialize, Serialize};

use super::{Day, DomainError, Money};

/// Who a cap counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapScope {
    /// All affiliates of the offer together.
    Offer,
    /// Each affiliate of the offer separately.
    Affiliate,
}

/// Over which period a cap counts (UTC calendar periods).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapPeriod {
    /// The UTC day.
    Day,
    /// The UTC calendar month.
    Month,
    /// Forever.
    Lifetime,
}

/// What a cap counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapMetric {
    /// Approved and pending conversions.
    Conversions,
    /// Payout of approved and pending conversions.
    Payout,
}

/// One cap of an offer, as the admin API takes and answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    /// Offer-wide or per affiliate.
    pub scope: CapScope,
    /// Day, month or lifetime.
    pub period: CapPeriod,
    /// Conversions or payout.
    pub metric: CapMetric,
    /// The limit: a whole number of conversions, or an amount of payout.
    pub limit: Money,
}

impl Cap {
    /// Checks that a conversion cap is a whole number.
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.metric == CapMetric::Conversions && self.limit.micros() % 1_000_000 != 0 {
            return Err(DomainError::invalid(
                "a conversions cap must be a whole number",
            ));
        }
        Ok(())
    }

    /// The limit in the unit of the cap's counter: conversions, or payout micro-units.
    pub fn limit_units(&self) -> i64 {
        match self.metric {
            CapMetric::Conversions => self.limit.micros() / 1_000_000,
            CapMetric::Payout => self.limit.micros(),
        }
    }

    /// What one conversion paying `payout` adds to this cap's counter.
    pub fn increment(&self, payout: Money) -> i64 {
        match self.metric {
            CapMetric::Conversions => 1,
            CapMetric::Payout => payout.micros(),
        }
    }

    /// The name of the counting period that contains `day`: `d20261123`,
    /// `m202611` or `l`, used in the counter's key.
    pub fn period_id(&self, day: Day) -> String {
        match self.period {
            CapPeriod::Day => format!("d{}", day.compact()),
            CapPeriod::Month => format!("m{}", &day.compact()[..6]),
            CapPeriod::Lifetime => "l".to_owned(),
        }
    }

    /// How long the counter must live: a little beyond its period.
    pub fn counter_ttl_secs(&self) -> Option<u64> {
        match self.period {
            CapPeriod::Day => Some(2 * 86_400),
            CapPeriod::Month => Some(32 * 86_400),
            CapPeriod::Lifetime => None,
        }
    }

    /// A short stable name of the counter: `<scope>:<metric>`.
    pub fn counter_name(&self) -> &'static str {
        match (self.scope, self.metric) {
            (CapScope::Offer, CapMetric::Conversions) => "o:cv",
            (CapScope::Offer, CapMetric::Payout) => "o:py",
            (CapScope::Affiliate, CapMetric::Conversions) => "a:cv",
            (CapScope::Affiliate, CapMetric::Payout) => "a:py",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(json: &str) -> Cap {
        serde_json::from_str(json).expect(json)
    }

    #[test]
    fn caps_name_their_period_and_count_in_their_unit() {
        let day = Day::parse("2026-11-23").expect("day");
        let daily = cap(r#"{"scope":"offer","period":"day","metric":"conversions","limit":"100"}"#);
        assert_eq!(
            (daily.period_id(day), daily.limit_units()),
            ("d20261123".into(), 100)
        );
        let monthly =
            cap(r#"{"scope":"affiliate","period":"month","metric":"payout","limit":"50.5"}"#);
        assert_eq!(
            (monthly.period_id(day), monthly.limit_units()),
            ("m202611".into(), 50_500_000)
        );
        assert_eq!(monthly.increment(Money::from_micros(7)), 7);
        assert_eq!(daily.increment(Money::from_micros(7)), 1);
    }

    #[test]
    fn a_fractional_conversion_cap_is_refused() {
        assert!(
            cap(r#"{"scope":"offer","period":"day","metric":"conversions","limit":"1.5"}"#)
                .validate()
                .is_err()
        );
        assert!(serde_json::from_str::<Cap>(
            r#"{"scope":"offer","period":"week","metric":"payout","limit":"1"}"#
        )
        .is_err());
    }
}
