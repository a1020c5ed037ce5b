//! Server-side destinations of an offer: where clickback forwards each of its
//! conversions besides the affiliate's postback (docs/destinations.md).
//!
//! A destination is an ad or analytics platform (GA4 Measurement Protocol,
//! Meta Conversions API, TikTok Events API) or a signed JSON webhook. An offer
//! has at most [`MAX_DESTINATIONS`]; each has an id unique within the offer,
//! the statuses it fires for and, optionally, the event name to report.
//!
//! The admin API speaks [`DestinationSpec`]; [`Destination::from_specs`] turns
//! a `PUT`'s list into checked [`Destination`]s. Credentials are [`Secret`]s:
//! they never appear in `Debug`, in an API answer ([`Destination::redacted`]
//! shows `"<field>_set": true` instead) or in an error; only the stored form
//! ([`Destination::stored`]) carries them, for the config store.
//!
//! A webhook URL naming an internal address as written (loopback, private,
//! link-local, metadata, `localhost`) is refused unless private targets are
//! allowed, exactly like an affiliate's postback URL; names are checked again
//! when resolved at delivery time.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::postback_url::PostbackTemplate;
use super::redirect::check_url_head;
use super::{ConversionStatus, DomainError, Secret};

/// The most destinations one offer may have: each conversion fans out to all
/// of them, so the bound keeps one postback's work bounded.
pub const MAX_DESTINATIONS: usize = 10;

/// The longest credential accepted (Meta's system-user tokens run to a few
/// hundred characters).
const MAX_SECRET_LEN: usize = 1024;

/// The shortest webhook signing secret: an HMAC key guessable by brute force
/// would let anyone forge conversions at the receiver.
const MIN_WEBHOOK_SECRET_LEN: usize = 16;

/// The longest custom event name (GA4's limit is 40; the others accept more,
/// but nobody needs more than this).
const MAX_EVENT_NAME_LEN: usize = 64;

/// A destination's id within its offer: `[a-z0-9_-]{1,32}`, so it can stand in
/// a delivery id, a metric-free log line and a URL path unescaped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DestinationId(String);

impl DestinationId {
    /// Accepts 1–32 characters of `a-z`, `0-9`, `_` and `-`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let valid = (1..=32).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::invalid(
                "must be 1 to 32 characters of a-z, 0-9, _ and -",
            ))
        }
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which platform a destination reports to; decides the request's shape and
/// how its answer is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DestinationKind {
    /// Google Analytics 4, Measurement Protocol.
    Ga4,
    /// Meta (Facebook, Instagram) Conversions API.
    Meta,
    /// TikTok Events API.
    TikTok,
    /// A JSON `POST` signed with HMAC-SHA256, to any receiver.
    Webhook,
}

impl DestinationKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [DestinationKind; 4] = [Self::Ga4, Self::Meta, Self::TikTok, Self::Webhook];

    /// The `type` of the JSON form, also the default id and a log label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ga4 => "ga4",
            Self::Meta => "meta",
            Self::TikTok => "tiktok",
            Self::Webhook => "webhook",
        }
    }

    /// Inverse of [`DestinationKind::label`].
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.label() == label)
    }
}

/// Where a destination sends, with the platform's own identifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationTarget {
    /// A GA4 web data stream.
    Ga4 {
        /// The stream's measurement id, `G-…`.
        measurement_id: String,
        /// A Measurement Protocol API secret of that stream.
        api_secret: Secret,
    },
    /// A Meta pixel (dataset).
    Meta {
        /// The pixel's numeric id.
        pixel_id: String,
        /// A Conversions API access token for the pixel.
        access_token: Secret,
        /// Routes events to Events Manager's Test Events tab instead of
        /// reporting, while setting up.
        test_event_code: Option<String>,
    },
    /// A TikTok pixel.
    TikTok {
        /// The pixel code, `C…`.
        pixel_code: String,
        /// An Events API access token for the pixel.
        access_token: Secret,
        /// Routes events to Events Manager's Test Events tab instead of
        /// reporting, while setting up.
        test_event_code: Option<String>,
    },
    /// Any HTTP(S) receiver.
    Webhook {
        /// Absolute `http(s)` URL, kept as written.
        url: String,
        /// The HMAC-SHA256 key of the `Clickback-Signature` header.
        secret: Secret,
    },
}

/// One checked destination of an offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Unique within the offer; names the destination in deliveries and logs.
    pub id: DestinationId,
    /// The statuses a conversion must reach to be forwarded, in the order
    /// approved, pending, rejected; never empty.
    pub statuses: Vec<ConversionStatus>,
    /// The platform event name to report instead of the default.
    pub event_name: Option<String>,
    /// The platform and its identifiers.
    pub target: DestinationTarget,
}

/// The JSON form of a destination on `PUT /api/v1/offers/{id}` and in the
/// config store. Fields not used by the `type` must be absent.
///
/// `Debug` leaves the secrets out, so a spec may be logged when a body fails
/// to parse.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    /// `ga4`, `meta`, `tiktok` or `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unique within the offer; defaults to the type, then `<type>-2`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Subset of `approved`, `pending`, `rejected`; defaults to `["approved"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<String>>,
    /// Overrides the platform event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// GA4: the stream's measurement id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_id: Option<String>,
    /// GA4: the Measurement Protocol API secret (secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_secret: Option<String>,
    /// Meta: the pixel id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_id: Option<String>,
    /// TikTok: the pixel code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_code: Option<String>,
    /// Meta, TikTok: the access token (secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Meta, TikTok: the Test Events code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_event_code: Option<String>,
    /// Webhook: the receiver's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Webhook: the signing secret (secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The flags an API answer shows in place of the secrets
    /// (`api_secret_set`, `access_token_set`, `secret_set`): accepted and
    /// ignored, so an offer's `GET` answer can be `PUT` back as it is; a
    /// secret left out keeps the stored one. Never stored: the stored form
    /// ([`Destination::stored`]) leaves them `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_secret_set: Option<bool>,
    /// See [`DestinationSpec::api_secret_set`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_set: Option<bool>,
    /// See [`DestinationSpec::api_secret_set`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_set: Option<bool>,
}

impl fmt::Debug for DestinationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("DestinationSpec")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("statuses", &self.statuses)
            .field("event_name", &self.event_name)
            .field("measurement_id", &self.measurement_id)
            .field("api_secret", &hidden(&self.api_secret))
            .field("pixel_id", &self.pixel_id)
            .field("pixel_code", &self.pixel_code)
            .field("access_token", &hidden(&self.access_token))
            .field("test_event_code", &self.test_event_code)
            .field("url", &self.url)
            .field("secret", &hidden(&self.secret))
            .finish()
    }
}

/// The fields each type takes besides the common ones; any other is refused.
fn fields_of(kind: DestinationKind) -> &'static [&'static str] {
    match kind {
        DestinationKind::Ga4 => &["measurement_id", "api_secret"],
        DestinationKind::Meta => &["pixel_id", "access_token", "test_event_code"],
        DestinationKind::TikTok => &["pixel_code", "access_token", "test_event_code"],
        DestinationKind::Webhook => &["url", "secret"],
    }
}

impl DestinationSpec {
    /// The type-specific fields that are present, by name.
    fn present_fields(&self) -> Vec<&'static str> {
        [
            ("measurement_id", &self.measurement_id),
            ("api_secret", &self.api_secret),
            ("pixel_id", &self.pixel_id),
            ("pixel_code", &self.pixel_code),
            ("access_token", &self.access_token),
            ("test_event_code", &self.test_event_code),
            ("url", &self.url),
            ("secret", &self.secret),
        ]
        .into_iter()
        .filter(|(_, value)| value.is_some())
        .map(|(name, _)| name)
        .collect()
    }
}

impl Destination {
    /// Which platform this destination reports to.
    pub fn kind(&self) -> DestinationKind {
        match self.target {
            DestinationTarget::Ga4 { .. } => DestinationKind::Ga4,
            DestinationTarget::Meta { .. } => DestinationKind::Meta,
            DestinationTarget::TikTok { .. } => DestinationKind::TikTok,
            DestinationTarget::Webhook { .. } => DestinationKind::Webhook,
        }
    }

    /// Whether a conversion reaching `status` is forwarded here.
    pub fn fires_for(&self, status: ConversionStatus) -> bool {
        self.statuses.contains(&status)
    }

    /// Validates a `PUT`'s list. A spec that omits its secret keeps the secret
    /// of the destination with the same id (and type) in `previous`, so a
    /// `GET` answer can be `PUT` back; none there is a 400 naming the missing
    /// field. Errors name the field as `destinations[<index>].<field>`.
    ///
    /// Without `allow_private`, a webhook URL naming an internal address as
    /// written is refused; [`private_target`] gives the same refusal for a
    /// route that answers it with reason `private_target`.
    pub fn from_specs(
        specs: Vec<DestinationSpec>,
        previous: &[Destination],
        allow_private: bool,
    ) -> Result<Vec<Destination>, DomainError> {
        if specs.len() > MAX_DESTINATIONS {
            return Err(DomainError::invalid(format!(
                "destinations: at most {MAX_DESTINATIONS} per offer"
            )));
        }
        let ids = assign_ids(&specs)?;
        let mut destinations = Vec::with_capacity(specs.len());
        for (index, (spec, id)) in specs.into_iter().zip(ids).enumerate() {
            let field = format!("destinations[{index}]");
            let keep = previous.iter().find(|d| d.id == id);
            let destination = parse_spec(spec, id, keep).map_err(|e| in_path(e, &field))?;
            if !allow_private {
                if let Some(detail) = destination.private_target_detail(&field) {
                    return Err(DomainError::invalid(detail));
                }
            }
            destinations.push(destination);
        }
        Ok(destinations)
    }

    /// The stored form: every field, secrets included (config storage only,
    /// never an API answer or a log).
    pub fn stored(&self) -> DestinationSpec {
        let mut spec = DestinationSpec {
            kind: self.kind().label().to_owned(),
            id: Some(self.id.as_str().to_owned()),
            statuses: Some(
                self.statuses
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
            ),
            event_name: self.event_name.clone(),
            ..DestinationSpec::default()
        };
        match &self.target {
            DestinationTarget::Ga4 {
                measurement_id,
                api_secret,
            } => {
                spec.measurement_id = Some(measurement_id.clone());
                spec.api_secret = Some(api_secret.expose().to_owned());
            }
            DestinationTarget::Meta {
                pixel_id,
                access_token,
                test_event_code,
            } => {
                spec.pixel_id = Some(pixel_id.clone());
                spec.access_token = Some(access_token.expose().to_owned());
                spec.test_event_code = test_event_code.clone();
            }
            DestinationTarget::TikTok {
                pixel_code,
                access_token,
                test_event_code,
            } => {
                spec.pixel_code = Some(pixel_code.clone());
                spec.access_token = Some(access_token.expose().to_owned());
                spec.test_event_code = test_event_code.clone();
            }
            DestinationTarget::Webhook { url, secret } => {
                spec.url = Some(url.clone());
                spec.secret = Some(secret.expose().to_owned());
            }
        }
        spec
    }

    /// Inverse of [`Destination::stored`], for reading the config back. The
    /// id and every secret must be present; internal webhook targets are
    /// accepted (they were checked when saved, and the sender checks again).
    pub fn from_stored(spec: DestinationSpec) -> Result<Destination, DomainError> {
        let raw_id = spec
            .id
            .clone()
            .ok_or_else(|| DomainError::invalid("destination: id is missing"))?;
        let id = DestinationId::parse(&raw_id).map_err(|e| e.in_field("destination id"))?;
        let field = format!("destination {}", id.as_str());
        parse_spec(spec, id, None).map_err(|e| in_path(e, &field))
    }

    /// The API answer: secrets left out, `"<secret field>_set": true` in
    /// their place (e.g. `"api_secret_set": true`).
    pub fn redacted(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        out.insert("id".into(), self.id.as_str().into());
        out.insert("type".into(), self.kind().label().into());
        out.insert(
            "statuses".into(),
            self.statuses
                .iter()
                .map(|s| serde_json::Value::from(s.as_str()))
                .collect(),
        );
        if let Some(name) = &self.event_name {
            out.insert("event_name".into(), name.as_str().into());
        }
        match &self.target {
            DestinationTarget::Ga4 { measurement_id, .. } => {
                out.insert("measurement_id".into(), measurement_id.as_str().into());
                out.insert("api_secret_set".into(), true.into());
            }
            DestinationTarget::Meta {
                pixel_id,
                test_event_code,
                ..
            } => {
                out.insert("pixel_id".into(), pixel_id.as_str().into());
                out.insert("access_token_set".into(), true.into());
                if let Some(code) = test_event_code {
                    out.insert("test_event_code".into(), code.as_str().into());
                }
            }
            DestinationTarget::TikTok {
                pixel_code,
                test_event_code,
                ..
            } => {
                out.insert("pixel_code".into(), pixel_code.as_str().into());
                out.insert("access_token_set".into(), true.into());
                if let Some(code) = test_event_code {
                    out.insert("test_event_code".into(), code.as_str().into());
                }
            }
            DestinationTarget::Webhook { url, .. } => {
                out.insert("url".into(), url.as_str().into());
                out.insert("secret_set".into(), true.into());
            }
        }
        serde_json::Value::Object(out)
    }

    /// The internal address a webhook URL names as written (see
    /// [`PostbackTemplate::internal_host`]); `None` for the platforms, whose
    /// endpoints are clickback's configuration, not the user's.
    pub fn internal_host(&self) -> Option<IpAddr> {
        match &self.target {
            DestinationTarget::Webhook { url, .. } => PostbackTemplate::parse(url)
                .ok()
                .and_then(|t| t.internal_host()),
            _ => None,
        }
    }

    /// The refusal text of an internal webhook target, naming `field`.
    fn private_target_detail(&self, field: &str) -> Option<String> {
        self.internal_host().map(|ip| {
            format!(
                "{field}.url: {ip} is an internal address (loopback, private, link-local, CGNAT, multicast or metadata); set CLICKBACK_ALLOW_PRIVATE_TARGETS=1 on a private network"
            )
        })
    }
}

/// The detail of a `private_target` refusal when one of `destinations` is a
/// webhook naming an internal address as written, for a route that validates
/// with `allow_private = true` and answers this reason itself (like the
/// affiliates' postback URLs).
pub fn private_target(destinations: &[Destination]) -> Option<String> {
    destinations
        .iter()
        .enumerate()
        .find_map(|(index, d)| d.private_target_detail(&format!("destinations[{index}]")))
}

/// Prefixes the detail with `path.` when it already names a field
/// (`url: …` becomes `destinations[0].url: …`), or `path: ` otherwise.
fn in_path(e: DomainError, path: &str) -> DomainError {
    let names_field = e
        .detail
        .split_once(": ")
        .is_some_and(|(head, _)| !head.is_empty() && head.bytes().all(is_field_byte));
    if names_field {
        DomainError::invalid(format!("{path}.{}", e.detail))
    } else {
        e.in_field(path)
    }
}

fn is_field_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b == b'_'
}

/// The id of each spec: the explicit ones first (unique, valid), then the
/// defaults `<type>`, `<type>-2`, `<type>-3`… skipping ids already taken.
fn assign_ids(specs: &[DestinationSpec]) -> Result<Vec<DestinationId>, DomainError> {
    let mut taken: HashSet<String> = HashSet::new();
    for (index, spec) in specs.iter().enumerate() {
        if let Some(raw) = &spec.id {
            let id = DestinationId::parse(raw)
                .map_err(|e| e.in_field(&format!("destinations[{index}].id")))?;
            if !taken.insert(id.0) {
                return Err(DomainError::invalid(format!(
                    "destinations[{index}].id: {raw} is used by another destination of this offer"
                )));
            }
        }
    }
    let mut ids = Vec::with_capacity(specs.len());
    for spec in specs {
        let id = match &spec.id {
            Some(raw) => raw.clone(),
            None => {
                // An unknown type is refused later with its own message; its
                // default id only has to be valid and unique meanwhile.
                let base = DestinationKind::from_label(&spec.kind)
                    .map(DestinationKind::label)
                    .unwrap_or("destination");
                let mut n = 1;
                loop {
                    let candidate = if n == 1 {
                        base.to_owned()
                    } else {
                        format!("{base}-{n}")
                    };
                    if !taken.contains(&candidate) {
                        break candidate;
                    }
                    n += 1;
                }
            }
        };
        taken.insert(id.clone());
        ids.push(DestinationId(id));
    }
    Ok(ids)
}

/// Checks one spec; `keep` is the previous destination with the same id,
/// whose secret fills a secret left out.
fn parse_spec(
    spec: DestinationSpec,
    id: DestinationId,
    keep: Option<&Destination>,
) -> Result<Destination, DomainError> {
    let kind = DestinationKind::from_label(&spec.kind)
        .ok_or_else(|| DomainError::invalid("type: must be one of ga4, meta, tiktok, webhook"))?;
    let allowed = fields_of(kind);
    if let Some(extra) = spec
        .present_fields()
        .into_iter()
        .find(|f| !allowed.contains(f))
    {
        return Err(DomainError::invalid(format!(
            "{extra}: not a field of a {} destination (it takes {})",
            kind.label(),
            allowed.join(", ")
        )));
    }
    let statuses = parse_statuses(spec.statuses.as_deref())?;
    if matches!(kind, DestinationKind::Meta | DestinationKind::TikTok)
        && statuses.contains(&ConversionStatus::Rejected)
    {
        return Err(DomainError::invalid(format!(
            "statuses: {} has no refund event, so a rejected conversion has nothing to send; list approved and/or pending",
            kind.label()
        )));
    }
    let event_name = spec
        .event_name
        .as_deref()
        .map(|name| check_event_name(kind, name))
        .transpose()?;
    // The previous secret is kept only for a destination of the same type.
    let kept = keep
        .filter(|previous| previous.kind() == kind)
        .map(|previous| previous.target.secret().clone());
    let secret = |value: Option<String>, field: &str, min: usize| match value {
        Some(raw) => check_secret(raw, min).map_err(|e| e.in_field(field)),
        None => kept
            .clone()
            .ok_or_else(|| DomainError::invalid(format!("{field}: is required"))),
    };
    let target = match kind {
        DestinationKind::Ga4 => DestinationTarget::Ga4 {
            measurement_id: required(spec.measurement_id, "measurement_id", check_measurement_id)?,
            api_secret: secret(spec.api_secret, "api_secret", 1)?,
        },
        DestinationKind::Meta => DestinationTarget::Meta {
            pixel_id: required(spec.pixel_id, "pixel_id", check_pixel_id)?,
            access_token: secret(spec.access_token, "access_token", 1)?,
            test_event_code: optional(spec.test_event_code, "test_event_code", check_test_code)?,
        },
        DestinationKind::TikTok => DestinationTarget::TikTok {
            pixel_code: required(spec.pixel_code, "pixel_code", check_pixel_code)?,
            access_token: secret(spec.access_token, "access_token", 1)?,
            test_event_code: optional(spec.test_event_code, "test_event_code", check_test_code)?,
        },
        DestinationKind::Webhook => DestinationTarget::Webhook {
            url: required(spec.url, "url", check_webhook_url)?,
            secret: secret(spec.secret, "secret", MIN_WEBHOOK_SECRET_LEN)?,
        },
    };
    Ok(Destination {
        id,
        statuses,
        event_name,
        target,
    })
}

impl DestinationTarget {
    /// The one credential of the target.
    fn secret(&self) -> &Secret {
        match self {
            Self::Ga4 { api_secret, .. } => api_secret,
            Self::Meta { access_token, .. } | Self::TikTok { access_token, .. } => access_token,
            Self::Webhook { secret, .. } => secret,
        }
    }
}

fn required(
    value: Option<String>,
    field: &str,
    check: fn(&str) -> Result<(), DomainError>,
) -> Result<String, DomainError> {
    let value = value.ok_or_else(|| DomainError::invalid(format!("{field}: is required")))?;
    check(&value).map_err(|e| e.in_field(field))?;
    Ok(value)
}

fn optional(
    value: Option<String>,
    field: &str,
    check: fn(&str) -> Result<(), DomainError>,
) -> Result<Option<String>, DomainError> {
    value
        .map(|v| check(&v).map(|()| v).map_err(|e| e.in_field(field)))
        .transpose()
}

/// `None` → `[approved]`; otherwise a non-empty subset, kept in the order
/// approved, pending, rejected.
fn parse_statuses(raw: Option<&[String]>) -> Result<Vec<ConversionStatus>, DomainError> {
    let Some(raw) = raw else {
        return Ok(vec![ConversionStatus::Approved]);
    };
    if raw.is_empty() {
        return Err(DomainError::invalid(
            "statuses: must list at least one of approved, pending, rejected",
        ));
    }
    let mut wanted = Vec::new();
    for name in raw {
        let status = match name.as_str() {
            "approved" => ConversionStatus::Approved,
            "pending" => ConversionStatus::Pending,
            "rejected" => ConversionStatus::Rejected,
            _ => {
                return Err(DomainError::invalid(
                    "statuses: each must be approved, pending or rejected",
                ))
            }
        };
        wanted.push(status);
    }
    Ok([
        ConversionStatus::Approved,
        ConversionStatus::Pending,
        ConversionStatus::Rejected,
    ]
    .into_iter()
    .filter(|s| wanted.contains(s))
    .collect())
}

/// GA4 event names: a letter, then letters, digits and `_`, at most 40 (the
/// Measurement Protocol's rule). Others: 1–64 visible ASCII characters.
fn check_event_name(kind: DestinationKind, name: &str) -> Result<String, DomainError> {
    let ok = match kind {
        DestinationKind::Ga4 => {
            (1..=40).contains(&name.len())
                && name.as_bytes()[0].is_ascii_alphabetic()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        _ => (1..=MAX_EVENT_NAME_LEN).contains(&name.len()) && name.bytes().all(is_visible),
    };
    if ok {
        Ok(name.to_owned())
    } else if kind == DestinationKind::Ga4 {
        Err(DomainError::invalid(
            "event_name: a GA4 event name is a letter followed by letters, digits and _, at most 40",
        ))
    } else {
        Err(DomainError::invalid(format!(
            "event_name: must be 1 to {MAX_EVENT_NAME_LEN} visible ASCII characters"
        )))
    }
}

/// Visible ASCII: no space, no control character.
fn is_visible(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// Printable ASCII, `min`..=[`MAX_SECRET_LEN`] bytes; the message never
/// quotes the value.
fn check_secret(raw: String, min: usize) -> Result<Secret, DomainError> {
    if raw.len() < min || raw.len() > MAX_SECRET_LEN || !raw.bytes().all(is_visible) {
        return Err(DomainError::invalid(format!(
            "must be {min} to {MAX_SECRET_LEN} visible ASCII characters (no spaces)"
        )));
    }
    Ok(Secret::from(raw))
}

/// `G-` and 4–20 uppercase letters or digits, as GA4 shows it.
fn check_measurement_id(raw: &str) -> Result<(), DomainError> {
    let rest = raw.strip_prefix("G-").unwrap_or("");
    if (4..=20).contains(&rest.len())
        && rest
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "must look like G-XXXXXXXXXX (Admin > Data streams > your web stream)",
        ))
    }
}

/// 1–32 digits: Meta pixel (dataset) ids are numbers.
fn check_pixel_id(raw: &str) -> Result<(), DomainError> {
    if (1..=32).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(DomainError::invalid("must be the pixel's numeric id"))
    }
}

/// 1–64 letters and digits: TikTok pixel codes such as `C4ABCDEF…`.
fn check_pixel_code(raw: &str) -> Result<(), DomainError> {
    if (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "must be the pixel code (letters and digits, like C4ABCDEFGHIJKLMNOPQR)",
        ))
    }
}

/// 1–64 letters and digits, like `TEST12345`.
fn check_test_code(raw: &str) -> Result<(), DomainError> {
    if (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "must be 1 to 64 letters and digits, like TEST12345",
        ))
    }
}

/// An absolute `http(s)` URL with a host, no credentials and no braces (a
/// webhook URL has no macros: the conversion travels in the body).
fn check_webhook_url(raw: &str) -> Result<(), DomainError> {
    check_url_head(raw).map_err(|e| strip_url_prefix(e.detail))?;
    if raw.contains(['{', '}']) {
        return Err(DomainError::invalid(
            "may not contain { or }: a webhook receives the conversion in its body, not in macros",
        ));
    }
    PostbackTemplate::parse(raw).map_err(|e| strip_url_prefix(e.detail))?;
    Ok(())
}

/// `url is longer…` → `is longer…`, since the caller names the field.
fn strip_url_prefix(detail: String) -> DomainError {
    DomainError::invalid(detail.strip_prefix("url ").unwrap_or(&detail).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> DestinationSpec {
        serde_json::from_value(json).expect("a valid spec")
    }

    fn parse(specs: serde_json::Value) -> Result<Vec<Destination>, DomainError> {
        let specs: Vec<DestinationSpec> = serde_json::from_value(specs).expect("valid specs");
        Destination::from_specs(specs, &[], false)
    }

    fn refusal(specs: serde_json::Value) -> String {
        parse(specs).expect_err("refused").detail
    }

    fn ga4() -> serde_json::Value {
        serde_json::json!({"type":"ga4","measurement_id":"G-ABC1234","api_secret":"s3cr3t-ga4"})
    }

    fn all_four() -> serde_json::Value {
        serde_json::json!([
            {"type":"ga4","measurement_id":"G-ABC1234","api_secret":"s3cr3t-ga4"},
            {"type":"meta","pixel_id":"1234567890","access_token":"EAAtoken-meta","test_event_code":"TEST123"},
            {"type":"tiktok","pixel_code":"C4ABCDEF","access_token":"tt-token-xyz"},
            {"type":"webhook","url":"https://hooks.example/cb","secret":"whsec-0123456789abcdef"}
        ])
    }

    #[test]
    fn each_documented_shape_is_accepted_with_its_defaults() {
        let destinations = parse(all_four()).expect("valid");

        let ids: Vec<_> = destinations.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["ga4", "meta", "tiktok", "webhook"]);
        let kinds: Vec<_> = destinations.iter().map(|d| d.kind().label()).collect();
        assert_eq!(kinds, ["ga4", "meta", "tiktok", "webhook"]);
        for d in &destinations {
            assert_eq!(d.statuses, [ConversionStatus::Approved]);
            assert!(d.fires_for(ConversionStatus::Approved));
            assert!(!d.fires_for(ConversionStatus::Rejected));
            assert_eq!(d.event_name, None);
        }
        assert_eq!(
            destinations[1].target,
            DestinationTarget::Meta {
                pixel_id: "1234567890".into(),
                access_token: Secret::from("EAAtoken-meta"),
                test_event_code: Some("TEST123".into()),
            }
        );
    }

    #[test]
    fn repeated_types_get_numbered_ids_that_avoid_explicit_ones() {
        let destinations = parse(serde_json::json!([
            ga4(),
            ga4(),
            {"type":"ga4","id":"ga4-3","measurement_id":"G-ABC1234","api_secret":"x"},
            ga4(),
        ]))
        .expect("valid");

        let ids: Vec<_> = destinations.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["ga4", "ga4-2", "ga4-3", "ga4-4"]);
    }

    #[test]
    fn duplicate_and_malformed_ids_are_refused_naming_the_field() {
        let duplicate = refusal(serde_json::json!([
            {"type":"ga4","id":"main","measurement_id":"G-ABC1234","api_secret":"x"},
            {"type":"webhook","id":"main","url":"https://h.example/","secret":"0123456789abcdef"}
        ]));
        let malformed = refusal(serde_json::json!([
            {"type":"ga4","id":"Main!","measurement_id":"G-ABC1234","api_secret":"x"}
        ]));

        assert!(
            duplicate.starts_with("destinations[1].id: main is used"),
            "{duplicate}"
        );
        assert!(
            malformed.starts_with("destinations[0].id: must be 1 to 32"),
            "{malformed}"
        );
    }

    #[test]
    fn meta_and_tiktok_refuse_the_rejected_status_they_cannot_report() {
        for spec in [
            r#"[{"type":"meta","pixel_id":"123","access_token":"t","statuses":["approved","rejected"]}]"#,
            r#"[{"type":"tiktok","pixel_code":"C4AB","access_token":"t","statuses":["rejected"]}]"#,
        ] {
            let specs: Vec<DestinationSpec> = serde_json::from_str(spec).expect("json");
            let e = Destination::from_specs(specs, &[], false).expect_err(spec);
            assert!(e.detail.contains("no refund event"), "{}", e.detail);
        }
    }

    #[test]
    fn statuses_are_a_checked_subset_in_canonical_order() {
        let destinations = parse(serde_json::json!([
            {"type":"ga4","measurement_id":"G-ABC1234","api_secret":"x","statuses":["rejected","approved","approved"]}
        ]))
        .expect("valid");

        assert_eq!(
            destinations[0].statuses,
            [ConversionStatus::Approved, ConversionStatus::Rejected]
        );
        let empty = refusal(serde_json::json!([
            {"type":"ga4","measurement_id":"G-ABC1234","api_secret":"x","statuses":[]}
        ]));
        let unknown = refusal(serde_json::json!([
            {"type":"ga4","measurement_id":"G-ABC1234","api_secret":"x","statuses":["approve"]}
        ]));
        assert!(empty.starts_with("destinations[0].statuses: "), "{empty}");
        assert!(
            unknown.starts_with("destinations[0].statuses: "),
            "{unknown}"
        );
    }

    #[test]
    fn unknown_fields_and_fields_of_another_type_are_refused() {
        let unknown = serde_json::from_value::<DestinationSpec>(
            serde_json::json!({"type":"ga4","measurement_id":"G-ABC1234","api_secret":"x","pixel":"1"}),
        );
        let foreign = refusal(serde_json::json!([
            {"type":"ga4","measurement_id":"G-ABC1234","api_secret":"x","pixel_id":"1"}
        ]));
        let bad_type = refusal(serde_json::json!([{"type":"snapchat"}]));

        assert!(unknown.is_err());
        assert!(
            foreign.starts_with("destinations[0].pixel_id: not a field of a ga4 destination"),
            "{foreign}"
        );
        assert!(
            bad_type.starts_with("destinations[0].type: must be one of"),
            "{bad_type}"
        );
    }

    #[test]
    fn identifiers_are_checked_per_platform() {
        for (json, field) in [
            (
                serde_json::json!({"type":"ga4","measurement_id":"UA-1234","api_secret":"x"}),
                "measurement_id",
            ),
            (
                serde_json::json!({"type":"meta","pixel_id":"12a","access_token":"x"}),
                "pixel_id",
            ),
            (
                serde_json::json!({"type":"tiktok","pixel_code":"C-1","access_token":"x"}),
                "pixel_code",
            ),
            (
                serde_json::json!({"type":"meta","pixel_id":"12","access_token":"x","test_event_code":"a b"}),
                "test_event_code",
            ),
            (
                serde_json::json!({"type":"ga4","measurement_id":"G-ABC1234","api_secret":"x","event_name":"1purchase"}),
                "event_name",
            ),
            (
                serde_json::json!({"type":"meta","pixel_id":"12","access_token":"x","event_name":"has space"}),
                "event_name",
            ),
        ] {
            let detail = refusal(serde_json::json!([json]));
            assert!(
                detail.starts_with(&format!("destinations[0].{field}: ")),
                "{field}: {detail}"
            );
        }
    }

    #[test]
    fn secrets_must_be_bounded_visible_ascii_and_are_never_quoted() {
        let long = "x".repeat(MAX_SECRET_LEN + 1);
        for (secret, field) in [
            ("with space", "api_secret"),
            ("tab\there", "api_secret"),
            ("é-accent", "api_secret"),
            (long.as_str(), "api_secret"),
        ] {
            let detail = refusal(serde_json::json!([
                {"type":"ga4","measurement_id":"G-ABC1234","api_secret":secret}
            ]));
            assert!(
                detail.starts_with(&format!("destinations[0].{field}: ")),
                "{detail}"
            );
            assert!(!detail.contains(secret), "{detail}");
        }
        let short_webhook = refusal(serde_json::json!([
            {"type":"webhook","url":"https://h.example/","secret":"short"}
        ]));
        assert!(
            short_webhook.starts_with("destinations[0].secret: must be 16 to"),
            "{short_webhook}"
        );
    }

    #[test]
    fn a_missing_secret_is_kept_from_the_destination_with_the_same_id() {
        let previous = parse(all_four()).expect("valid");
        let answered: Vec<DestinationSpec> = previous
            .iter()
            .map(|d| serde_json::from_value(strip_set_flags(d.redacted())).expect("spec"))
            .collect();

        let again = Destination::from_specs(answered, &previous, false).expect("put back");

        assert_eq!(again, previous);
    }

    /// A GET answer as a client would PUT it back: the `*_set` flags are
    /// answers, not inputs.
    fn strip_set_flags(mut value: serde_json::Value) -> serde_json::Value {
        if let Some(map) = value.as_object_mut() {
            map.retain(|k, _| !k.ends_with("_set"));
        }
        value
    }

    #[test]
    fn a_missing_secret_without_a_previous_one_names_the_field() {
        let previous = parse(serde_json::json!([ga4()])).expect("valid");
        let missing = Destination::from_specs(
            vec![spec(
                serde_json::json!({"type":"meta","pixel_id":"1","access_token":null}),
            )],
            &previous,
            false,
        )
        .expect_err("no token");
        let other_type = Destination::from_specs(
            vec![spec(
                serde_json::json!({"type":"webhook","id":"ga4","url":"https://h.example/"}),
            )],
            &previous,
            false,
        )
        .expect_err("a ga4 secret is not a webhook secret");

        assert_eq!(missing.detail, "destinations[0].access_token: is required");
        assert_eq!(other_type.detail, "destinations[0].secret: is required");
    }

    #[test]
    fn more_than_ten_destinations_are_refused() {
        let eleven: Vec<_> = (0..11).map(|_| ga4()).collect();

        let detail = refusal(serde_json::Value::Array(eleven));

        assert_eq!(detail, "destinations: at most 10 per offer");
    }

    #[test]
    fn webhook_urls_are_checked_like_postback_urls() {
        for (url, expected) in [
            (
                "ftp://h.example/",
                "destinations[0].url: must be an absolute http",
            ),
            (
                "https://user:pw@h.example/",
                "destinations[0].url: may not contain credentials",
            ),
            (
                "https://h.example/{click_id}",
                "destinations[0].url: may not contain { or }",
            ),
            (
                "https://h.example/a b",
                "destinations[0].url: contains whitespace",
            ),
        ] {
            let detail = refusal(serde_json::json!([
                {"type":"webhook","url":url,"secret":"0123456789abcdef"}
            ]));
            assert!(detail.starts_with(expected), "{url}: {detail}");
        }
    }

    #[test]
    fn internal_webhook_targets_are_refused_unless_private_targets_are_allowed() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://169.254.169.254/latest",
            "http://[::1]/hook",
            "http://10.1.2.3/hook",
        ] {
            let specs = vec![spec(serde_json::json!(
                {"type":"webhook","url":url,"secret":"0123456789abcdef"}
            ))];

            let refused = Destination::from_specs(specs.clone(), &[], false).expect_err(url);
            let allowed = Destination::from_specs(specs, &[], true).expect(url);

            assert!(
                refused.detail.starts_with("destinations[0].url: ")
                    && refused.detail.contains("is an internal address")
                    && refused.detail.contains("CLICKBACK_ALLOW_PRIVATE_TARGETS"),
                "{url}: {}",
                refused.detail
            );
            assert_eq!(private_target(&allowed), Some(refused.detail));
        }
        let public = parse(serde_json::json!([
            {"type":"webhook","url":"https://hooks.example/cb","secret":"0123456789abcdef"}
        ]))
        .expect("public");
        assert_eq!(private_target(&public), None);
    }

    #[test]
    fn the_stored_form_round_trips_with_its_secrets() {
        let destinations = parse(all_four()).expect("valid");

        for d in &destinations {
            let json = serde_json::to_string(&d.stored()).expect("serialises");
            let back: DestinationSpec = serde_json::from_str(&json).expect("parses");
            assert_eq!(&Destination::from_stored(back).expect("valid"), d);
        }
        let stored = serde_json::to_string(&destinations[0].stored()).expect("serialises");
        assert!(stored.contains("s3cr3t-ga4"), "{stored}");
    }

    #[test]
    fn a_stored_form_without_id_or_secret_is_an_error() {
        let no_id = Destination::from_stored(spec(ga4())).expect_err("no id");
        let mut no_secret = spec(ga4());
        no_secret.id = Some("ga4".into());
        no_secret.api_secret = None;

        assert_eq!(no_id.detail, "destination: id is missing");
        assert_eq!(
            Destination::from_stored(no_secret)
                .expect_err("no secret")
                .detail,
            "destination ga4.api_secret: is required"
        );
    }

    #[test]
    fn the_api_answer_shows_that_secrets_are_set_but_never_their_values() {
        let destinations = parse(all_four()).expect("valid");

        let answers: Vec<_> = destinations.iter().map(Destination::redacted).collect();

        assert_eq!(
            answers[0],
            serde_json::json!({"id":"ga4","type":"ga4","statuses":["approved"],
                "measurement_id":"G-ABC1234","api_secret_set":true})
        );
        assert_eq!(
            answers[1],
            serde_json::json!({"id":"meta","type":"meta","statuses":["approved"],
                "pixel_id":"1234567890","access_token_set":true,"test_event_code":"TEST123"})
        );
        assert_eq!(answers[2]["access_token_set"], true);
        assert_eq!(answers[3]["secret_set"], true);
        let text = serde_json::to_string(&answers).expect("serialises");
        for secret in [
            "s3cr3t-ga4",
            "EAAtoken-meta",
            "tt-token-xyz",
            "whsec-0123456789abcdef",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn debug_output_never_contains_a_secret() {
        let destinations = parse(all_four()).expect("valid");
        let specs: Vec<DestinationSpec> = serde_json::from_value(all_four()).expect("specs");

        let text = format!("{destinations:?} {specs:?}");

        for secret in [
            "s3cr3t-ga4",
            "EAAtoken-meta",
            "tt-token-xyz",
            "whsec-0123456789abcdef",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("***"));
    }
}
