//! Conversions: what a postback creates, and the rules for changing one.

use super::{AffiliateId, ClickId, Day, DomainError, Money, OfferId};

/// The advertiser's verdict on a conversion. Only approved ones pay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversionStatus {
    /// Counts in `conversions` and `payout` (the default).
    Approved,
    /// Awaiting the advertiser's review (e.g. a refund period); counted apart.
    Pending,
    /// Refused by the advertiser or by an offer rule; never pays.
    Rejected,
}

impl ConversionStatus {
    /// Parses the postback's `status` parameter.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw.to_ascii_lowercase().as_str() {
            "approved" | "approve" | "1" => Ok(Self::Approved),
            "pending" | "hold" | "2" => Ok(Self::Pending),
            "rejected" | "reject" | "declined" | "3" => Ok(Self::Rejected),
            _ => Err(DomainError::invalid(
                "status must be approved, pending or rejected",
            )),
        }
    }

    /// The API's spelling, as in JSON answers and the `{status}` macro.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Pending => "pending",
            Self::Rejected => "rejected",
        }
    }

    /// One-letter form used in the store and by the credit script.
    pub fn code(self) -> &'static str {
        match self {
            Self::Approved => "a",
            Self::Pending => "p",
            Self::Rejected => "r",
        }
    }

    /// Inverse of [`ConversionStatus::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "a" => Some(Self::Approved),
            "p" => Some(Self::Pending),
            "r" => Some(Self::Rejected),
            _ => None,
        }
    }

    /// Whether an existing conversion in `self` may move to `next`.
    ///
    /// pending → approved, pending → rejected and approved → rejected move;
    /// everything else (leaving `rejected`, going back to `pending`, staying
    /// put) is a duplicate, so that no retry can ever undo a decision. The
    /// Redis credit script encodes the same table; the conformance suite
    /// checks that both stores agree.
    pub fn can_move_to(self, next: Self) -> bool {
        matches!(
            (self, next),
            (Self::Pending, Self::Approved)
                | (Self::Pending, Self::Rejected)
                | (Self::Approved, Self::Rejected)
        )
    }
}

/// Why a conversion was recorded as rejected. Stored with the conversion, so
/// that a retry of the postback answers the same reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Sooner after the click than the offer's `min_ctc_secs`.
    TooFast,
    /// A cap of the offer was full.
    CapReached,
    /// The advertiser said `status=rejected`.
    ByAdvertiser,
}

impl RejectReason {
    /// The `reason` of the JSON answer, as stored with the conversion.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooFast => "too_fast",
            Self::CapReached => "cap_reached",
            Self::ByAdvertiser => "rejected_by_advertiser",
        }
    }

    /// A human sentence for the answer's `detail`.
    pub fn detail(self) -> &'static str {
        match self {
            Self::TooFast => {
                "the conversion came sooner after the click than the offer's min_ctc_secs allows"
            }
            Self::CapReached => {
                "a cap of this offer is full; the conversion is recorded as rejected"
            }
            Self::ByAdvertiser => {
                "the advertiser reported this conversion as rejected; it pays nothing"
            }
        }
    }

    /// Reads a stored reason; the advertiser's own rejection is stored as
    /// no reason at all.
    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "too_fast" => Some(Self::TooFast),
            "cap_reached" => Some(Self::CapReached),
            _ => None,
        }
    }

    /// What the store keeps: nothing for the advertiser's own rejection.
    pub fn stored(reason: Option<Self>) -> &'static str {
        match reason {
            Some(Self::TooFast) => "too_fast",
            Some(Self::CapReached) => "cap_reached",
            Some(Self::ByAdvertiser) | None => "",
        }
    }
}

/// What makes two postbacks "the same conversion" (API.md §2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The advertiser's transaction or order id: one conversion per order.
    Txid(String),
    /// The event name when no txid is given: one conversion per goal per click.
    Goal(String),
}

impl Identity {
    /// Storage suffix; the `t:`/`g:` prefixes keep a txid `default` apart from the goal `default`.
    pub fn key_suffix(&self) -> String {
        match self {
            Self::Txid(t) => format!("t:{t}"),
            Self::Goal(g) => format!("g:{g}"),
        }
    }
}

/// A stored conversion, as the store reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversionRecord {
    /// Stable id handed back on every answer about this conversion.
    pub conversion_id: String,
    /// Its current status.
    pub status: ConversionStatus,
    /// The payout of the affiliate (counted only while approved).
    pub payout: Money,
    /// The revenue for the network (counted only while approved).
    pub revenue: Money,
    /// The UTC day whose counters hold this conversion.
    pub day: Day,
    /// The offer it belongs to.
    pub offer_id: OfferId,
    /// The affiliate it credits.
    pub aff_id: AffiliateId,
    /// Why clickback rejected it (`too_fast`, `cap_reached`), if it did.
    pub reason: Option<RejectReason>,
}

/// What a postback asks the store to do, computed from the click and offer.
#[derive(Clone, Debug)]
pub struct ConversionCommand {
    /// The converting click.
    pub click_id: ClickId,
    /// The conversion's identity within the click.
    pub identity: Identity,
    /// The click's offer.
    pub offer_id: OfferId,
    /// The click's affiliate.
    pub aff_id: AffiliateId,
    /// The status the advertiser reports.
    pub status: ConversionStatus,
    /// The payout this postback determines; `None` keeps the stored payout on
    /// a status change (a percentage offer's approval without an amount).
    pub payout: Option<Money>,
    /// The revenue this postback determines; `None` keeps the stored one.
    pub revenue: Option<Money>,
    /// The id to use if this creates the conversion.
    pub new_conversion_id: String,
    /// Today, whose counters a new conversion moves.
    pub today: Day,
    /// The day of the existing conversion as last seen, whose counters a
    /// status change moves (see the credit script).
    pub seen_day: Option<Day>,
    /// How long the conversion record is kept, to recognise late duplicates.
    pub retention_secs: u64,
    /// Why a new conversion is rejected by an offer rule (with status rejected).
    pub reason: Option<RejectReason>,
    /// Now, in Unix seconds (the injected clock), recorded with a new conversion.
    pub now: u64,
    /// Queue the affiliate postback with the change (the affiliate has a
    /// postback URL for this offer): created with status approved or
    /// pending, or moved to a new status. `None` queues nothing.
    pub delivery: Option<super::delivery::DeliveryOrder>,
    /// The conversion id the caller last saw under this identity: a status
    /// change queues the delivery of that conversion, so the store answers
    /// [`ConversionOutcome::Retry`] if another one stands there now.
    pub seen_conversion_id: Option<String>,
    /// What a new conversion keeps about its click and itself (subs,
    /// source, txid, goal, currency), for the conversion list: the click
    /// expires long before the conversion does. Ignored on a status change.
    pub context: super::delivery::DeliveryContext,
    /// Only move an existing conversion, never create one (an advertiser's
    /// manual status change): a conversion gone meanwhile answers
    /// [`ConversionOutcome::Missing`].
    pub must_exist: bool,
}

/// The most one day's money counter of one offer and affiliate may hold, in
/// micro-units (9,223,372,036,854 units): counters are 64-bit integers in
/// Redis, whose `HINCRBY` refuses to pass this. A conversion that would take
/// a counter past it is refused whole (the credit script takes back what it
/// added before it writes anything else), never counted half-way.
pub const MAX_COUNTER_MICROS: i64 = i64::MAX;

/// What the store did with a [`ConversionCommand`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConversionOutcome {
    /// First time this identity was seen: stored and counted.
    Created(ConversionRecord),
    /// Nothing changed (same identity, same or a forbidden status).
    Duplicate(ConversionRecord),
    /// The status moved and the counters were adjusted.
    Updated {
        /// The conversion after the change.
        record: ConversionRecord,
        /// The status it had before.
        previous: ConversionStatus,
    },
    /// The conversion's day changed under us (a race over midnight); look up again.
    Retry,
    /// Counting it would take a money counter past [`MAX_COUNTER_MICROS`]:
    /// nothing was written.
    TooLarge,
    /// The command could only move an existing conversion, and there is
    /// none: nothing was written.
    Missing,
}

/// One move of a conversion's status, kept in its history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusChange {
    /// The status it moved to (the first entry: the status it was created with).
    pub status: ConversionStatus,
    /// When, Unix seconds.
    pub at: u64,
}

impl StatusChange {
    /// The stored form of a history: `<code><secs>` entries separated by
    /// spaces (`p1795946400 a1795950000`), as the credit script appends them.
    pub fn decode_history(raw: &str) -> Result<Vec<Self>, DomainError> {
        raw.split(' ')
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (code, at) = entry.split_at_checked(1).unwrap_or((entry, ""));
                Ok(Self {
                    status: ConversionStatus::from_code(code)
                        .ok_or_else(|| DomainError::invalid("status history: unknown status"))?,
                    at: at
                        .parse()
                        .map_err(|_| DomainError::invalid("status history: bad time"))?,
                })
            })
            .collect()
    }

    /// The stored form of one entry (see [`StatusChange::decode_history`]).
    pub fn encode(self) -> String {
        format!("{}{}", self.status.code(), self.at)
    }
}

/// A conversion as the conversion list shows it: the record, where it
/// lives, what it kept about its click, and how its status moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversionEntry {
    /// Status, money, day, offer, affiliate.
    pub record: ConversionRecord,
    /// The converting click.
    pub click_id: ClickId,
    /// The conversion's identity within the click (needed to change it).
    pub identity: Identity,
    /// Subs, source, txid, goal and currency, as captured at creation.
    pub context: super::delivery::DeliveryContext,
    /// When it was created, Unix seconds.
    pub created_at: u64,
    /// Every status it had, oldest first.
    pub history: Vec<StatusChange>,
}

#[cfg(test)]
mod history_tests {
    use super::*;

    #[test]
    fn a_status_history_reads_back_in_order() {
        let history = StatusChange::decode_history("p100 a250").expect("valid");
        assert_eq!(
            history,
            vec![
                StatusChange {
                    status: ConversionStatus::Pending,
                    at: 100
                },
                StatusChange {
                    status: ConversionStatus::Approved,
                    at: 250
                }
            ]
        );
        assert_eq!(history[1].encode(), "a250");
        assert_eq!(StatusChange::decode_history(""), Ok(vec![]));
        assert!(StatusChange::decode_history("x1").is_err());
        assert!(StatusChange::decode_history("a").is_err());
    }
}
