//! The parse stage: a postback's parameters (query, form or JSON alike)
//! become a [`PostbackRequest`] of domain types, or a 400 naming the field.
//!
//! A postback is read twice at most. Before its click is looked up, only the
//! global names count ([`PostbackRequest::from_params`]): they say which
//! click and which conversion. Once the click's offer is known,
//! [`PostbackRequest::for_offer`] reads it again under the offer's
//! `postback_mapping`, if the offer has one. Errors in values that a mapping
//! may read differently (a status word, an amount, a currency) wait for the
//! offer, so that `status=1` reaches an offer that maps it.
//!
//! One pass over the parameters resolves each name with a `match`
//! ([`global_name`]) or the offer's mapping: no table is built per request.
//! Every parameter no rule reads is kept by name in
//! [`PostbackRequest::ignored`], for the troubleshooting log.

use crate::domain::postback_mapping::{
    global_name, global_status, is_unfilled_macro, Field, GlobalName, PostbackMapping,
};
use crate::domain::query::Params;
use crate::domain::{ClickId, ConversionStatus, Currency, DomainError, Identity, Money, Offer};

/// The largest `amount` one postback may report: a billion units of any
/// currency, far above any real sale, and small enough that no percentage
/// payout of it comes near the bounds of the counters.
pub const MAX_AMOUNT: Money = Money::from_micros(1_000_000_000 * 1_000_000);

/// Longest `txid` or `goal` accepted (bytes).
const MAX_IDENTITY_LEN: usize = 255;

/// Most ignored parameter names kept for the log, and the longest kept.
const MAX_IGNORED: usize = 32;
const MAX_IGNORED_NAME_LEN: usize = 64;

/// A parsed postback.
#[derive(Debug, Clone)]
pub struct PostbackRequest {
    /// The click being converted.
    pub click_id: ClickId,
    /// The token presented, checked against the offer's.
    pub token: Option<String>,
    /// `(click_id, txid)` or `(click_id, goal)`.
    pub identity: Identity,
    /// Sale amount, for percentage payouts and revenue.
    pub amount: Option<Money>,
    /// Currency of `amount`, if stated.
    pub currency: Option<Currency>,
    /// The advertiser's verdict.
    pub status: ConversionStatus,
    /// Names of the parameters no rule read (at most 32, each at most 64
    /// bytes): nothing is ignored silently.
    pub ignored: Vec<String>,
    /// Which rules read it.
    reading: Reading,
}

/// Which rules read a request.
#[derive(Debug, Clone)]
enum Reading {
    /// The global names, before the offer was known.
    Global {
        /// A value the global rules could not read; the offer's mapping may.
        deferred: Option<DomainError>,
        /// The click id came under a name only some offer's mapping gives it.
        click_id_by_mapping: bool,
    },
    /// The offer's `postback_mapping`.
    Mapped,
}

/// The raw values of one pass over the parameters.
struct Slots<'a> {
    /// The field's value and the name it came under, per [`Field::index`].
    fields: [Option<(&'a str, &'a str)>; Field::COUNT],
    /// Keitaro's inline status lists: approved, pending, rejected.
    inline: [Option<&'a str>; 3],
    /// Names nothing read.
    ignored: Vec<String>,
}

impl<'a> Slots<'a> {
    fn get(&self, field: Field) -> Option<&'a str> {
        self.fields[field.index()].map(|(_, value)| value)
    }

    /// Records `value` under `field`; the same field given twice with
    /// different values is refused: guessing which one the sender meant
    /// could credit the wrong click.
    fn put(&mut self, field: Field, name: &'a str, value: &'a str) -> Result<(), DomainError> {
        let slot = &mut self.fields[field.index()];
        match slot {
            Some((first, previous)) if *previous != value => {
                Err(DomainError::invalid(if *first == name {
                    format!("{field} is given more than once with different values ({name})")
                } else {
                    format!(
                        "{field} is given more than once with different values ({first}, {name})"
                    )
                }))
            }
            Some(_) => Ok(()),
            None => {
                *slot = Some((name, value));
                Ok(())
            }
        }
    }

    fn ignore(&mut self, name: &str) {
        if self.ignored.len() < MAX_IGNORED && !self.ignored.iter().any(|n| n == name) {
            let mut end = name.len().min(MAX_IGNORED_NAME_LEN);
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            self.ignored.push(name[..end].to_owned());
        }
    }
}

/// One pass over `params`: each name resolved by `mapping`, then the global
/// names. An empty value is absent (`&sub1=&goal=x` from a link builder).
fn collect<'a>(
    params: &'a Params,
    mapping: Option<&PostbackMapping>,
) -> Result<Slots<'a>, DomainError> {
    let mut slots = Slots {
        fields: [None; Field::COUNT],
        inline: [None; 3],
        ignored: Vec::new(),
    };
    for (name, value) in params.pairs() {
        let meaning = match mapping.and_then(|m| m.field_of(name)) {
            Some(field) => GlobalName::Field(field),
            None => match global_name(name) {
                Some(meaning) => meaning,
                None => {
                    slots.ignore(name);
                    continue;
                }
            },
        };
        if value.is_empty() {
            continue;
        }
        match meaning {
            GlobalName::Field(field) => slots.put(field, name, value)?,
            GlobalName::InlineStatus(status) => {
                let slot = &mut slots.inline[inline_index(status)];
                if slot.is_some_and(|previous| previous != value) {
                    return Err(DomainError::invalid(format!(
                        "{name} is given more than once with different values"
                    )));
                }
                *slot = Some(value);
            }
            GlobalName::Signature => {}
        }
    }
    Ok(slots)
}

fn inline_index(status: ConversionStatus) -> usize {
    match status {
        ConversionStatus::Approved => 0,
        ConversionStatus::Pending => 1,
        ConversionStatus::Rejected => 2,
    }
}

fn bounded_text(value: &str, name: &str) -> Result<String, DomainError> {
    if value.len() > MAX_IDENTITY_LEN {
        return Err(DomainError::invalid(format!(
            "{name} is longer than {MAX_IDENTITY_LEN} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(format!(
            "{name} contains control characters"
        )));
    }
    Ok(value.to_owned())
}

/// A value for an error message: at most 64 bytes of it.
fn shown(value: &str) -> &str {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// The status a postback reports: the sender's inline lists (Keitaro's
/// `sale_status=…`) first, then the offer's `status_values`, then the
/// global words. Absent, it is approved.
fn read_status(
    raw: Option<&str>,
    inline: &[Option<&str>; 3],
    mapping: Option<&PostbackMapping>,
) -> Result<ConversionStatus, DomainError> {
    let Some(raw) = raw else {
        return Ok(ConversionStatus::Approved);
    };
    let mut listed = None;
    for status in [
        ConversionStatus::Approved,
        ConversionStatus::Pending,
        ConversionStatus::Rejected,
    ] {
        let in_list = inline[inline_index(status)]
            .is_some_and(|list| list.split(',').any(|w| w.trim().eq_ignore_ascii_case(raw)));
        if in_list {
            if listed.is_some() {
                return Err(DomainError::invalid(format!(
                    "status {:?} is in more than one of sale_status, lead_status and rejected_status",
                    shown(raw)
                )));
            }
            listed = Some(status);
        }
    }
    if let Some(status) = listed {
        return Ok(status);
    }
    if let Some(status) = mapping.and_then(|m| m.status_of(raw)) {
        return Ok(status);
    }
    global_status(raw).ok_or_else(|| {
        DomainError::invalid(format!(
            "status {:?} is not a status clickback knows: send approved, pending or rejected (or a word of the integration guide's list), or name it in the offer's postback_mapping.status_values",
            shown(raw)
        ))
    })
}

/// What a status word, an amount and a currency say.
type Values = (ConversionStatus, Option<Money>, Option<Currency>);

fn read_values(
    slots: &Slots<'_>,
    mapping: Option<&PostbackMapping>,
) -> Result<Values, DomainError> {
    let status = read_status(slots.get(Field::Status), &slots.inline, mapping)?;
    let format = mapping.map(|m| &m.amount);
    let amount = match slots.get(Field::Amount) {
        None => None,
        Some(raw) => match format {
            Some(format) => format.parse(raw),
            None => Money::parse(raw).map(Some),
        }
        .map_err(|e| e.in_field("amount"))?,
    };
    if amount.is_some_and(|a| a > MAX_AMOUNT) {
        return Err(DomainError::invalid(format!(
            "amount: at most {MAX_AMOUNT} per conversion"
        )));
    }
    let currency = match slots.get(Field::Currency) {
        Some(raw) if format.is_some_and(|f| f.unfilled_as_absent) && is_unfilled_macro(raw) => None,
        Some(raw) => Some(Currency::parse(raw)?),
        None => None,
    };
    Ok((status, amount, currency))
}

impl PostbackRequest {
    /// Reads a postback by the global names, before its offer is known.
    ///
    /// `mapped_click_id_names` is asked only when no global name carries a
    /// click id: the names some offer's `postback_mapping` gives the click
    /// id. The offer of the click found must then map that name too.
    pub fn from_params<F>(params: &Params, mapped_click_id_names: F) -> Result<Self, DomainError>
    where
        F: FnOnce() -> Vec<String>,
    {
        let mut slots = collect(params, None)?;
        let mut click_id_by_mapping = false;
        if slots.get(Field::ClickId).is_none() {
            let names = mapped_click_id_names();
            if !names.is_empty() {
                for (name, value) in params.pairs() {
                    if !value.is_empty() && names.iter().any(|n| n == name) {
                        slots.put(Field::ClickId, name, value)?;
                        click_id_by_mapping = true;
                    }
                }
            }
        }
        let (click_id, token, identity) = read_identity(&slots)?;
        let (values, deferred) = match read_values(&slots, None) {
            Ok(values) => (values, None),
            Err(e) => ((ConversionStatus::Approved, None, None), Some(e)),
        };
        let (status, amount, currency) = values;
        Ok(Self {
            click_id,
            token,
            identity,
            amount,
            currency,
            status,
            ignored: slots.ignored,
            reading: Reading::Global {
                deferred,
                click_id_by_mapping,
            },
        })
    }

    /// This postback as `offer` reads it: `Some` new reading under the
    /// offer's `postback_mapping`, or `None` when the global reading stands.
    /// A value the global rules could not read, and no mapping reads, is
    /// refused here.
    pub fn for_offer(&self, offer: &Offer, params: &Params) -> Result<Option<Self>, DomainError> {
        let Reading::Global {
            deferred,
            click_id_by_mapping,
        } = &self.reading
        else {
            return Ok(None);
        };
        let Some(mapping) = &offer.postback_mapping else {
            if *click_id_by_mapping {
                return Err(DomainError::invalid("click_id is required"));
            }
            return match deferred {
                Some(error) => Err(error.clone()),
                None => Ok(None),
            };
        };
        let slots = collect(params, Some(mapping))?;
        let (click_id, token, identity) = read_identity(&slots)?;
        if click_id != self.click_id {
            return Err(DomainError::invalid(
                "click_id: this offer's postback_mapping reads another click id than the global names",
            ));
        }
        let (status, amount, currency) = read_values(&slots, Some(mapping))?;
        Ok(Some(Self {
            click_id,
            token,
            identity,
            amount,
            currency,
            status,
            ignored: slots.ignored,
            reading: Reading::Mapped,
        }))
    }
}

/// The click, the token and the conversion's identity: what the look-up needs.
fn read_identity(slots: &Slots<'_>) -> Result<(ClickId, Option<String>, Identity), DomainError> {
    let raw = slots
        .get(Field::ClickId)
        .ok_or_else(|| DomainError::invalid("click_id is required"))?;
    let click_id = ClickId::parse(raw).map_err(|e| {
        if is_unfilled_macro(raw) {
            DomainError::invalid(format!(
                "click_id: {:?} is a macro the sender's platform did not replace with the click id",
                shown(raw)
            ))
        } else {
            e
        }
    })?;
    let identity = match slots.get(Field::Txid) {
        Some(txid) => Identity::Txid(bounded_text(txid, "txid")?),
        None => Identity::Goal(bounded_text(
            slots.get(Field::Goal).unwrap_or("default"),
            "goal",
        )?),
    };
    Ok((
        click_id,
        slots.get(Field::Token).map(str::to_owned),
        identity,
    ))
}
