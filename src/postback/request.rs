//! The parse stage: a postback's parameters (query, form or JSON alike)
//! become a [`PostbackRequest`] of domain types, or a 400 naming the field.

use crate::domain::query::Params;
use crate::domain::{ClickId, ConversionStatus, Currency, DomainError, Identity, Money};

/// The largest `amount` one postback may report: a billion units of any
/// currency, far above any real sale, and small enough that no percentage
/// payout of it comes near the bounds of the counters.
pub const MAX_AMOUNT: Money = Money::from_micros(1_000_000_000 * 1_000_000);

/// Longest `txid` or `goal` accepted (bytes).
const MAX_IDENTITY_LEN: usize = 255;

/// Parameter names and the aliases advertisers' platforms use (API.md §2).
pub mod names {
    /// The click id.
    pub const CLICK_ID: &[&str] = &["click_id", "cid", "subid", "transaction_id"];
    /// The offer's postback secret.
    pub const TOKEN: &[&str] = &["token"];
    /// The advertiser's transaction id.
    pub const TXID: &[&str] = &["txid", "action_id", "order_id"];
    /// The event name.
    pub const GOAL: &[&str] = &["goal", "event"];
    /// The sale amount.
    pub const AMOUNT: &[&str] = &["amount", "sum", "revenue"];
    /// The amount's currency.
    pub const CURRENCY: &[&str] = &["currency"];
    /// approved / pending / rejected.
    pub const STATUS: &[&str] = &["status"];
    /// Signed postbacks: the signing time and the signature.
    pub const SIGNATURE: &[&str] = &["ts", "sig"];

    /// Every name a postback may carry (JSON bodies refuse anything else).
    pub fn all() -> impl Iterator<Item = &'static str> {
        [
            CLICK_ID, TOKEN, TXID, GOAL, AMOUNT, CURRENCY, STATUS, SIGNATURE,
        ]
        .into_iter()
        .flatten()
        .copied()
    }
}

/// A parsed postback.
#[derive(Debug, Clone)]
pub struct PostbackRequest {
    /// The click being converted.
    pub click_id: ClickId,
    /// The token presented, checked against the offer's.
    pub token: Option<String>,
    /// `(click_id, txid)` or `(click_id, goal)`.
    pub identity: Identity,
    /// Sale amount, for percentage payouts and revenue.
    pub amount: Option<Money>,
    /// Currency of `amount`, if stated.
    pub currency: Option<Currency>,
    /// The advertiser's verdict.
    pub status: ConversionStatus,
}

fn bounded_text(value: &str, name: &str) -> Result<String, DomainError> {
    if value.len() > MAX_IDENTITY_LEN {
        return Err(DomainError::invalid(format!(
            "{name} is longer than {MAX_IDENTITY_LEN} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(format!(
            "{name} contains control characters"
        )));
    }
    Ok(value.to_owned())
}

impl PostbackRequest {
    /// Reads a postback from decoded parameters (query, form or JSON alike).
    pub fn from_params(params: &Params) -> Result<Self, DomainError> {
        let click_id = params
            .get_nonempty(names::CLICK_ID)?
            .ok_or_else(|| DomainError::invalid("click_id is required"))?;
        let click_id = ClickId::parse(click_id)?;
        let identity = match params.get_nonempty(names::TXID)? {
            Some(txid) => Identity::Txid(bounded_text(txid, "txid")?),
            None => Identity::Goal(bounded_text(
                params.get_nonempty(names::GOAL)?.unwrap_or("default"),
                "goal",
            )?),
        };
        let amount = params
            .get_nonempty(names::AMOUNT)?
            .map(|a| Money::parse(a).map_err(|e| e.in_field("amount")))
            .transpose()?;
        if amount.is_some_and(|a| a > MAX_AMOUNT) {
            return Err(DomainError::invalid(format!(
                "amount: at most {MAX_AMOUNT} per conversion"
            )));
        }
        let currency = params
            .get_nonempty(names::CURRENCY)?
            .map(Currency::parse)
            .transpose()?;
        let status = params
            .get_nonempty(names::STATUS)?
            .map(ConversionStatus::parse)
            .transpose()?
            .unwrap_or(ConversionStatus::Approved);
        Ok(Self {
            click_id,
            token: params.get(names::TOKEN)?.map(str::to_owned),
            identity,
            amount,
            currency,
            status,
        })
    }
}
