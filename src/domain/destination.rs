//! Server-side destinations of an offer's conversions (placeholder: the
//! configuration types the delivery plumbing is written against).

use serde::{Deserialize, Serialize};

use super::{ConversionStatus, DomainError};

/// A destination's name within its offer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DestinationId(String);

impl DestinationId {
    /// Reads an id.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::invalid("destination id"))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationKind {
    /// GA4.
    Ga4,
    /// Meta.
    Meta,
    /// TikTok.
    TikTok,
    /// Webhook.
    Webhook,
}

impl DestinationKind {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ga4 => "ga4",
            Self::Meta => "meta",
            Self::TikTok => "tiktok",
            Self::Webhook => "webhook",
        }
    }
}

/// A write-only credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Where to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationTarget {
    /// A signed webhook.
    Webhook {
        /// URL.
        url: String,
        /// HMAC key.
        secret: Secret,
    },
}

/// One destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Its id.
    pub id: DestinationId,
    /// Statuses it fires for.
    pub statuses: Vec<ConversionStatus>,
    /// Event name override.
    pub event_name: Option<String>,
    /// Where to.
    pub target: DestinationTarget,
}

/// The JSON form.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    /// Id.
    #[serde(default)]
    pub id: Option<String>,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// Statuses.
    #[serde(default)]
    pub statuses: Option<Vec<String>>,
}

impl Destination {
    /// The platform.
    pub fn kind(&self) -> DestinationKind {
        DestinationKind::Webhook
    }

    /// Whether it fires for `status`.
    pub fn fires_for(&self, status: ConversionStatus) -> bool {
        self.statuses.contains(&status)
    }

    /// Validates a PUT's list.
    pub fn from_specs(
        specs: Vec<DestinationSpec>,
        previous: &[Destination],
        _allow_private: bool,
    ) -> Result<Vec<Destination>, DomainError> {
        let _ = previous;
        specs.into_iter().map(Self::from_stored).collect()
    }

    /// The stored form.
    pub fn stored(&self) -> DestinationSpec {
        let DestinationTarget::Webhook { url, secret } = &self.target;
        DestinationSpec {
            id: Some(self.id.as_str().to_owned()),
            kind: "webhook".into(),
            url: Some(url.clone()),
            secret: Some(secret.expose().to_owned()),
            statuses: None,
        }
    }

    /// Inverse of stored().
    pub fn from_stored(spec: DestinationSpec) -> Result<Destination, DomainError> {
        Ok(Destination {
            id: DestinationId::parse(spec.id.as_deref().unwrap_or("webhook"))?,
            statuses: vec![ConversionStatus::Approved],
            event_name: None,
            target: DestinationTarget::Webhook {
                url: spec.url.unwrap_or_default(),
                secret: Secret(spec.secret.unwrap_or_default()),
            },
        })
    }

    /// The API answer.
    pub fn redacted(&self) -> serde_json::Value {
        let mut spec = serde_json::to_value(self.stored()).unwrap_or_default();
        if let Some(map) = spec.as_object_mut() {
            map.remove("secret");
            map.insert("secret_set".into(), true.into());
        }
        spec
    }
}
