//! Crediting a conversion from an advertiser's server-to-server postback.
//!
//! Two round trips: one pipeline reads the click and any existing conversion
//! with the same identity; then, once the token and the payout are settled in
//! Rust, one Lua script creates or moves the conversion and its counters
//! atomically. However many identical postbacks race, the script runs them
//! one at a time and exactly one of them credits.

use crate::domain::conversion::{ConversionCommand, ConversionOutcome, ConversionRecord};
use crate::domain::ids::base64url;
use crate::domain::offer::PayoutRule;
use crate::domain::query::Params;
use crate::domain::{ClickId, ConversionStatus, Currency, Day, DomainError, Identity, Money};
use crate::state::{constant_time_eq, AppState};
use crate::store::StoreError;

/// How long a conversion is remembered after its click's attribution window,
/// so that late retries and late status changes still find it.
pub const CONVERSION_RETENTION_EXTRA_SECS: u64 = 90 * 86_400;

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

    /// Every name a postback may carry (JSON bodies refuse anything else).
    pub fn all() -> impl Iterator<Item = &'static str> {
        [CLICK_ID, TOKEN, TXID, GOAL, AMOUNT, CURRENCY, STATUS]
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

/// Why a postback was refused.
#[derive(Debug, thiserror::Error)]
pub enum PostbackError {
    /// Malformed or inconsistent with the offer.
    #[error("{0}")]
    Invalid(#[from] DomainError),
    /// Token missing or wrong.
    #[error("invalid token")]
    InvalidToken,
    /// The click never existed or its attribution window is over.
    #[error("unknown or expired click")]
    UnknownClick,
    /// The amount's currency is not the offer's.
    #[error("currency {given} differs from the offer's {expected}")]
    CurrencyMismatch {
        /// What the postback said.
        given: String,
        /// What the offer is priced in.
        expected: String,
    },
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The answer to a postback that was understood.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PostbackAnswer {
    /// `credited`, `duplicate`, `updated` or `rejected`.
    pub status: &'static str,
    /// Why a conversion was rejected, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// A human explanation accompanying `reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
    /// Stable id of the conversion.
    pub conversion_id: String,
    /// The converting click.
    pub click_id: String,
    /// The click's offer.
    pub offer_id: String,
    /// The credited affiliate.
    pub aff_id: String,
    /// The conversion's payout.
    pub payout: Money,
    /// The offer's currency.
    pub currency: String,
    /// The conversion's status after this postback.
    pub conversion_status: ConversionStatus,
    /// The status before, on `updated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<ConversionStatus>,
}

impl PostbackAnswer {
    /// The `result` label of `clickback_postbacks_total`.
    pub fn label(&self) -> &'static str {
        self.status
    }
}

/// Credits, updates or de-duplicates one conversion.
pub async fn convert(
    state: &AppState,
    request: &PostbackRequest,
) -> Result<PostbackAnswer, PostbackError> {
    // A status change racing a conversion over UTC midnight asks for a fresh
    // look-up; three attempts are plenty for a window that small.
    for _ in 0..3 {
        let lookup = state
            .store
            .lookup_conversion(&request.click_id, &request.identity)
            .await?;
        let (offer_id, aff_id) = match (&lookup.click, &lookup.conversion) {
            (Some(click), _) => (click.offer_id.clone(), click.aff_id.clone()),
            (None, Some(record)) => (record.offer_id.clone(), record.aff_id.clone()),
            (None, None) => return Err(PostbackError::UnknownClick),
        };
        let offer = state
            .cache
            .offer(offer_id.as_str())
            .ok_or(PostbackError::UnknownClick)?;
        let token_ok = request
            .token
            .as_deref()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), offer.postback_token.as_bytes()));
        if !token_ok {
            return Err(PostbackError::InvalidToken);
        }
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
            (PayoutRule::Percent(_), None) if lookup.conversion.is_some() => None,
            (PayoutRule::Percent(_), None) => {
                return Err(DomainError::invalid(
                    "amount is required: this offer pays a percentage of it",
                )
                .into())
            }
        };
        let command = ConversionCommand {
            click_id: request.click_id.clone(),
            identity: request.identity.clone(),
            offer_id,
            aff_id,
            status: request.status,
            payout,
            revenue: offer.revenue.or(request.amount),
            new_conversion_id: base64url(uuid::Uuid::new_v4().as_bytes()),
            today: Day::today(),
            seen_day: lookup.conversion.as_ref().map(|r| r.day),
            retention_secs: offer.attribution_window_secs + CONVERSION_RETENTION_EXTRA_SECS,
        };
        let answer = |status, record: ConversionRecord, previous| PostbackAnswer {
            status,
            reason: None,
            detail: None,
            conversion_id: record.conversion_id,
            click_id: request.click_id.as_str().to_owned(),
            offer_id: record.offer_id.as_str().to_owned(),
            aff_id: record.aff_id.as_str().to_owned(),
            payout: record.payout,
            currency: offer.currency.as_str().to_owned(),
            conversion_status: record.status,
            previous_status: previous,
        };
        let result = match state.store.apply_conversion(&command).await? {
            ConversionOutcome::Retry => continue,
            ConversionOutcome::Created(record) if record.status == ConversionStatus::Rejected => {
                PostbackAnswer {
                    reason: Some("rejected_by_advertiser"),
                    detail: Some(
                        "the advertiser reported this conversion as rejected; it pays nothing",
                    ),
                    ..answer("rejected", record, None)
                }
            }
            ConversionOutcome::Created(record) => answer("credited", record, None),
            ConversionOutcome::Duplicate(record) => answer("duplicate", record, None),
            ConversionOutcome::Updated { record, previous } => {
                answer("updated", record, Some(previous))
            }
        };
        return Ok(result);
    }
    Err(
        StoreError::Unavailable("the conversion kept changing under concurrent updates".into())
            .into(),
    )
}
