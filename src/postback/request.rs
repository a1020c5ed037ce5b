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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::offer::OfferInput;
    use crate::domain::OfferId;

    const CLICK: &str = "BB5zhACue5WnatzmOCzqoZ2";

    fn params(query: &str) -> Params {
        Params::parse(query.as_bytes()).expect(query)
    }

    fn global(query: &str) -> Result<PostbackRequest, String> {
        PostbackRequest::from_params(&params(query), Vec::new).map_err(|e| e.detail)
    }

    fn offer(mapping: serde_json::Value) -> Offer {
        let mut body =
            serde_json::json!({"url": "https://a.example/", "payout": "1", "currency": "EUR"});
        if !mapping.is_null() {
            body["postback_mapping"] = mapping;
        }
        let input: OfferInput = serde_json::from_value(body).expect("offer input");
        Offer::from_input(OfferId::parse("o1").expect("id"), input).expect("valid offer")
    }

    /// The request as `offer` reads it.
    fn for_offer(query: &str, offer: &Offer) -> Result<PostbackRequest, String> {
        let p = params(query);
        let request = PostbackRequest::from_params(&p, Vec::new).map_err(|e| e.detail)?;
        match request.for_offer(offer, &p).map_err(|e| e.detail)? {
            Some(mapped) => Ok(mapped),
            None => Ok(request),
        }
    }

    #[test]
    fn global_names_are_read_and_every_other_name_is_listed_once() {
        let r = global(&format!(
            "nid=1&transaction_id={CLICK}&adv_event_id=3&payout=12.5&cnv_currency=eur&nid=1&sub_id_1=x&sig=&ts="
        ))
        .expect("valid");
        assert_eq!(r.click_id.as_str(), CLICK);
        assert_eq!(r.identity, Identity::Goal("3".into()));
        assert_eq!(r.amount, Some(Money::from_micros(12_500_000)));
        assert_eq!(r.currency.as_ref().map(Currency::as_str), Some("EUR"));
        assert_eq!(r.ignored, ["nid", "sub_id_1"]);
    }

    #[test]
    fn two_names_of_one_field_with_different_values_are_refused_and_empty_ones_are_absent() {
        let detail = global(&format!("cid={CLICK}&click_id=other")).expect_err("conflict");
        assert!(
            detail.contains("cid") && detail.contains("click_id"),
            "{detail}"
        );
        assert!(global(&format!("cid={CLICK}&click_id={CLICK}")).is_ok());
        let r = global(&format!("cid={CLICK}&click_id=&txid=&goal_id=deposit")).expect("valid");
        assert_eq!(r.identity, Identity::Goal("deposit".into()));
    }

    #[test]
    fn keitaro_inline_lists_decide_the_status_before_the_global_words() {
        let status = |query: &str| global(&format!("subid={CLICK}&{query}")).map(|r| r.status);
        assert_eq!(
            status("status=billed&sale_status=billed,paid"),
            Ok(ConversionStatus::Approved)
        );
        assert_eq!(
            status("status=sale&lead_status=Sale&sale_status=approved"),
            Ok(ConversionStatus::Pending)
        );
        assert_eq!(
            status("status=Fake&rejected_status=canceled,%20fake"),
            Ok(ConversionStatus::Rejected)
        );
        assert_eq!(status("status=Chargeback"), Ok(ConversionStatus::Rejected));
        assert_eq!(status(""), Ok(ConversionStatus::Approved));
        let in_two_lists = global(&format!(
            "subid={CLICK}&status=x&sale_status=x&lead_status=x"
        ))
        .expect("the click is readable");
        assert!(matches!(
            in_two_lists.reading,
            Reading::Global {
                deferred: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn a_value_only_a_mapping_can_read_waits_for_the_offer() {
        let query = format!("clickid={CLICK}&status=2&sum=12,5");
        let r = global(&query).expect("the click and identity are readable");
        assert!(matches!(
            r.reading,
            Reading::Global {
                deferred: Some(_),
                ..
            }
        ));
        assert!(for_offer(&query, &offer(serde_json::Value::Null)).is_err());
        let mapped = for_offer(
            &query,
            &offer(serde_json::json!({"status_values": {"2": "pending"},
                                      "amount": {"decimal_comma": true}})),
        )
        .expect("the mapping reads it");
        assert_eq!(mapped.status, ConversionStatus::Pending);
        assert_eq!(mapped.amount, Some(Money::from_micros(12_500_000)));
    }

    #[test]
    fn a_mapping_renames_parameters_and_unlists_them() {
        let o = offer(
            serde_json::json!({"params": {"adv_sub": "txid", "p": "amount"},
                                          "amount": {"scale": "cents", "unfilled_as_absent": true}}),
        );
        let r = for_offer(
            &format!("transaction_id={CLICK}&adv_sub=O-1&p=1299&offer_id=26"),
            &o,
        )
        .expect("valid");
        assert_eq!(r.identity, Identity::Txid("O-1".into()));
        assert_eq!(r.amount, Some(Money::from_micros(12_990_000)));
        assert_eq!(r.ignored, ["offer_id"]);
        let r = for_offer(
            &format!("transaction_id={CLICK}&p=%7Brevenue%7D&currency=%23cur%23"),
            &o,
        )
        .expect("unfilled macros are absent");
        assert_eq!((r.amount, r.currency), (None, None));
    }

    #[test]
    fn a_click_id_under_a_mapped_name_needs_the_offer_to_map_it() {
        let p = params(&format!("r={CLICK}&token=t"));
        let r = PostbackRequest::from_params(&p, || vec!["r".to_owned()]).expect("found");
        assert_eq!(r.click_id.as_str(), CLICK);
        assert!(r.for_offer(&offer(serde_json::Value::Null), &p).is_err());
        let mapped = offer(serde_json::json!({"params": {"r": "click_id"}}));
        assert!(r.for_offer(&mapped, &p).expect("mapped").is_some());
        assert_eq!(
            global(&format!("r={CLICK}")).expect_err("no global name"),
            "click_id is required"
        );
    }

    #[test]
    fn an_unreplaced_click_id_macro_is_named_in_the_refusal() {
        let detail = global("cid={clickid}").expect_err("a macro");
        assert!(detail.contains("macro"), "{detail}");
    }
}
