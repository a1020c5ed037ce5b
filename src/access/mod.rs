//! Who is calling the API, and what they may see.
//!
//! Every `/api/v1` request carries `Authorization: Bearer <secret>`. The
//! secret is `CLICKBACK_ADMIN_TOKEN` (the bootstrap admin) or an API key's
//! (`secret.rs`); either becomes a [`Principal`]: a role — admin, one
//! affiliate, one advertiser — and the actor the audit log names. Handlers
//! take a `Principal` (or `routes::admin::Admin`, a principal with the admin
//! role) as an argument: that is what makes a handler authenticated. The
//! reading of the request lives with the routes (`routes/auth.rs`); this
//! module knows nothing of HTTP requests or of the app's state.
//!
//! - `secret.rs`: minting key secrets, their hash, the constant-time check.
//! - `limit.rs`: failed authentication rate-limited per source address.
//! - `usage.rs`: keys' last use, written at most once a minute, off the
//!   request path.
//!
//! A key is looked up in the config cache, never in the store: revoking one
//! bumps the config version, and every instance drops it at its next poll
//! (`CLICKBACK_CONFIG_REFRESH_MS`).

pub mod limit;
pub mod secret;
pub mod usage;

use crate::domain::{AdvertiserId, AffiliateId, KeyRole};
use crate::error::ApiError;

pub use self::limit::FailureLimiter;
pub use self::usage::KeyUsage;

/// Who made a change, as the audit log names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// `CLICKBACK_ADMIN_TOKEN`.
    Bootstrap,
    /// An API key, by id.
    Key(String),
}

impl Actor {
    /// `bootstrap` or the key id.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Bootstrap => "bootstrap",
            Self::Key(id) => id,
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    /// What it may do.
    pub role: KeyRole,
    /// Who it is.
    pub actor: Actor,
}

impl Principal {
    /// Whether it may use the admin API.
    pub fn is_admin(&self) -> bool {
        self.role == KeyRole::Admin
    }

    /// The affiliate of an affiliate key.
    pub fn affiliate(&self) -> Option<&AffiliateId> {
        match &self.role {
            KeyRole::Affiliate { aff_id } => Some(aff_id),
            _ => None,
        }
    }

    /// The advertiser of an advertiser key.
    pub fn advertiser(&self) -> Option<&AdvertiserId> {
        match &self.role {
            KeyRole::Advertiser { advertiser_id } => Some(advertiser_id),
            _ => None,
        }
    }
}

/// What access control keeps in process: shared by every worker.
#[derive(Default)]
pub struct Access {
    /// Failed authentications per source address.
    pub limiter: FailureLimiter,
    /// Keys' last use on their way to the store.
    pub usage: KeyUsage,
}

/// `404 not_found`, what a scoped key gets outside its scope: the same
/// answer as for a path that does not exist, so ids do not leak.
pub fn out_of_scope() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint; see API.md")
}
