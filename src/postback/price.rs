//! The price stage: what this conversion pays the affiliate and earns the
//! network, in exact micro-units, before anything is written.

use super::outcome::PostbackError;
use super::request::PostbackRequest;
use crate::domain::offer::PayoutRule;
use crate::domain::{DomainError, Money, Offer};

/// The money of one postback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    /// The affiliate's payout; `None` keeps the stored one (a percentage
    /// offer's status change that carries no amount).
    pub payout: Option<Money>,
    /// The network's revenue; `None` keeps the stored one.
    pub revenue: Option<Money>,
}

/// Prices `request` under `offer`; `existing` says whether the conversion
/// is already stored (a status change may leave the amount out).
pub fn price(
    offer: &Offer,
    request: &PostbackRequest,
    existing: bool,
) -> Result<Price, PostbackError> {
    if let Some(currency) = &request.currency {
        if currency != &offer.currency {
            return Err(PostbackError::CurrencyMismatch {
                given: currency.as_str().to_owned(),
                expected: offer.currency.as_str().to_owned(),
            });
        }
    }
    let payout = match (offer.payout, request.amount) {
        (PayoutRule::Fixed(fixed), _) => Some(fixed),
        (PayoutRule::Percent(percent), Some(amount)) => Some(amount.percent_of(percent)),
        (PayoutRule::Percent(_), None) if existing => None,
        (PayoutRule::Percent(_), None) => {
            return Err(DomainError::invalid(
                "amount is required: this offer pays a percentage of it",
            )
            .into())
        }
    };
    Ok(Price {
        payout,
        revenue: offer.revenue.or(request.amount),
    })
}
