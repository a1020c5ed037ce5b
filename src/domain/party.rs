//! The parties of a network besides the operator: advertisers, and the API
//! keys through which affiliates, advertisers and further admins reach the
//! API. Both are configuration: stored with offers and affiliates and held
//! in every instance's config cache, so a change (a revoked key) reaches
//! every instance with the config version.

use serde::{Deserialize, Serialize};

use super::offer::Status;
use super::{AdvertiserId, AffiliateId, DomainError};

/// The body of `PUT /api/v1/advertisers/{advertiser_id}`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvertiserInput {
    /// Accepted so that a `GET` result can be `PUT` back; must match the path.
    #[serde(default)]
    pub id: Option<String>,
    /// A human name.
    #[serde(default)]
    pub name: String,
    /// Active or paused (informational: its offers have their own status).
    #[serde(default)]
    pub status: Status,
    /// Whether the advertiser's keys may see what affiliates are paid.
    #[serde(default)]
    pub show_payouts: bool,
}

/// An advertiser, also its stored and answered JSON form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Advertiser {
    /// The operator's identifier; offers name it in `advertiser_id`.
    pub id: AdvertiserId,
    /// A human name.
    pub name: String,
    /// Active or paused.
    pub status: Status,
    /// Whether its keys see affiliate payouts (in stats, conversions, the
    /// postback log). Networks usually keep their margin to themselves, so
    /// the default is no.
    #[serde(default)]
    pub show_payouts: bool,
}

impl Advertiser {
    /// Validates an admin `PUT` body for the advertiser at `id`.
    pub fn from_input(id: AdvertiserId, input: AdvertiserInput) -> Result<Self, DomainError> {
        super::check_id_and_name(id.as_str(), input.id.as_deref(), &input.name)?;
        Ok(Self {
            id,
            name: input.name,
            status: input.status,
            show_payouts: input.show_payouts,
        })
    }
}

/// What a key may do: everything, or one party's own data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum KeyRole {
    /// The whole admin API, like `CLICKBACK_ADMIN_TOKEN`.
    Admin,
    /// One affiliate's offers, rows, conversions and deliveries.
    Affiliate {
        /// The affiliate.
        aff_id: AffiliateId,
    },
    /// One advertiser's offers, rows, conversions and postback log.
    Advertiser {
        /// The advertiser.
        advertiser_id: AdvertiserId,
    },
}

impl KeyRole {
    /// `admin`, `affiliate` or `advertiser`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Affiliate { .. } => "affiliate",
            Self::Advertiser { .. } => "advertiser",
        }
    }
}

/// Longest key name accepted (bytes).
pub const MAX_KEY_NAME_LEN: usize = 256;

/// A stored API key. The secret itself is never stored: only its SHA-256,
/// which is enough to recognise it and useless to anyone who reads the store
/// (the secret is 256 random bits, so the hash cannot be reversed by search).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public identifier: listed, revoked and audited under this; also the
    /// secret's first part, so a presented secret names its key.
    pub id: String,
    /// What the operator calls it ("Acme's reporting script").
    pub name: String,
    /// What it may do.
    #[serde(flatten)]
    pub role: KeyRole,
    /// base64url SHA-256 of the whole secret.
    pub secret_hash: String,
    /// When it was created, Unix seconds.
    pub created_at: u64,
}

impl std::fmt::Debug for ApiKey {
    /// Leaves the hash out: nothing about a secret reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("secret_hash", &"[redacted]")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The body of `POST /api/v1/keys`: `{"role":"affiliate","aff_id":..}`,
/// `{"role":"advertiser","advertiser_id":..}` or `{"role":"admin"}`, and a
/// `name`. Read flat and strictly, so that a party id under the wrong role
/// is refused rather than ignored.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    /// `admin`, `affiliate` or `advertiser`.
    #[schema(value_type = RoleName)]
    pub role: String,
    /// The affiliate of an affiliate key.
    #[serde(default)]
    pub aff_id: Option<AffiliateId>,
    /// The advertiser of an advertiser key.
    #[serde(default)]
    pub advertiser_id: Option<AdvertiserId>,
    /// What the operator calls it.
    #[serde(default)]
    pub name: String,
}

impl KeyInput {
    /// The role with its party, and the name (the party's existence is the
    /// route's business: it knows the configuration).
    pub fn parse(self) -> Result<(KeyRole, String), DomainError> {
        if self.name.len() > MAX_KEY_NAME_LEN {
            return Err(DomainError::invalid(format!(
                "name is longer than {MAX_KEY_NAME_LEN} bytes"
            )));
        }
        let role = match (self.role.as_str(), self.aff_id, self.advertiser_id) {
            ("admin", None, None) => KeyRole::Admin,
            ("affiliate", Some(aff_id), None) => KeyRole::Affiliate { aff_id },
            ("advertiser", None, Some(advertiser_id)) => KeyRole::Advertiser { advertiser_id },
            ("admin" | "affiliate" | "advertiser", _, _) => {
                return Err(DomainError::invalid(
                    "an admin key names no party, an affiliate key exactly aff_id, an advertiser key exactly advertiser_id",
                ))
            }
            _ => {
                return Err(DomainError::invalid(
                    "role must be admin, affiliate or advertiser",
                ))
            }
        };
        Ok((role, self.name))
    }
}

/// The `role` of a new key.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum RoleName {
    /// The whole admin API.
    Admin,
    /// One affiliate's own data (`aff_id`).
    Affiliate,
    /// One advertiser's own data (`advertiser_id`).
    Advertiser,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<(KeyRole, String), String> {
        serde_json::from_str::<KeyInput>(json)
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|e| e.detail)
    }

    #[test]
    fn key_bodies_name_their_role_and_party() {
        assert_eq!(
            parse(r#"{"role":"affiliate","aff_id":"a1","name":"x"}"#),
            Ok((
                KeyRole::Affiliate {
                    aff_id: AffiliateId::parse("a1").expect("id")
                },
                "x".to_owned()
            ))
        );
        assert_eq!(
            parse(r#"{"role":"admin"}"#),
            Ok((KeyRole::Admin, String::new()))
        );
        for bad in [
            r#"{"role":"affiliate"}"#,
            r#"{"role":"advertiser","aff_id":"a1"}"#,
            r#"{"role":"admin","aff_id":"a1"}"#,
            r#"{"role":"root"}"#,
            r#"{"role":"affiliate","aff_id":"a 1"}"#,
            r#"{"name":"no role"}"#,
            r#"{"role":"admin","surprise":1}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stored_key_reads_back_with_its_role() {
        let key = ApiKey {
            id: "k1".into(),
            name: "n".into(),
            role: KeyRole::Advertiser {
                advertiser_id: AdvertiserId::parse("adv").expect("id"),
            },
            secret_hash: "h".into(),
            created_at: 7,
        };
        let json = serde_json::to_string(&key).expect("json");
        assert_eq!(serde_json::from_str::<ApiKey>(&json).expect("back"), key);
    }

    #[test]
    fn a_keys_debug_output_never_shows_its_hash() {
        let key = ApiKey {
            id: "k1".into(),
            name: "n".into(),
            role: KeyRole::Admin,
            secret_hash: "the-hash".into(),
            created_at: 0,
        };
        assert!(!format!("{key:?}").contains("the-hash"));
    }
}
