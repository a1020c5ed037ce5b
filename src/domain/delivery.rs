//! Affiliate postbacks: the delivery of a conversion to the affiliate's own
//! server (API.md §6).
//!
//! There is one delivery per conversion and status it reached: a conversion
//! credited as pending and approved later is delivered twice, once with each
//! `{status}`. Statuses only move forward (pending → approved → rejected),
//! so `(conversion, status)` names a delivery for good: it is the
//! [`DeliveryId`] and the receiver's `Idempotency-Key`.

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

/// `<shard><conversion id>.<status code>`: the click's shard first, so that
/// the id alone tells the store which shard holds the delivery.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct DeliveryId(String);

/// Longest conversion id part of a delivery id.
const MAX_CONVERSION_ID_LEN: usize = 64;

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

    /// Reads an id from a path, refusing anything clickback does not mint.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::invalid("not a delivery id");
        let (head, status) = raw.rsplit_once('.').ok_or_else(invalid)?;
        ConversionStatus::from_code(status).ok_or_else(invalid)?;
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
            .rsplit_once('.')
            .and_then(|(_, code)| ConversionStatus::from_code(code))
            .unwrap_or(ConversionStatus::Approved)
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
}

/// Separator of the stored form; none of the fields can hold NUL (the query
/// reader refuses it).
const SEP: char = '\0';
/// Version tag of the stored form.
const CONTEXT_VERSION: &str = "1";

impl DeliveryContext {
    /// The stored form: NUL-separated fields after a version tag.
    pub fn encode(&self) -> String {
        let mut out = String::from(CONTEXT_VERSION);
        for field in self
            .subs
            .iter()
            .chain([&self.source, &self.txid, &self.goal, &self.currency])
        {
            out.push(SEP);
            out.push_str(field);
        }
        out
    }

    /// Inverse of [`DeliveryContext::encode`].
    pub fn decode(raw: &str) -> Result<Self, DomainError> {
        let mut parts = raw.split(SEP);
        if parts.next() != Some(CONTEXT_VERSION) {
            return Err(DomainError::invalid("unknown delivery context version"));
        }
        let fields: Vec<&str> = parts.collect();
        let [s1, s2, s3, s4, s5, source, txid, goal, currency] = fields[..] else {
            return Err(DomainError::invalid("delivery context has the wrong shape"));
        };
        Ok(Self {
            subs: [s1, s2, s3, s4, s5].map(str::to_owned),
            source: source.to_owned(),
            txid: txid.to_owned(),
            goal: goal.to_owned(),
            currency: currency.to_owned(),
        })
    }
}

/// What a postback hands the credit step so that the conversion's delivery
/// is queued in the same atomic step that records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryOrder {
    /// The sale amount this postback reported, for `{amount}`.
    pub amount: Option<Money>,
    /// Now, Unix milliseconds: when the delivery is due first.
    pub now_ms: u64,
    /// How long the delivery record is kept after its last change.
    pub retention_secs: u64,
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
    /// The affiliate's payout at that status.
    pub payout: Money,
    /// The sale amount the advertiser reported, if any.
    pub amount: Option<Money>,
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
    fn delivery_ids_clickback_never_mints_are_refused() {
        for raw in [
            "", "Q", "Q.a", "Qabc", "Qabc.z", "Q a.a", "Q/../x.a", "Qabc.a.a",
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
        };
        assert_eq!(
            DeliveryContext::decode(&context.encode()).expect("decodes"),
            context
        );
        assert!(DeliveryContext::decode("9\0a").is_err());
    }
}
