//! Crediting a conversion from an advertiser's server-to-server postback.
//!
//! Two round trips: one pipeline reads the click and any existing conversion
//! with the same identity; then, once the token and the payout are settled in
//! Rust, one Lua script creates or moves the conversion and its counters
//! atomically. However many identical postbacks race, the script runs them
//! one at a time and exactly one of them credits.

use std::net::IpAddr;

use crate::caps;
use crate::domain::conversion::{ConversionCommand, ConversionOutcome, ConversionRecord};
use crate::domain::ids::base64url;
use crate::domain::offer::PayoutRule;
use crate::domain::query::Params;
use crate::domain::signature::{self, SignatureError};
use crate::domain::{
    unix_now, ClickId, ConversionStatus, Currency, Day, DomainError, Identity, Money, OfferId,
};
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
    /// The sender's IP is not on the offer's allow-list.
    #[error("sender IP not allowed")]
    IpNotAllowed,
    /// The offer requires signed postbacks and this one's signature is wrong.
    #[error("invalid signature")]
    InvalidSignature(SignatureError),
    /// A signed postback seen before.
    #[error("replayed signature")]
    Replayed,
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

/// What the route knows about the request beyond its parameters.
#[derive(Debug, Clone, Copy)]
pub struct PostbackContext<'a> {
    /// The sender's IP (the advertiser's server), for the offer's allow-list.
    pub remote_ip: Option<IpAddr>,
    /// Every parameter received, for signature verification.
    pub params: &'a Params,
}

/// A postback's result, with the offer it concerned when that became known
/// (the troubleshooting log files it under that offer).
#[derive(Debug)]
pub struct PostbackOutcome {
    /// The answer, or why there is none.
    pub result: Result<PostbackAnswer, PostbackError>,
    /// The click's offer, once the click or conversion was found.
    pub offer_id: Option<OfferId>,
}

/// Credits, updates, de-duplicates or rejects one conversion.
pub async fn convert(
    state: &AppState,
    request: &PostbackRequest,
    context: PostbackContext<'_>,
) -> PostbackOutcome {
    let mut offer_id = None;
    let result = convert_inner(state, request, context, &mut offer_id).await;
    PostbackOutcome { result, offer_id }
}

async fn convert_inner(
    state: &AppState,
    request: &PostbackRequest,
    context: PostbackContext<'_>,
    seen_offer: &mut Option<OfferId>,
) -> Result<PostbackAnswer, PostbackError> {
    let mut claimed_signature: Option<String> = None;
    // A status change racing a conversion over UTC midnight asks for a fresh
    // look-up; three attempts are plenty for a window that small.
    let mut retries = 0;
    // Waits for an identical postback that is deciding a capped conversion.
    let mut waits = 0;
    while retries < 3 {
        let lookup = state
            .store
            .lookup_conversion(&request.click_id, &request.identity)
            .await?;
        let (offer_id, aff_id) = match (&lookup.click, &lookup.conversion) {
            (Some(click), _) => (click.offer_id.clone(), click.aff_id.clone()),
            (None, Some(record)) => (record.offer_id.clone(), record.aff_id.clone()),
            (None, None) => return Err(PostbackError::UnknownClick),
        };
        *seen_offer = Some(offer_id.clone());
        let offer = state
            .cache
            .offer(offer_id.as_str())
            .ok_or(PostbackError::UnknownClick)?;

        if !offer.postback_ips.is_empty()
            && !context
                .remote_ip
                .is_some_and(|ip| offer.postback_ips.iter().any(|net| net.contains(ip)))
        {
            return Err(PostbackError::IpNotAllowed);
        }
        let token_ok = request
            .token
            .as_deref()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), offer.postback_token.as_bytes()));
        if !token_ok {
            return Err(PostbackError::InvalidToken);
        }
        if let (Some(secret), None) = (&offer.postback_signing_secret, &claimed_signature) {
            signature::verify(secret, context.params.pairs(), unix_now())
                .map_err(PostbackError::InvalidSignature)?;
            let sig = context
                .params
                .get(&["sig"])?
                .unwrap_or("")
                .to_ascii_lowercase();
            if !state
                .store
                .claim(&sig, 2 * signature::MAX_SKEW_SECS)
                .await?
            {
                return Err(PostbackError::Replayed);
            }
            claimed_signature = Some(sig);
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
        let today = Day::today();
        let mut command = ConversionCommand {
            click_id: request.click_id.clone(),
            identity: request.identity.clone(),
            offer_id: offer_id.clone(),
            aff_id: aff_id.clone(),
            status: request.status,
            payout,
            revenue: offer.revenue.or(request.amount),
            new_conversion_id: base64url(uuid::Uuid::new_v4().as_bytes()),
            today,
            seen_day: lookup.conversion.as_ref().map(|r| r.day),
            retention_secs: offer.attribution_window_secs + CONVERSION_RETENTION_EXTRA_SECS,
            reason: None,
        };

        // Offer rules judge new conversions only: a decision, once recorded,
        // is never revisited by a retry.
        let mut reserved = Vec::new();
        let mut decision_claim: Option<String> = None;
        if let (Some(click), None) = (&lookup.click, &lookup.conversion) {
            if request.status != ConversionStatus::Rejected {
                if unix_now().saturating_sub(click.created_at) < offer.min_ctc_secs {
                    command.status = ConversionStatus::Rejected;
                    command.reason = Some(TOO_FAST);
                } else if !offer.caps.is_empty() {
                    // Identical postbacks racing here would each reserve cap
                    // room, and one that found the cap full of the others'
                    // reservations could record the conversion as cap_reached
                    // although the cap has room. One of them decides; the
                    // others wait for its conversion and answer duplicate.
                    let claim = format!(
                        "{}|{}",
                        request.click_id.as_str(),
                        request.identity.key_suffix()
                    );
                    if !state.store.claim(&claim, DECISION_CLAIM_TTL_SECS).await? {
                        waits += 1;
                        if waits > MAX_DECISION_WAITS {
                            release(state, &claimed_signature).await;
                            return Err(StoreError::Unavailable(
                                "an identical postback is still being processed".into(),
                            )
                            .into());
                        }
                        tokio::time::sleep(DECISION_WAIT).await;
                        continue;
                    }
                    decision_claim = Some(claim);
                    let entries =
                        caps::entries(&offer, &aff_id, payout.unwrap_or(Money::ZERO), today);
                    match state.store.reserve_caps(&offer.id, &entries).await {
                        Ok(Some(_)) => {
                            command.status = ConversionStatus::Rejected;
                            command.reason = Some(CAP_REACHED);
                        }
                        Ok(None) => reserved = entries,
                        Err(e) => {
                            release(state, &decision_claim).await;
                            return Err(e.into());
                        }
                    }
                }
            }
        }

        let applied = state.store.apply_conversion(&command).await;
        let outcome = match applied {
            Ok(ConversionOutcome::Created(record)) => Ok(ConversionOutcome::Created(record)),
            other => {
                // The reservation was for a conversion this postback did not create.
                if !reserved.is_empty() {
                    if let Err(e) = state.store.release_caps(&offer.id, &reserved).await {
                        log::warn!("cap reservation of offer {} not released: {e}", offer.id);
                    }
                }
                other
            }
        };
        // Decided (and any reservation given back): from now on a look-up
        // finds the conversion, or after a failure the next postback decides
        // afresh.
        release(state, &decision_claim).await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                // Nothing was written: let the advertiser retry the same request.
                release(state, &claimed_signature).await;
                return Err(e.into());
            }
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
        let result = match outcome {
            ConversionOutcome::Retry => {
                retries += 1;
                continue;
            }
            ConversionOutcome::Created(record) if record.status == ConversionStatus::Rejected => {
                let (reason, detail) = match record.reason.as_deref() {
                    Some(TOO_FAST) => (TOO_FAST, "the conversion came sooner after the click than the offer's min_ctc_secs allows"),
                    Some(CAP_REACHED) => (CAP_REACHED, "a cap of this offer is full; the conversion is recorded as rejected"),
                    _ => ("rejected_by_advertiser", "the advertiser reported this conversion as rejected; it pays nothing"),
                };
                PostbackAnswer {
                    reason: Some(reason),
                    detail: Some(detail),
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

/// Gives back a claim this postback holds, if any. A failure to release only
/// means the claim runs out by itself (its TTL).
async fn release(state: &AppState, claim: &Option<String>) {
    if let Some(claim) = claim {
        let _ = state.store.release_claim(claim).await;
    }
}

/// One line of an offer's postback log (`GET /api/v1/postbacks`): what came
/// in and what clickback made of it. Never the token or the signature.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PostbackLogEntry {
    /// Unix seconds when it was answered.
    pub at: u64,
    /// The sender's IP (the advertiser's server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    /// The click id, when the postback could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click_id: Option<String>,
    /// The transaction id, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txid: Option<String>,
    /// The goal, when no txid was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// The status the advertiser reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_status: Option<ConversionStatus>,
    /// The amount reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// HTTP status answered.
    pub http_status: u16,
    /// `credited`, `duplicate`, `updated`, `rejected`, or the error reason
    /// (`unknown_click`, `invalid_token`, `ip_not_allowed`, …).
    pub outcome: String,
    /// Why, for rejections and errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The human explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The conversion concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_id: Option<String>,
    /// Its payout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payout: Option<Money>,
}

impl PostbackLogEntry {
    /// Describes one answered postback.
    pub fn new(
        request: Option<&PostbackRequest>,
        remote_ip: Option<IpAddr>,
        outcome: &Result<PostbackAnswer, crate::error::ApiError>,
    ) -> Self {
        let (txid, goal) = match request.map(|r| &r.identity) {
            Some(Identity::Txid(t)) => (Some(t.clone()), None),
            Some(Identity::Goal(g)) => (None, Some(g.clone())),
            None => (None, None),
        };
        let mut entry = Self {
            at: unix_now(),
            remote_ip: remote_ip.map(|ip| ip.to_string()),
            click_id: request.map(|r| r.click_id.as_str().to_owned()),
            txid,
            goal,
            requested_status: request.map(|r| r.status),
            amount: request.and_then(|r| r.amount),
            http_status: 200,
            outcome: String::new(),
            reason: None,
            detail: None,
            conversion_id: None,
            payout: None,
        };
        match outcome {
            Ok(answer) => {
                entry.outcome = answer.status.to_owned();
                entry.reason = answer.reason.map(str::to_owned);
                entry.detail = answer.detail.map(str::to_owned);
                entry.conversion_id = Some(answer.conversion_id.clone());
                entry.payout = Some(answer.payout);
            }
            Err(error) => {
                entry.http_status = error.status.as_u16();
                entry.outcome = error.reason.to_owned();
                entry.reason = Some(error.reason.to_owned());
                entry.detail = Some(error.detail.clone());
            }
        }
        entry
    }
}

/// How long the claim of one postback deciding a new capped conversion lasts
/// if its holder dies before releasing it.
const DECISION_CLAIM_TTL_SECS: u64 = 30;
/// Pause between looks while an identical postback decides a capped conversion.
const DECISION_WAIT: std::time::Duration = std::time::Duration::from_millis(10);
/// Looks before giving up with 503 (about two seconds): the sender retries.
const MAX_DECISION_WAITS: u32 = 200;

/// Reason of a conversion faster than the offer's minimum click-to-conversion time.
pub const TOO_FAST: &str = "too_fast";
/// Reason of a conversion over one of the offer's caps.
pub const CAP_REACHED: &str = "cap_reached";
