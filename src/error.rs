//! The error policy, in one place.
//!
//! - Every error a client sees has the body
//!   `{"status":"rejected","reason":"<snake_case>","detail":"<human text>"}`.
//! - Bad input is a 4xx naming the field and the rule. It is never a 5xx,
//!   and nothing is written before the input is fully parsed.
//! - A store that cannot be reached is a 503, so that advertisers retry.
//!   The redirect never gets here: it degrades instead (see `routes::click`).
//! - Internal details (Redis messages, corrupt data) go to the log, one line
//!   per 5xx, never to the client; secrets and raw IPs go nowhere.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::domain::DomainError;
use crate::store::StoreError;

/// Every `reason` an error body can carry, as the OpenAPI document lists
/// them; a new one must be added here (debug builds check each answer).
pub const REASONS: &[&str] = &[
    "already_delivered",
    "amount_too_large",
    "currency_immutable",
    "currency_mismatch",
    "in_progress",
    "internal_error",
    "invalid_request",
    "invalid_signature",
    "invalid_token",
    "ip_not_allowed",
    "method_not_allowed",
    "not_found",
    "payload_too_large",
    "private_target",
    "replayed",
    "request_timeout",
    "store_unavailable",
    "too_many_failures",
    "unauthorized",
    "unknown_advertiser",
    "unknown_affiliate",
    "unknown_click",
    "unknown_conversion",
    "unknown_delivery",
    "unknown_key",
    "unknown_offer",
    "unsupported_media_type",
];

/// An error answer of the public API.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {reason}: {detail}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable reason, snake_case.
    pub reason: &'static str,
    /// Human explanation, safe to show.
    pub detail: String,
    /// Seconds for `Retry-After` (a 503 says 5 unless told otherwise).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Any status, reason and detail.
    pub fn new(status: StatusCode, reason: &'static str, detail: impl Into<String>) -> Self {
        debug_assert!(
            REASONS.contains(&reason),
            "reason {reason:?} is missing from error::REASONS (and so from the OpenAPI document)"
        );
        Self {
            status,
            reason,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The same answer, telling the client when to try again.
    pub fn retry_after(self, secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..self
        }
    }

    /// 400 `invalid_request`: the request could not be understood.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    /// 404 with a specific reason (`unknown_offer`, `unknown_click`, …).
    pub fn not_found(reason: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason, detail)
    }

    /// 401 `unauthorized` for the admin API.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403 `invalid_token` for postbacks.
    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_token",
            "token is missing or does not match the offer's postback_token",
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self::invalid(e.detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            ref e if e.is_transient() => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store is unreachable; nothing was recorded, please retry",
            ),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the store returned unexpected data; the operator has been alerted in the log",
            ),
        }
        .logged(&e)
    }
}

impl ApiError {
    fn logged(self, cause: &dyn std::error::Error) -> Self {
        log::error!(
            "{} {}: {}",
            self.status.as_u16(),
            self.reason,
            error_chain(cause)
        );
        self
    }
}

/// An error and every cause under it, `: `-separated, for one log line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// The JSON error body of API.md.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    reason: &'a str,
    detail: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header(("Cache-Control", "no-store"));
        match self.retry_after {
            Some(secs) => {
                response.insert_header(("Retry-After", secs.to_string()));
            }
            None if self.status == StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header(("Retry-After", "5"));
            }
            None => {}
        }
        response.json(ErrorBody {
            status: "rejected",
            reason: self.reason,
            detail: &self.detail,
        })
    }
}
