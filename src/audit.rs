//! The audit log: every change made through the API — offers, affiliates,
//! advertisers, API keys, an advertiser's manual status change — with who
//! made it (an API key's id, or `bootstrap` for `CLICKBACK_ADMIN_TOKEN`),
//! when, and the object before and after, secrets redacted.
//!
//! The entry is filed right after the change succeeded. If the store takes
//! the change and then fails on the entry (it went away between the two
//! round trips), the change stands: the failure is logged at ERROR and
//! counted in `clickback_store_errors_total{operation="audit"}`.
//!
//! Bounded: the newest [`RETENTION`]`.keep` entries, none older than 90 days.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use serde_json::Value;

use crate::access::Actor;
use crate::clock::Clock;
use crate::domain::ids::base64url;
use crate::metrics::StoreOperation;
use crate::state::AppState;
use crate::store::{AuditLine, AuditRetention};

/// How much of the audit log is kept.
pub const RETENTION: AuditRetention = AuditRetention {
    keep: 10_000,
    max_age_secs: 90 * 86_400,
};

/// Fields whose values never enter the log, at any depth.
const SECRET_FIELDS: [&str; 4] = [
    "postback_token",
    "postback_signing_secret",
    "secret",
    "secret_hash",
];

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `PUT /api/v1/offers/{id}`.
    PutOffer,
    /// `PUT /api/v1/affiliates/{id}`.
    PutAffiliate,
    /// `PUT /api/v1/advertisers/{id}`.
    PutAdvertiser,
    /// `POST /api/v1/keys`.
    CreateKey,
    /// `DELETE /api/v1/keys/{id}`.
    RevokeKey,
    /// `PATCH /api/v1/me/conversions/{id}`.
    ChangeConversionStatus,
}

impl Action {
    /// The entry's `action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PutOffer => "offer.put",
            Self::PutAffiliate => "affiliate.put",
            Self::PutAdvertiser => "advertiser.put",
            Self::CreateKey => "key.create",
            Self::RevokeKey => "key.revoke",
            Self::ChangeConversionStatus => "conversion.status",
        }
    }
}

/// One entry as the API shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Entry<'a> {
    id: &'a str,
    at: u64,
    actor: &'a str,
    action: &'static str,
    target: &'a str,
    before: Value,
    after: Value,
}

/// A new entry id: a process-wide sequence (16 hex digits, so that text
/// order is number order) that starts from the start-up time in µs, so
/// entries of one millisecond list in the order they were made, also
/// across a restart; then random characters, so two instances never collide.
fn entry_id() -> String {
    static SEQUENCE: LazyLock<AtomicU64> =
        LazyLock::new(|| AtomicU64::new(crate::clock::SystemClock.now_ms().saturating_mul(1000)));
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!(
        "{seq:016x}-{}",
        base64url(&uuid::Uuid::new_v4().as_bytes()[..6])
    )
}

/// `value` with every secret field's value replaced by `"[redacted]"`.
pub fn redact(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (name, field) in map.iter_mut() {
                    if SECRET_FIELDS.contains(&name.as_str()) && !field.is_null() {
                        *field = Value::String("[redacted]".into());
                    } else {
                        walk(field);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// The JSON of anything serialisable, `null` if it cannot be.
pub fn json_of<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Files one change: `target` (the id of what changed) went from `before`
/// (`null`: it did not exist) to `after` (`null`: it is gone).
pub async fn record(
    state: &AppState,
    actor: &Actor,
    action: Action,
    target: &str,
    before: Value,
    after: Value,
) {
    let at_ms = state.clock.now_ms();
    let id = entry_id();
    let entry = Entry {
        id: &id,
        at: at_ms / 1000,
        actor: actor.as_str(),
        action: action.as_str(),
        target,
        before: redact(before),
        after: redact(after),
    };
    let json = match serde_json::to_string(&entry) {
        Ok(json) => json,
        Err(e) => {
            log::error!("audit entry for {} not written: {e}", action.as_str());
            return;
        }
    };
    let line = AuditLine { id, at_ms, json };
    if let Err(e) = state.store.append_audit(&line, RETENTION).await {
        state.metrics.store_error(StoreOperation::Audit);
        log::error!(
            "audit entry for {} of {target} by {} not written (the change stands): {e}",
            action.as_str(),
            actor.as_str()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth_and_nulls_stay_null() {
        let value = serde_json::json!({
            "postback_token": "t0k3n",
            "postback_signing_secret": null,
            "name": "shop",
            "nested": [{"secret": "s"}]
        });
        let redacted = redact(value).to_string();
        assert!(!redacted.contains("t0k3n") && !redacted.contains("\"s\""));
        assert!(redacted.contains("\"postback_signing_secret\":null"));
        assert!(redacted.contains("\"name\":\"shop\""));
    }
}
