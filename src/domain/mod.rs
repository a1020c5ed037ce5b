//! The vocabulary of affiliate tracking, free of HTTP and of Redis.
//!
//! Requests become these types at the edge (parse, don't validate); the store
//! and the routes only ever see values that are already known to be valid.

pub mod bots;
pub mod cap;
pub mod click;
pub mod conversion;
pub mod counter;
pub mod day;
pub mod delivery;
pub mod destination;
pub mod ids;
pub mod money;
pub mod net;
pub mod offer;
pub mod party;
pub mod postback_mapping;
pub mod postback_url;
pub mod query;
pub mod redirect;
pub mod secret;
pub mod signature;
pub mod visitor;

pub use click::Click;
pub use conversion::{ConversionStatus, Identity};
pub use day::Day;
pub use ids::{AdvertiserId, AffiliateId, ClickId, OfferId};
pub use money::{Currency, Money};
pub use offer::{Affiliate, Offer, Status};
pub use party::{Advertiser, ApiKey, KeyRole};
pub use secret::Secret;

/// Why a value from the outside world was refused.
///
/// `detail` is a human sentence safe to show to the caller: it names the
/// field and the rule, and never echoes secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct DomainError {
    /// What went wrong, for the `detail` of the JSON error body.
    pub detail: String,
}

impl DomainError {
    /// A refusal with a human explanation.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
        }
    }

    /// Prefixes the detail with the name of the field it concerns.
    pub fn in_field(self, field: &str) -> Self {
        Self {
            detail: format!("{field}: {}", self.detail),
        }
    }
}

/// The checks every admin `PUT` body of a named entity shares (offer,
/// affiliate, advertiser): an `id` in the body, accepted so that a `GET`
/// result can be `PUT` back, must be the path's; a name is at most 256 bytes.
pub fn check_id_and_name(
    path_id: &str,
    body_id: Option<&str>,
    name: &str,
) -> Result<(), DomainError> {
    if body_id.is_some_and(|body| body != path_id) {
        return Err(DomainError::invalid(
            "id in the body differs from the id in the path",
        ));
    }
    if name.len() > 256 {
        return Err(DomainError::invalid("name is longer than 256 bytes"));
    }
    Ok(())
}

/// Seconds since the Unix epoch, the one clock every record uses.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
