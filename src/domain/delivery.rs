//! Deliveries: a conversion sent on to the affiliate's own server (API.md
//! §6) and to the offer's destinations (GA4, Meta, TikTok, webhooks;
//! docs/destinations.md).
//!
//! There is one delivery per conversion, status it reached and target: a
//! conversion credited as pending and approved later is delivered to the
//! affiliate twice, once with each `{status}`. Statuses only move forward
//! (pending → approved → rejected), so `(conversion, status, target)` names
//! a delivery for good: it is the [`DeliveryId`].

use super::click::AdClickIds;
use super::destination::DestinationKind;
use super::{AffiliateId, ConversionStatus, DomainError, Money, OfferId};

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Queued, in flight, or waiting for its next retry.
    Pending,
    /// The affiliate's server answered 2xx.
    Delivered,
    /// Every retry of the schedule failed; waits for an operator's retry.
    Dead,
}

impl DeliveryState {
    /// The stored one-letter form.
    pub fn code(self) -> &'static str {
        match self {
            Self::Pending => "p",
            Self::Delivered => "d",
            Self::Dead => "x",
        }
    }

    /// Inverse of [`DeliveryState::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "p" => Some(Self::Pending),
            "d" => Some(Self::Delivered),
            "x" => Some(Self::Dead),
            _ => None,
        }
    }

    /// The API's spelling (`pending`, `delivered`, `dead`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// Reads the API's spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}

/// `<shard><conversion id>.<status code>` for the affiliate's postback,
/// `<shard><conversion id>.<status code>.<destination id>` for one of the
/// offer's destinations: the click's shard first, so that the id alone
/// tells the store which shard holds the delivery.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct DeliveryId(String);

/// Longest conversion id part of a delivery id.
const MAX_CONVERSION_ID_LEN: usize = 64;
/// Longest destination id part of a delivery id.
const MAX_DESTINATION_ID_LEN: usize = 32;

impl DeliveryId {
    /// The delivery of `conversion_id` (a conversion of a click in `shard`)
    /// reaching `status`.
    pub fn new(shard: char, conversion_id: &str, status: ConversionStatus) -> Self {
        let mut id = String::with_capacity(conversion_id.len() + 3);
        id.push(shard);
        id.push_str(conversion_id);
        id.push('.');
        id.push_str(status.code());
        Self(id)
    }

    /// The delivery of `conversion_id` reaching `status` to the offer's
    /// destination `destination`.
    pub fn to_destination(
        shard: char,
        conversion_id: &str,
        status: ConversionStatus,
        destination: &str,
    ) -> Self {
        let mut id = Self::new(shard, conversion_id, status).0;
        id.push('.');
        id.push_str(destination);
        Self(id)
    }

    /// Reads an id from a path, refusing anything clickback does not mint.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::invalid("not a delivery id");
        let mut parts = raw.splitn(3, '.');
        let head = parts.next().ok_or_else(invalid)?;
        let status = parts.next().ok_or_else(invalid)?;
        ConversionStatus::from_code(status).ok_or_else(invalid)?;
        if let Some(destination) = parts.next() {
            let valid = !destination.is_empty()
                && destination.len() <= MAX_DESTINATION_ID_LEN
                && destination.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !valid {
                return Err(invalid());
            }
        }
        let conversion = head.get(1..).ok_or_else(invalid)?;
        let base64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if conversion.is_empty()
            || conversion.len() > MAX_CONVERSION_ID_LEN
            || !head.chars().all(base64url)
        {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The shard character: the hash tag of the delivery's keys.
    pub fn shard(&self) -> char {
        self.0.chars().next().unwrap_or('A')
    }

    /// The status this delivery announces.
    pub fn status(&self) -> ConversionStatus {
        self.0
            .split('.')
            .nth(1)
            .and_then(ConversionStatus::from_code)
            .unwrap_or(ConversionStatus::Approved)
    }

    /// The offer's destination this delivery goes to; `None` for the
    /// affiliate's postback.
    pub fn destination(&self) -> Option<&str> {
        self.0.splitn(3, '.').nth(2)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a conversion's deliveries say about its click and order, captured
/// when the conversion is created (the click may be gone by the time a
/// status change is delivered) and kept with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryContext {
    /// The affiliate's `sub1`…`sub5` of the click.
    pub subs: [String; 5],
    /// The click's traffic source.
    pub source: String,
    /// The advertiser's transaction id, if the conversion has one.
    pub txid: String,
    /// The conversion's goal, if it has one.
    pub goal: String,
    /// The offer's currency.
    pub currency: String,
    /// The ad platforms' click ids the click carried, for the offer's
    /// destinations (docs/destinations.md).
    pub ad_ids: AdClickIds,
    /// When the click was made, Unix seconds (Meta's `fbc` names the time
    /// its click id was first seen); 0 when the click was gone already.
    pub click_at: u64,
}

/// Separator of the stored form; none of the fields can hold NUL (the query
/// reader refuses it).
const SEP: char = '\0';
/// Version tag of the stored form.
const CONTEXT_VERSION: &str = "1";
/// The stored form with the click's time and ad click ids: version 1's
/// fields, the click time and the four ids. A context without either keeps
/// version 1.
const CONTEXT_VERSION_2: &str = "2";

impl DeliveryContext {
    /// `sub1`…`sub5` as the macros and platform payloads take them.
    pub fn sub_values(&self) -> [&str; 5] {
        self.subs.each_ref().map(String::as_str)
    }

    /// The stored form: NUL-separated fields after a version tag.
    pub fn encode(&self) -> String {
        let with_ad_ids = !self.ad_ids.is_empty() || self.click_at != 0;
        let mut out = String::from(if with_ad_ids {
            CONTEXT_VERSION_2
        } else {
            CONTEXT_VERSION
        });
        for field in self
            .subs
            .iter()
            .chain([&self.source, &self.txid, &self.goal, &self.currency])
        {
            out.push(SEP);
            out.push_str(field);
        }
        if with_ad_ids {
            out.push(SEP);
            out.push_str(&self.click_at.to_string());
            for field in self.ad_ids.fields() {
                out.push(SEP);
                out.push_str(field);
            }
        }
        out
    }

    /// Inverse of [`DeliveryContext::encode`].
    pub fn decode(raw: &str) -> Result<Self, DomainError> {
        let mut parts = raw.split(SEP);
        let version = parts.next();
        if version != Some(CONTEXT_VERSION) && version != Some(CONTEXT_VERSION_2) {
            return Err(DomainError::invalid("unknown delivery context version"));
        }
        let fields: Vec<&str> = parts.collect();
        let wrong_shape = || DomainError::invalid("delivery context has the wrong shape");
        let (base, click_at, ad_ids) = match (version, fields.len()) {
            (Some(CONTEXT_VERSION), 9) => (&fields[..], 0, AdClickIds::default()),
            (_, 14) => {
                let click_at = fields[9].parse().map_err(|_| wrong_shape())?;
                let ids = AdClickIds::from_fields([fields[10], fields[11], fields[12], fields[13]]);
                (&fields[..9], click_at, ids)
            }
            _ => return Err(wrong_shape()),
        };
        let [s1, s2, s3, s4, s5, source, txid, goal, currency] = base[..] else {
            return Err(wrong_shape());
        };
        Ok(Self {
            subs: [s1, s2, s3, s4, s5].map(str::to_owned),
            source: source.to_owned(),
            txid: txid.to_owned(),
            goal: goal.to_owned(),
            currency: currency.to_owned(),
            ad_ids,
            click_at,
        })
    }
}

/// What a postback hands the credit step so that the conversion's
/// deliveries are queued in the same atomic step that records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryOrder {
    /// The sale amount this postback reported, for `{amount}`.
    pub amount: Option<Money>,
    /// Now, Unix milliseconds: when the deliveries are due first.
    pub now_ms: u64,
    /// How long the delivery records are kept after their last change.
    pub retention_secs: u64,
    /// Queue the affiliate's postback (it has a postback URL for the offer).
    pub affiliate: bool,
    /// The offer's destinations that fire for the status the conversion
    /// moves to, each queued as its own delivery.
    pub destinations: Vec<DestinationOrder>,
}

/// One destination a conversion is queued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationOrder {
    /// Its id within the offer: the last part of the delivery id.
    pub id: String,
    /// Its platform, kept with the delivery so that its metrics are labelled
    /// even if the destination is removed before it is sent.
    pub kind: DestinationKind,
}

/// One stored delivery, as the worker and the API see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// `(conversion, status)`.
    pub id: DeliveryId,
    /// The conversion delivered.
    pub conversion_id: String,
    /// The click it converted.
    pub click_id: String,
    /// The click's offer.
    pub offer_id: OfferId,
    /// The affiliate whose server is called.
    pub aff_id: AffiliateId,
    /// The conversion's status this delivery announces.
    pub status: ConversionStatus,
    /// The offer's destination it goes to and its platform; `None` for the
    /// affiliate's postback.
    pub destination: Option<(String, DestinationKind)>,
    /// The affiliate's payout at that status.
    pub payout: Money,
    /// The network's revenue at that status.
    pub revenue: Money,
    /// The sale amount the advertiser reported, if any.
    pub amount: Option<Money>,
    /// When the conversion was created, Unix seconds.
    pub converted_at: u64,
    /// Subs, source, txid, goal, currency.
    pub context: DeliveryContext,
    /// Pending, delivered or dead.
    pub state: DeliveryState,
    /// Attempts made in all.
    pub attempts: u32,
    /// Attempts since the schedule (re)started: picks the next delay.
    pub run_attempts: u32,
    /// When the delivery was queued, Unix milliseconds.
    pub created_at_ms: u64,
    /// When the last attempt ended, Unix milliseconds.
    pub last_attempt_at_ms: Option<u64>,
    /// When the next attempt is due (pending only), Unix milliseconds.
    pub next_attempt_at_ms: Option<u64>,
    /// The HTTP status of the last answer, if one came.
    pub last_http_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// The URL template the last attempt used, as the affiliate configured it.
    pub url: Option<String>,
}

/// How an attempt ended, as the store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptRecord {
    /// 2xx: done.
    Delivered {
        /// The answer's status.
        http_status: u16,
    },
    /// Failed; the next attempt is due at `retry_at_ms`.
    Failed {
        /// The answer's status, if one came.
        http_status: Option<u16>,
        /// What went wrong.
        error: String,
        /// When to try again, Unix milliseconds.
        retry_at_ms: u64,
    },
    /// Failed, and the schedule has no retry left.
    Dead {
        /// The answer's status, if one came.
        http_status: Option<u16>,
        /// What went wrong.
        error: String,
    },
    /// Nothing was sent (the target host was busy): due again at
    /// `retry_at_ms`, no attempt counted.
    Postponed {
        /// When to try again, Unix milliseconds.
        retry_at_ms: u64,
    },
    /// The record has expired: the queue entry is dropped.
    Gone,
}

/// The report of one attempt to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptReport {
    /// How it ended.
    pub record: AttemptRecord,
    /// When it ended, Unix milliseconds.
    pub now_ms: u64,
    /// The URL template used, if one was.
    pub url: Option<String>,
    /// How long the record is kept after this change.
    pub retention_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_id_names_its_shard_and_status() {
        let id = DeliveryId::new('Q', "AbC-_9", ConversionStatus::Pending);
        assert_eq!(id.as_str(), "QAbC-_9.p");
        let parsed = DeliveryId::parse(id.as_str()).expect("minted ids parse");
        assert_eq!(parsed.shard(), 'Q');
        assert_eq!(parsed.status(), ConversionStatus::Pending);
    }

    #[test]
    fn a_destinations_delivery_id_names_its_destination() {
        let id = DeliveryId::to_destination('Q', "AbC", ConversionStatus::Approved, "ga4-2");
        assert_eq!(id.as_str(), "QAbC.a.ga4-2");
        let parsed = DeliveryId::parse(id.as_str()).expect("minted ids parse");
        assert_eq!(parsed.destination(), Some("ga4-2"));
        assert_eq!(parsed.status(), ConversionStatus::Approved);
        assert_eq!(
            DeliveryId::new('Q', "AbC", ConversionStatus::Approved).destination(),
            None
        );
    }

    #[test]
    fn delivery_ids_clickback_never_mints_are_refused() {
        for raw in [
            "",
            "Q",
            "Q.a",
            "Qabc",
            "Qabc.z",
            "Q a.a",
            "Q/../x.a",
            "Qabc.a.",
            "Qabc.a.A",
            "Qabc.a.x.y",
            "Qabc.a.a/b",
        ] {
            assert!(DeliveryId::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn the_context_round_trips_through_its_stored_form() {
        let context = DeliveryContext {
            subs: ["s1".into(), "".into(), "s 3".into(), "".into(), "ü5".into()],
            source: "fb".into(),
            txid: "ORD-1".into(),
            goal: String::new(),
            currency: "EUR".into(),
            ad_ids: AdClickIds::default(),
            click_at: 0,
        };
        assert_eq!(
            DeliveryContext::decode(&context.encode()).expect("decodes"),
            context
        );
        assert!(context.encode().starts_with('1'));
        let tagged = DeliveryContext {
            ad_ids: AdClickIds::from_fields(["", "IwAR1", "", "12.34"]),
            click_at: 1_795_305_600,
            ..context
        };
        assert_eq!(
            DeliveryContext::decode(&tagged.encode()).expect("decodes"),
            tagged
        );
        assert!(DeliveryContext::decode("9\0a").is_err());
        assert!(DeliveryContext::decode("2\0a\0b\0c\0d\0e\0f\0g\0h\0EUR").is_err());
    }
}
