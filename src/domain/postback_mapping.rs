//! Postback dialects: the parameter names and status words that advertisers'
//! platforms send, and an offer's `postback_mapping` for what no global rule
//! can decide.
//!
//! # Global names
//!
//! [`global_name`] says what a parameter name means to every offer. A name
//! is global only when every platform researched (docs/integration.md, with
//! sources) uses it for the same thing; anything else belongs in an offer's
//! mapping. Names are case-sensitive, as the platforms spell them. The table
//! is a `match`: nothing is built or allocated per request.
//!
//! # Status words
//!
//! [`global_status`] reads the status words those platforms use, in any
//! case. Numeric codes are not global: `1`, `2` and `3` mean different things
//! on different platforms, so they are an offer's `status_values`.
//!
//! # An offer's mapping
//!
//! [`PostbackMapping`] renames parameters, names status values and says how
//! amounts are written (cents, decimal comma, rounding, unfilled macros).
//! A mapping that would make a name mean two things is refused when saved.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ConversionStatus, DomainError, Money};

/// What a postback parameter carries.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The click being converted.
    ClickId,
    /// The offer's postback secret.
    Token,
    /// The advertiser's transaction or order id.
    Txid,
    /// The event name.
    Goal,
    /// The sale amount.
    Amount,
    /// The amount's currency.
    Currency,
    /// approved / pending / rejected.
    Status,
}

impl Field {
    /// How many fields there are (slots of a parse).
    pub const COUNT: usize = 7;

    /// The field's canonical parameter name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClickId => "click_id",
            Self::Token => "token",
            Self::Txid => "txid",
            Self::Goal => "goal",
            Self::Amount => "amount",
            Self::Currency => "currency",
            Self::Status => "status",
        }
    }

    /// The field's slot in a parse.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a global parameter name means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalName {
    /// One of the postback's fields.
    Field(Field),
    /// Keitaro's `sale_status` / `lead_status` / `rejected_status`: the
    /// sender's own comma-separated words for this status.
    InlineStatus(ConversionStatus),
    /// `ts` / `sig` of signed postbacks (read by the signature check).
    Signature,
}

/// The meaning of a parameter name for every offer, or `None` when the name
/// is not global (an offer's mapping may give it one, or it is ignored).
///
/// docs/integration.md lists each name with the platforms that send it.
pub fn global_name(name: &str) -> Option<GlobalName> {
    use Field::*;
    let field = match name {
        "click_id" | "cid" | "subid" | "transaction_id" | "clickid" | "cnv_id" | "irclickid"
        | "ClickId" => ClickId,
        "token" | "security_token" | "verification_token" | "secure" => Token,
        "txid" | "action_id" | "order_id" | "tid" | "rdtk_event_id" | "OrderId" => Txid,
        "goal" | "event" | "goal_id" | "event_id" | "adv_event_id" | "et" | "type"
        | "event_name" | "EventTypeId" | "ActionTrackerId" | "EventTypeCode" => Goal,
        "amount" | "sum" | "revenue" | "payout" | "sale_amount" | "event_revenue" => Amount,
        "currency" | "cnv_currency" | "event_revenue_currency" | "CurrencyCode" => Currency,
        "status" | "cnv_status" => Status,
        "sale_status" => return Some(GlobalName::InlineStatus(ConversionStatus::Approved)),
        "lead_status" => return Some(GlobalName::InlineStatus(ConversionStatus::Pending)),
        "rejected_status" => return Some(GlobalName::InlineStatus(ConversionStatus::Rejected)),
        "ts" | "sig" => return Some(GlobalName::Signature),
        _ => return None,
    };
    Some(GlobalName::Field(field))
}

/// Status words meaning approved (any case).
pub const APPROVED_WORDS: &[&str] = &[
    "approved",
    "approve",
    "sale",
    "confirmed",
    "confirm",
    "accepted",
    "paid",
    "rebill",
    "upsell",
];
/// Status words meaning pending (any case).
pub const PENDING_WORDS: &[&str] = &[
    "pending",
    "lead",
    "hold",
    "on_hold",
    "wait",
    "waiting",
    "new",
    "processing",
];
/// Status words meaning rejected (any case).
pub const REJECTED_WORDS: &[&str] = &[
    "rejected",
    "reject",
    "declined",
    "decline",
    "reversed",
    "reversal",
    "chargeback",
    "refund",
    "refunded",
    "cancelled",
    "canceled",
    "cancel",
    "fraud",
    "trash",
    "invalid",
];

/// The status a global word names, in any case; `None` for anything else
/// (numeric codes included).
pub fn global_status(raw: &str) -> Option<ConversionStatus> {
    let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(raw));
    if is(APPROVED_WORDS) {
        Some(ConversionStatus::Approved)
    } else if is(PENDING_WORDS) {
        Some(ConversionStatus::Pending)
    } else if is(REJECTED_WORDS) {
        Some(ConversionStatus::Rejected)
    } else {
        None
    }
}

/// Whether a value is a macro the sender's platform left unreplaced:
/// `{revenue}`, `#price#`, `[SUB1]`, `(event_revenue)`, `<payout>`,
/// `%amount%`, `$sum$`, `{}`, or the placeholders `OPTIONAL` / `REPLACE`
/// that trackers' templates carry.
pub fn is_unfilled_macro(raw: &str) -> bool {
    if raw == "OPTIONAL" || raw == "REPLACE" {
        return true;
    }
    let bytes = raw.as_bytes();
    let [open, inner @ .., close] = bytes else {
        return false;
    };
    let paired = matches!(
        (open, close),
        (b'{', b'}')
            | (b'[', b']')
            | (b'(', b')')
            | (b'<', b'>')
            | (b'#', b'#')
            | (b'%', b'%')
            | (b'$', b'$')
    );
    paired
        && inner
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':' | b' '))
}

/// Whether an unused parameter's name looks like it carries an event or an
/// order (`goal_id`, `adv_event_id`, `et`, `tid`, `order_number`, …): on a
/// postback answered `duplicate`, such a parameter may be a second event
/// that clickback could not tell apart, so the log warns about it.
pub fn looks_like_event_or_order(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "et" | "e" | "t" | "tid" | "xid" | "type" | "adv_sub" | "step"
    ) {
        return true;
    }
    const WORDS: [&str; 14] = [
        "event",
        "goal",
        "order",
        "txn",
        "transaction",
        "action",
        "conversion",
        "purchase",
        "deposit",
        "invoice",
        "receipt",
        "upsell",
        "rebill",
        "payment",
    ];
    WORDS.iter().any(|w| lower.contains(w))
}

/// A status an offer's mapping can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MappedStatus {
    /// Counts and pays.
    Approved,
    /// Recorded, not yet paid.
    Pending,
    /// Never pays.
    Rejected,
}

impl From<MappedStatus> for ConversionStatus {
    fn from(status: MappedStatus) -> Self {
        match status {
            MappedStatus::Approved => Self::Approved,
            MappedStatus::Pending => Self::Pending,
            MappedStatus::Rejected => Self::Rejected,
        }
    }
}

/// How an amount is scaled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AmountScale {
    /// `12.34` is 12.34 (the default).
    #[default]
    Units,
    /// `1234` is 12.34: minor units, as Adjust's `{revenue}` placeholder.
    Cents,
}

/// How an offer's advertiser writes amounts. The default is the global
/// rule: a plain decimal with `.` and at most 6 fraction digits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountFormat {
    /// Units or cents.
    #[serde(default)]
    pub scale: AmountScale,
    /// `12,34` means 12.34; a `.` is then refused (`1.234` would be ambiguous).
    #[serde(default)]
    pub decimal_comma: bool,
    /// More than 6 fraction digits are rounded half-up to 6 instead of refused.
    #[serde(default)]
    pub round_half_up: bool,
    /// An amount or currency that is an unreplaced macro (`{revenue}`) counts
    /// as absent instead of being refused.
    #[serde(default)]
    pub unfilled_as_absent: bool,
}

/// Most digits an amount under a mapping may have (whole and fraction).
const MAX_AMOUNT_DIGITS: usize = 30;

impl AmountFormat {
    /// Whether this is the global rule.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Reads a non-empty amount; `None` when it is an unfilled macro that
    /// this format treats as absent.
    pub fn parse(&self, raw: &str) -> Result<Option<Money>, DomainError> {
        if self.unfilled_as_absent && is_unfilled_macro(raw) {
            return Ok(None);
        }
        if self.is_default() {
            return Money::parse(raw).map(Some);
        }
        let separator = if self.decimal_comma { ',' } else { '.' };
        let other = if self.decimal_comma { '.' } else { ',' };
        let invalid = || {
            DomainError::invalid(format!(
                "must be a non-negative decimal written like \"{}\"{}",
                match (self.scale, self.decimal_comma) {
                    (AmountScale::Units, false) => "12.50",
                    (AmountScale::Units, true) => "12,50",
                    (AmountScale::Cents, false) => "1250 (cents)",
                    (AmountScale::Cents, true) => "1250 (cents)",
                },
                if self.round_half_up {
                    ""
                } else {
                    " with at most 6 fraction digits"
                }
            ))
        };
        if raw.contains(other) {
            return Err(invalid());
        }
        let (whole, fraction) = match raw.split_once(separator) {
            Some((w, f)) if !f.is_empty() => (w, f),
            Some(_) => return Err(invalid()),
            None => (raw, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || whole.len() + fraction.len() > MAX_AMOUNT_DIGITS
        {
            return Err(invalid());
        }
        let mut digits: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            digits = digits * 10 + i128::from(digit - b'0');
        }
        // value = digits / 10^exponent units; micros = digits * 10^6 / 10^exponent.
        let exponent = fraction.len()
            + match self.scale {
                AmountScale::Units => 0,
                AmountScale::Cents => 2,
            };
        let micros = if exponent <= 6 {
            digits.checked_mul(10_i128.pow((6 - exponent) as u32))
        } else {
            let divisor = 10_i128.pow((exponent - 6) as u32);
            if digits % divisor != 0 && !self.round_half_up {
                return Err(invalid());
            }
            Some((digits + divisor / 2) / divisor)
        };
        micros
            .and_then(|m| i64::try_from(m).ok())
            .map(|m| Some(Money::from_micros(m)))
            .ok_or_else(invalid)
    }
}

/// Most entries of `params` or of `status_values`.
const MAX_ENTRIES: usize = 32;
/// Longest parameter name or status value of a mapping (bytes).
const MAX_NAME_LEN: usize = 64;

/// An offer's `postback_mapping` (API.md §9), as the admin API shows it and
/// as it is stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostbackMapping {
    /// The advertiser's parameter name → the field it carries.
    #[serde(default, deserialize_with = "unique_keys")]
    pub params: BTreeMap<String, Field>,
    /// The advertiser's status value (any case) → the status it means.
    #[serde(default, deserialize_with = "unique_keys")]
    pub status_values: BTreeMap<String, MappedStatus>,
    /// How amounts are written.
    #[serde(default)]
    pub amount: AmountFormat,
}

impl PostbackMapping {
    /// Checks a mapping from the admin API; `None` when it changes nothing.
    pub fn validate(self) -> Result<Option<Self>, DomainError> {
        let invalid = |detail: String| DomainError::invalid(format!("postback_mapping.{detail}"));
        if self.params.len() > MAX_ENTRIES || self.status_values.len() > MAX_ENTRIES {
            return Err(invalid(format!(
                "params and status_values: at most {MAX_ENTRIES} entries each"
            )));
        }
        for (name, field) in &self.params {
            let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
            if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(allowed) {
                return Err(invalid(format!(
                    "params: {name:?} must be 1-{MAX_NAME_LEN} characters of A-Z a-z 0-9 _ - ."
                )));
            }
            match global_name(name) {
                None => {}
                Some(GlobalName::Field(global)) if global == *field => {}
                Some(GlobalName::Field(global)) => {
                    return Err(invalid(format!(
                        "params: {name:?} already means {global} for every offer; mapping it to {field} would make it ambiguous"
                    )))
                }
                Some(_) => {
                    return Err(invalid(format!(
                        "params: {name:?} is reserved (Keitaro status lists, signed postbacks)"
                    )))
                }
            }
        }
        let mut seen: Vec<(&str, MappedStatus)> = Vec::new();
        for (value, status) in &self.status_values {
            let value = value.as_str();
            if value.trim().is_empty()
                || value.len() > MAX_NAME_LEN
                || value.chars().any(char::is_control)
                || value.contains(',')
            {
                return Err(invalid(format!(
                    "status_values: {value:?} must be 1-{MAX_NAME_LEN} bytes, without commas or control characters"
                )));
            }
            if let Some((other, _)) = seen.iter().find(|(v, _)| v.eq_ignore_ascii_case(value)) {
                return Err(invalid(format!(
                    "status_values: {other:?} and {value:?} are the same value (case does not matter)"
                )));
            }
            seen.push((value, *status));
        }
        let unchanged =
            self.params.is_empty() && self.status_values.is_empty() && self.amount.is_default();
        Ok((!unchanged).then_some(self))
    }

    /// The field this offer's advertiser sends under `name`, if mapped.
    pub fn field_of(&self, name: &str) -> Option<Field> {
        self.params.get(name).copied()
    }

    /// The status a value names under this mapping (any case).
    pub fn status_of(&self, raw: &str) -> Option<ConversionStatus> {
        self.status_values
            .iter()
            .find(|(value, _)| value.eq_ignore_ascii_case(raw))
            .map(|(_, status)| ConversionStatus::from(*status))
    }

    /// The advertiser's names of `field`.
    pub fn names_of(&self, field: Field) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .filter(move |(_, f)| **f == field)
            .map(|(name, _)| name.as_str())
    }
}

/// A JSON object read into a map, refusing a key given twice (where serde
/// would silently keep the last).
fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Keys<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Keys<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(
            self,
            mut map: M,
        ) -> Result<Self::Value, M::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, V>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("{key:?} is given twice")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Keys(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(json: &str) -> Result<Option<PostbackMapping>, String> {
        let m: PostbackMapping = serde_json::from_str(json).map_err(|e| e.to_string())?;
        m.validate().map_err(|e| e.detail)
    }

    fn format(json: &str) -> AmountFormat {
        serde_json::from_str(json).expect(json)
    }

    fn amount(f: &AmountFormat, raw: &str) -> Result<Option<String>, String> {
        f.parse(raw)
            .map(|m| m.map(|m| m.to_string()))
            .map_err(|e| e.detail)
    }

    #[test]
    fn every_global_name_means_one_field() {
        assert_eq!(
            global_name("cnv_id"),
            Some(GlobalName::Field(Field::ClickId))
        );
        assert_eq!(
            global_name("adv_event_id"),
            Some(GlobalName::Field(Field::Goal))
        );
        assert_eq!(global_name("tid"), Some(GlobalName::Field(Field::Txid)));
        assert_eq!(global_name("secure"), Some(GlobalName::Field(Field::Token)));
        assert_eq!(global_name("sig"), Some(GlobalName::Signature));
        assert_eq!(
            global_name("lead_status"),
            Some(GlobalName::InlineStatus(ConversionStatus::Pending))
        );
        assert_eq!(global_name("CLICK_ID"), None, "names are case-sensitive");
        assert_eq!(global_name("offer_id"), None);
    }

    #[test]
    fn status_words_are_read_in_any_case_and_numbers_are_not_global() {
        assert_eq!(global_status("SALE"), Some(ConversionStatus::Approved));
        assert_eq!(global_status("Confirmed"), Some(ConversionStatus::Approved));
        assert_eq!(global_status("lead"), Some(ConversionStatus::Pending));
        assert_eq!(global_status("Hold"), Some(ConversionStatus::Pending));
        assert_eq!(
            global_status("chargeback"),
            Some(ConversionStatus::Rejected)
        );
        assert_eq!(global_status("REVERSED"), Some(ConversionStatus::Rejected));
        for code in ["1", "2", "3", "5", "signup", ""] {
            assert_eq!(global_status(code), None, "{code}");
        }
    }

    #[test]
    fn unfilled_macros_are_recognised_and_real_values_are_not() {
        for raw in [
            "{revenue}",
            "#price#",
            "[SUB1]",
            "(event_revenue)",
            "<payout>",
            "%amount%",
            "{}",
            "OPTIONAL",
            "{sum:2}",
        ] {
            assert!(is_unfilled_macro(raw), "{raw}");
        }
        for raw in ["12.50", "{", "}", "a{b}", "{a}b", "{a&b}", "optional"] {
            assert!(!is_unfilled_macro(raw), "{raw}");
        }
    }

    #[test]
    fn event_and_order_like_names_are_recognised() {
        for name in [
            "goal_id",
            "et",
            "tid",
            "order_number",
            "EventType",
            "adv_sub",
            "conversion_id",
        ] {
            assert!(looks_like_event_or_order(name), "{name}");
        }
        for name in [
            "nid",
            "offer_id",
            "sub_id_1",
            "from",
            "device_type",
            "aff_sub",
        ] {
            assert!(!looks_like_event_or_order(name), "{name}");
        }
    }

    #[test]
    fn amounts_in_cents_with_a_decimal_comma_and_rounded() {
        let cents = format(r#"{"scale":"cents"}"#);
        assert_eq!(amount(&cents, "1299"), Ok(Some("12.99".into())));
        assert_eq!(amount(&cents, "5"), Ok(Some("0.05".into())));
        let comma = format(r#"{"decimal_comma":true}"#);
        assert_eq!(amount(&comma, "12,34"), Ok(Some("12.34".into())));
        assert_eq!(amount(&comma, "12"), Ok(Some("12".into())));
        assert!(amount(&comma, "1.234").is_err(), "a dot is ambiguous");
        assert!(amount(&comma, "1,234,5").is_err());
        let round = format(r#"{"round_half_up":true}"#);
        assert_eq!(amount(&round, "0.12345678"), Ok(Some("0.123457".into())));
        assert_eq!(amount(&round, "0.0000005"), Ok(Some("0.000001".into())));
        assert_eq!(amount(&round, "0.00000049"), Ok(Some("0".into())));
        assert!(amount(&format(r#"{"scale":"cents"}"#), "0.12345").is_err());
        assert_eq!(
            amount(&format(r#"{"scale":"cents"}"#), "1.5"),
            Ok(Some("0.015".into()))
        );
        let macros = format(r#"{"unfilled_as_absent":true}"#);
        assert_eq!(amount(&macros, "{revenue}"), Ok(None));
        assert_eq!(amount(&macros, "9.5"), Ok(Some("9.5".into())));
        assert!(amount(&AmountFormat::default(), "{revenue}").is_err());
        for bad in ["-1", "1e3", " 1", "", ",5", "5,", "x"] {
            assert!(amount(&comma, bad).is_err(), "{bad:?}");
        }
        assert!(amount(&cents, &"9".repeat(31)).is_err());
        assert!(
            amount(&cents, &"9".repeat(25)).is_err(),
            "beyond i64 micros"
        );
    }

    #[test]
    fn a_mapping_is_validated_and_an_empty_one_is_none() {
        assert_eq!(mapping("{}"), Ok(None));
        let m = mapping(
            r#"{"params":{"r":"click_id","adv_sub":"txid","p":"amount","tid":"txid"},
                "status_values":{"1":"pending","2":"approved","4":"rejected"},
                "amount":{"scale":"cents"}}"#,
        )
        .expect("valid")
        .expect("not empty");
        assert_eq!(m.field_of("r"), Some(Field::ClickId));
        assert_eq!(m.status_of("4"), Some(ConversionStatus::Rejected));
        assert_eq!(
            m.names_of(Field::Txid).collect::<Vec<_>>(),
            ["adv_sub", "tid"]
        );
    }

    #[test]
    fn a_mapping_that_makes_a_name_ambiguous_is_refused() {
        for (bad, why) in [
            (r#"{"params":{"cid":"txid"}}"#, "ambiguous"),
            (r#"{"params":{"payout":"txid"}}"#, "ambiguous"),
            (r#"{"params":{"sig":"txid"}}"#, "reserved"),
            (r#"{"params":{"sale_status":"status"}}"#, "reserved"),
            (r#"{"params":{"r":"click_id","r":"txid"}}"#, "twice"),
            (
                r#"{"status_values":{"ok":"approved","OK":"rejected"}}"#,
                "same value",
            ),
            (
                r#"{"status_values":{"1":"approved","1":"rejected"}}"#,
                "twice",
            ),
            (r#"{"params":{"a b":"txid"}}"#, "characters"),
            (r#"{"params":{"r":"offer"}}"#, "unknown variant"),
            (r#"{"status_values":{"1":"paid"}}"#, "unknown variant"),
            (r#"{"amount":{"scale":"mills"}}"#, "unknown variant"),
            (r#"{"surprise":1}"#, "unknown field"),
        ] {
            let detail = mapping(bad).expect_err(bad);
            assert!(detail.contains(why), "{bad}: {detail}");
        }
    }
}
