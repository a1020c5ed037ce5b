//! The answer stage: what a postback's outcome means to the advertiser (HTTP
//! status, JSON reason), to the troubleshooting log and to Prometheus — one
//! table, [`PostbackError::mapping`] and [`PostbackResult::as_str`], so that
//! a new outcome has one place to be named.

use actix_web::http::StatusCode;

use crate::domain::conversion::{ConversionOutcome, ConversionRecord, RejectReason};
use crate::domain::postback_mapping::looks_like_event_or_order;
use crate::domain::signature::SignatureError;
use crate::domain::{ConversionStatus, DomainError, Money, Offer};
use crate::error::ApiError;
use crate::metrics::{Metrics, StoreOperation};
use crate::store::StoreError;

/// What an understood postback did. Every one is answered 200: an advertiser
/// retries anything else, and a retry must never turn into a second credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostbackResult {
    /// A new approved conversion: the affiliate is paid.
    Credited,
    /// A new pending conversion: recorded, not paid until approved.
    Pending,
    /// The conversion exists and nothing changed.
    Duplicate,
    /// The conversion's status moved.
    Updated,
    /// A new conversion recorded as rejected, by a rule or the advertiser.
    Rejected(RejectReason),
}

impl PostbackResult {
    /// The answer's `status`, the log's `outcome` and the metric's `result`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credited => "credited",
            Self::Pending => "pending",
            Self::Duplicate => "duplicate",
            Self::Updated => "updated",
            Self::Rejected(_) => "rejected",
        }
    }
}

/// Something about an answered postback the operator should look at,
/// though the advertiser was answered as usual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostbackWarning {
    /// Answered `duplicate` while carrying a parameter clickback does not
    /// read whose name looks like an event or an order (`goal_id`, `tid`,
    /// `adv_event_id`, …): possibly a second event on the click that no rule
    /// told apart, which the advertiser will not send again.
    IgnoredEventParam,
}

impl PostbackWarning {
    /// Every warning, so that each metric label exists from the start.
    pub const ALL: [PostbackWarning; 1] = [PostbackWarning::IgnoredEventParam];

    /// The log's `warning` and the metric's `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IgnoredEventParam => "ignored_event_param",
        }
    }

    /// The human explanation, for the log's `detail`.
    pub fn detail(self) -> &'static str {
        match self {
            Self::IgnoredEventParam => "answered duplicate, but the postback carries a parameter clickback does not read that looks like an event or order id (see ignored_params): if it names another event, map it to goal or txid in the offer's postback_mapping",
        }
    }

    /// The warning for a postback answered `answer`, whose unread
    /// parameters are `ignored`.
    pub fn of(answer: &PostbackAnswer, ignored: &[String]) -> Option<Self> {
        (answer.result == PostbackResult::Duplicate
            && ignored.iter().any(|name| looks_like_event_or_order(name)))
        .then_some(Self::IgnoredEventParam)
    }
}

/// Creates every warning's series at 0, so a dashboard sees it before the
/// first warning (called once at start-up).
pub fn register_labels(metrics: &Metrics) {
    for warning in PostbackWarning::ALL {
        metrics
            .postback_warnings
            .with_label_values(&[warning.as_str()]);
    }
}

/// Counts a warning: the only place the warning metric moves.
pub fn observe_warning(metrics: &Metrics, warning: PostbackWarning) {
    metrics
        .postback_warnings
        .with_label_values(&[warning.as_str()])
        .inc();
}

/// The answer to a postback that was understood (JSON of API.md §2).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PostbackAnswer {
    /// What happened, typed; `status` spells it.
    #[serde(skip)]
    pub result: PostbackResult,
    /// `credited`, `pending`, `duplicate`, `updated` or `rejected`.
    #[schema(value_type = PostbackResultName)]
    pub status: &'static str,
    /// Why a conversion was rejected, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RejectReasonName>)]
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
    /// The conversion's payout (left out of `PATCH /api/v1/me/conversions`
    /// answers to an advertiser who does not see payouts).
    #[schema(required = false)]
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
    /// The answer for what the store did. `None` for the outcomes that are
    /// not answers (`Retry`, `TooLarge`: the pipeline handles them).
    pub fn from_outcome(click_id: &str, offer: &Offer, outcome: ConversionOutcome) -> Option<Self> {
        let (result, record, previous) = match outcome {
            ConversionOutcome::Created(record) => {
                let result = match record.status {
                    ConversionStatus::Approved => PostbackResult::Credited,
                    ConversionStatus::Pending => PostbackResult::Pending,
                    ConversionStatus::Rejected => PostbackResult::Rejected(
                        record.reason.unwrap_or(RejectReason::ByAdvertiser),
                    ),
                };
                (result, record, None)
            }
            ConversionOutcome::Duplicate(record) => (PostbackResult::Duplicate, record, None),
            ConversionOutcome::Updated { record, previous } => {
                (PostbackResult::Updated, record, Some(previous))
            }
            ConversionOutcome::Retry | ConversionOutcome::TooLarge | ConversionOutcome::Missing => {
                return None
            }
        };
        Some(Self::new(result, click_id, offer, record, previous))
    }

    fn new(
        result: PostbackResult,
        click_id: &str,
        offer: &Offer,
        record: ConversionRecord,
        previous: Option<ConversionStatus>,
    ) -> Self {
        let (reason, detail) = match result {
            PostbackResult::Rejected(reason) => (Some(reason.as_str()), Some(reason.detail())),
            _ => (None, None),
        };
        Self {
            result,
            status: result.as_str(),
            reason,
            detail,
            conversion_id: record.conversion_id,
            click_id: click_id.to_owned(),
            offer_id: record.offer_id.as_str().to_owned(),
            aff_id: record.aff_id.as_str().to_owned(),
            payout: record.payout,
            currency: offer.currency.as_str().to_owned(),
            conversion_status: record.status,
            previous_status: previous,
        }
    }

    /// Whether this postback made an approved conversion out of nothing or
    /// out of a pending one: what the conversion and payout metrics count.
    pub fn newly_approved(&self) -> bool {
        self.conversion_status == ConversionStatus::Approved
            && matches!(
                self.result,
                PostbackResult::Credited | PostbackResult::Updated
            )
    }
}

/// Why a postback was refused. Nothing was written for any of them.
#[derive(Debug, thiserror::Error)]
pub enum PostbackError {
    /// Malformed, or inconsistent with the offer.
    #[error("{0}")]
    Invalid(#[from] DomainError),
    /// The body is neither a form nor JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
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
    /// Counting this conversion would take a day's money counter past its bound.
    #[error("amount too large to count")]
    TooLarge,
    /// The sender's IP is not on the offer's allow-list.
    #[error("sender IP not allowed")]
    IpNotAllowed,
    /// The offer requires signed postbacks and this one's signature is wrong.
    #[error("invalid signature")]
    InvalidSignature(SignatureError),
    /// A signed postback seen before.
    #[error("replayed signature")]
    Replayed,
    /// An identical postback is deciding this conversion right now and did
    /// not finish in time: not a failure of anything, the retry will find
    /// its result.
    #[error("an identical postback is still being processed")]
    InFlight,
    /// The conversion kept changing under concurrent status changes.
    #[error("the conversion kept changing under concurrent updates")]
    Contended,
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How one refusal is answered and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// The JSON `reason` (and the log's `outcome`).
    pub reason: &'static str,
    /// The `result` label of `clickback_postbacks_total`.
    pub label: &'static str,
}

impl PostbackError {
    /// The one table of refusals: HTTP status, JSON reason, metric label.
    pub fn mapping(&self) -> Mapping {
        let (status, reason, label) = match self {
            Self::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request", "invalid"),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "invalid",
            ),
            Self::InvalidToken => (StatusCode::FORBIDDEN, "invalid_token", "invalid_token"),
            Self::UnknownClick => (StatusCode::NOT_FOUND, "unknown_click", "unknown_click"),
            Self::CurrencyMismatch { .. } => {
                (StatusCode::BAD_REQUEST, "currency_mismatch", "invalid")
            }
            Self::TooLarge => (StatusCode::BAD_REQUEST, "amount_too_large", "invalid"),
            Self::IpNotAllowed => (StatusCode::FORBIDDEN, "ip_not_allowed", "ip_not_allowed"),
            Self::InvalidSignature(_) => (
                StatusCode::FORBIDDEN,
                "invalid_signature",
                "invalid_signature",
            ),
            Self::Replayed => (StatusCode::FORBIDDEN, "replayed", "replayed"),
            Self::InFlight => (StatusCode::SERVICE_UNAVAILABLE, "in_progress", "in_flight"),
            Self::Contended => (StatusCode::SERVICE_UNAVAILABLE, "in_progress", "contended"),
            Self::Store(e) if e.is_transient() => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "store_error",
            ),
            Self::Store(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "store_error",
            ),
        };
        Mapping {
            status,
            reason,
            label,
        }
    }

    /// The human explanation, safe to show: never a Redis message or a secret.
    pub fn detail(&self) -> String {
        match self {
            Self::Invalid(e) => e.detail.clone(),
            Self::UnsupportedMediaType => {
                "send application/x-www-form-urlencoded or application/json".into()
            }
            Self::InvalidToken => {
                "token is missing or does not match the offer's postback_token".into()
            }
            Self::UnknownClick => "no click with this id, or its attribution window is over".into(),
            Self::CurrencyMismatch { given, expected } => {
                format!("currency {given} differs from the offer's currency {expected}")
            }
            Self::TooLarge => "amount: this conversion would take the day's totals of this offer and affiliate past what clickback counts exactly (9,223,372,036,854 units); nothing was recorded".into(),
            Self::IpNotAllowed => "this offer accepts postbacks only from its allow-listed IPs; ask the network to add yours".into(),
            Self::InvalidSignature(SignatureError::Missing) => "this offer requires signed postbacks: send ts and sig (see the signing guide)".into(),
            Self::InvalidSignature(SignatureError::Expired) => "ts is more than 5 minutes away from the server's clock; sign each request afresh".into(),
            Self::InvalidSignature(SignatureError::Mismatch) => "sig does not match the request's parameters".into(),
            Self::Replayed => "this signature was already used; sign each request afresh with a new ts".into(),
            Self::InFlight | Self::Contended => "an identical postback is being processed; nothing was recorded by this one, please retry".into(),
            Self::Store(e) if e.is_transient() => "the store is unreachable; nothing was recorded, please retry".into(),
            Self::Store(_) => "the store returned unexpected data; the operator has been alerted in the log".into(),
        }
    }
}

impl From<&PostbackError> for ApiError {
    fn from(error: &PostbackError) -> Self {
        let mapping = error.mapping();
        if mapping.status.is_server_error() && matches!(error, PostbackError::Store(_)) {
            // One line per 5xx that an operator must look at; waiting on an
            // identical postback is not one.
            log::error!(
                "postback answered {} {}: {}",
                mapping.status.as_u16(),
                mapping.reason,
                crate::error::error_chain(error)
            );
        }
        ApiError::new(mapping.status, mapping.reason, error.detail())
    }
}

/// Moves the postback metrics for one outcome: the only place they move.
pub fn observe(metrics: &Metrics, outcome: &Result<PostbackAnswer, PostbackError>) {
    match outcome {
        Ok(answer) => {
            metrics
                .postbacks
                .with_label_values(&[answer.result.as_str()])
                .inc();
            if answer.newly_approved() {
                metrics
                    .conversions
                    .with_label_values(&[&answer.offer_id])
                    .inc();
                let units = answer.payout.micros() as f64 / 1_000_000.0;
                metrics
                    .payout
                    .with_label_values(&[&answer.offer_id, &answer.currency])
                    .inc_by(units);
            }
        }
        Err(error) => {
            metrics
                .postbacks
                .with_label_values(&[error.mapping().label])
                .inc();
            if matches!(error, PostbackError::Store(e) if e.is_transient()) {
                metrics.store_error(StoreOperation::Postback);
            }
        }
    }
}

/// A postback answer's `status`: `PostbackResult::as_str`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PostbackResultName {
    /// A new approved conversion: the affiliate is paid.
    Credited,
    /// A new pending conversion.
    Pending,
    /// The conversion exists and nothing changed.
    Duplicate,
    /// The conversion's status moved.
    Updated,
    /// A new conversion recorded as rejected.
    Rejected,
}

/// Why a conversion was recorded as rejected: `RejectReason::as_str`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum RejectReasonName {
    /// Sooner after the click than the offer's `min_ctc_secs`.
    TooFast,
    /// A cap of the offer was full.
    CapReached,
    /// The advertiser said `status=rejected`.
    RejectedByAdvertiser,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_on_an_identical_postback_is_not_a_store_error() {
        let metrics = Metrics::new().expect("metrics");
        observe(&metrics, &Err(PostbackError::InFlight));
        let text = metrics.render().expect("render");
        assert!(
            text.contains(r#"clickback_postbacks_total{result="in_flight"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"clickback_store_errors_total{operation="postback"} 0"#),
            "{text}"
        );
        assert_eq!(
            PostbackError::InFlight.mapping().status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn every_refusal_is_a_4xx_or_a_retryable_5xx() {
        let refusals = [
            PostbackError::Invalid(DomainError::invalid("x")),
            PostbackError::UnsupportedMediaType,
            PostbackError::InvalidToken,
            PostbackError::UnknownClick,
            PostbackError::TooLarge,
            PostbackError::IpNotAllowed,
            PostbackError::InvalidSignature(SignatureError::Missing),
            PostbackError::Replayed,
        ];
        for refusal in refusals {
            assert!(refusal.mapping().status.is_client_error(), "{refusal:?}");
        }
    }
}
