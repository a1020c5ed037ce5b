//! A recorded click and its compact stored form.

use super::{AffiliateId, ClickId, DomainError, OfferId};

/// Longest sub-ID or source value accepted (bytes), per API.md §1.
pub const MAX_SUB_LEN: usize = 255;

/// Longest ad platform click id kept (bytes): `gclid`, `fbclid` and
/// `ttclid` run to a few hundred characters at most; anything longer is
/// not one and is not kept.
pub const MAX_AD_CLICK_ID_LEN: usize = 512;

/// The ad platforms' own click ids on the tracking link, kept with the
/// click so that its conversion can be forwarded to those platforms
/// (docs/destinations.md). Each is empty when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdClickIds {
    /// Google Ads' click id.
    pub gclid: String,
    /// Meta's click id, the basis of the Conversions API's `fbc`.
    pub fbclid: String,
    /// TikTok's click id.
    pub ttclid: String,
    /// The Google Analytics client id the landing page passed on.
    pub ga_client_id: String,
}

impl AdClickIds {
    /// The parameter names on a tracking link, in stored order.
    pub const NAMES: [&'static str; 4] = ["gclid", "fbclid", "ttclid", "ga_client_id"];

    /// Whether none was given: the click keeps its shorter stored form.
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|f| f.is_empty())
    }

    /// The values in the order of [`AdClickIds::NAMES`].
    pub fn fields(&self) -> [&str; 4] {
        [&self.gclid, &self.fbclid, &self.ttclid, &self.ga_client_id]
    }

    /// Builds the ids from values in the order of [`AdClickIds::NAMES`].
    pub fn from_fields([gclid, fbclid, ttclid, ga_client_id]: [&str; 4]) -> Self {
        Self {
            gclid: gclid.to_owned(),
            fbclid: fbclid.to_owned(),
            ttclid: ttclid.to_owned(),
            ga_client_id: ga_client_id.to_owned(),
        }
    }
}

/// One tracked click: everything a later postback needs to credit it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Click {
    /// The id handed to the advertiser in the redirect.
    pub id: ClickId,
    /// The offer that was clicked.
    pub offer_id: OfferId,
    /// The affiliate that sent the visitor and gets the credit.
    pub aff_id: AffiliateId,
    /// The affiliate's own tracking values `sub1`…`sub5` (empty when absent).
    pub subs: [String; 5],
    /// The affiliate's traffic source label (empty when absent).
    pub source: String,
    /// Unix seconds of the click.
    pub created_at: u64,
    /// Unix seconds at which the offer's attribution window, as it was at
    /// click time, closes: no conversion is credited to the click after it.
    pub expires_at: u64,
    /// Salted hash of IP + user agent: recognises a repeat visitor, reveals no IP.
    pub visitor: String,
    /// Ad platforms' click ids from the tracking link (none for most clicks).
    pub ad_ids: AdClickIds,
}

/// Separator of the stored form. NUL can never occur in a field: the query
/// reader refuses it, and ids and hashes have fixed alphabets.
const SEP: char = '\0';
/// Version tag of the stored form, so the encoding can change without a flag day.
const VERSION: &str = "3";
/// The form of a click with ad platform click ids: version 3's fields, then
/// the four ids. A click without any keeps version 3, so it costs nothing.
const VERSION_4: &str = "4";
/// The form before 3: the same fields and a last one, the unique-visitor
/// flag, which nothing read; still read (the flag is skipped).
const VERSION_2: &str = "2";
/// The form without the attribution window, stored under keys that expired
/// with the window; still read.
const VERSION_1: &str = "1";

impl Click {
    /// Whether the click's attribution window has closed at `now` (unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    /// Seconds until the attribution window closes, at least 1: the TTL of its storage.
    pub fn ttl_secs(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now).max(1)
    }

    /// The stored form: one string of NUL-separated fields, the most compact
    /// shape Redis keeps as a single allocation (see docs/architecture.md).
    ///
    /// Whether the click was unique is not in it: the store decides that
    /// while it writes the record (duplicate-click marker and counter), so
    /// the record can be written without waiting for the decision.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 + self.subs.iter().map(String::len).sum::<usize>());
        let with_ad_ids = !self.ad_ids.is_empty();
        out.push_str(if with_ad_ids { VERSION_4 } else { VERSION });
        for field in [
            &self.created_at.to_string(),
            &self.expires_at.saturating_sub(self.created_at).to_string(),
            self.offer_id.as_str(),
            self.aff_id.as_str(),
            &self.subs[0],
            &self.subs[1],
            &self.subs[2],
            &self.subs[3],
            &self.subs[4],
            &self.source,
            &self.visitor,
        ] {
            out.push(SEP);
            out.push_str(field);
        }
        if with_ad_ids {
            for field in self.ad_ids.fields() {
                out.push(SEP);
                out.push_str(field);
            }
        }
        out
    }

    /// Reads a stored click back; anything unexpected is an error, never a panic.
    pub fn decode(id: ClickId, stored: &str) -> Result<Self, DomainError> {
        let mut fields: Vec<&str> = stored.split(SEP).collect();
        let corrupt = || DomainError::invalid("stored click record is corrupt");
        let created_at: u64 = fields
            .get(1)
            .and_then(|f| f.parse().ok())
            .ok_or_else(corrupt)?;
        let ad_ids = match (fields[0], fields.len()) {
            (VERSION_4, 16) => {
                let ids = AdClickIds::from_fields([fields[12], fields[13], fields[14], fields[15]]);
                fields.truncate(12);
                fields[0] = VERSION;
                ids
            }
            _ => AdClickIds::default(),
        };
        let expires_at = match (fields[0], fields.len()) {
            (VERSION, 12) | (VERSION_2, 13) => {
                let window: u64 = fields.remove(2).parse().map_err(|_| corrupt())?;
                created_at.checked_add(window).ok_or_else(corrupt)?
            }
            // Its key expired with the window; no other deadline is known.
            (VERSION_1, 12) => u64::MAX,
            _ => return Err(corrupt()),
        };
        // Versions 1 and 2 end with the unique flag: checked, then dropped.
        if fields.len() == 12 && !matches!(fields[11], "0" | "1") {
            return Err(corrupt());
        }
        Ok(Self {
            id,
            created_at,
            expires_at,
            offer_id: OfferId::parse(fields[2]).map_err(|_| corrupt())?,
            aff_id: AffiliateId::parse(fields[3]).map_err(|_| corrupt())?,
            subs: [
                fields[4].to_owned(),
                fields[5].to_owned(),
                fields[6].to_owned(),
                fields[7].to_owned(),
                fields[8].to_owned(),
            ],
            source: fields[9].to_owned(),
            visitor: fields[10].to_owned(),
            ad_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Click {
        Click {
            id: ClickId::generate(),
            offer_id: OfferId::parse("summer").expect("valid"),
            aff_id: AffiliateId::parse("aff_7").expect("valid"),
            subs: ["a b".into(), "".into(), "é|x".into(), "".into(), "5".into()],
            source: "fb".into(),
            created_at: 1_795_305_600,
            expires_at: 1_795_305_600 + 86_400,
            visitor: "h4sh".into(),
            ad_ids: AdClickIds::default(),
        }
    }

    #[test]
    fn ad_click_ids_round_trip_and_cost_nothing_when_absent() {
        let plain = sample();
        let mut tagged = sample();
        tagged.ad_ids = AdClickIds::from_fields(["Cj0KCQ", "", "E.C.P.x", "123.456"]);
        let stored = tagged.encode();
        assert!(stored.starts_with('4'), "{stored:?}");
        assert_eq!(
            Click::decode(tagged.id.clone(), &stored),
            Ok(tagged.clone())
        );
        assert!(plain.encode().starts_with('3'));
        assert_eq!(
            tagged.encode().len(),
            plain.encode().len() + 4 + "Cj0KCQE.C.P.x123.456".len()
        );
    }

    #[test]
    fn encoding_round_trips() {
        let click = sample();
        let stored = click.encode();
        assert_eq!(Click::decode(click.id.clone(), &stored), Ok(click));
    }

    #[test]
    fn encoding_is_compact() {
        let mut click = sample();
        click.subs = Default::default();
        click.source.clear();
        // version, time, window, ids, hash and eleven separators: no field names, no JSON.
        assert!(click.encode().len() <= 46, "{:?}", click.encode());
        assert!(click.encode().ends_with("\u{0}h4sh"));
    }

    #[test]
    fn records_of_the_second_format_still_decode() {
        let click = sample();
        for flag in ["1", "0"] {
            let v2 = format!(
                "2\x001795305600\x0086400\0summer\0aff_7\0a b\0\0é|x\0\x005\0fb\0h4sh\0{flag}"
            );
            assert_eq!(Click::decode(click.id.clone(), &v2), Ok(click.clone()));
        }
    }

    #[test]
    fn the_attribution_window_travels_with_the_click() {
        let click = sample();
        let decoded = Click::decode(click.id.clone(), &click.encode()).expect("decodes");
        assert_eq!(decoded.expires_at, 1_795_305_600 + 86_400);
        assert!(!decoded.expired(1_795_305_600 + 86_399));
        assert!(decoded.expired(1_795_305_600 + 86_400));
        assert_eq!(decoded.ttl_secs(1_795_305_600 + 86_000), 400);
        assert_eq!(decoded.ttl_secs(1_795_305_600 + 90_000), 1);
    }

    #[test]
    fn records_of_the_first_format_still_decode() {
        let id = ClickId::generate();
        let v1 = "1\x001795305600\0summer\0aff_7\0s1\0\0\0\0\0fb\0h4sh\x000";
        let click = Click::decode(id, v1).expect("v1 decodes");
        assert_eq!(click.created_at, 1_795_305_600);
        assert_eq!(click.subs[0], "s1");
        assert_eq!(click.visitor, "h4sh");
        assert!(
            !click.expired(u64::MAX - 1),
            "a v1 click expires with its key"
        );
    }

    #[test]
    fn corrupt_records_are_errors() {
        let id = ClickId::generate();
        for bad in [
            "",
            "1",
            "2\x001\0o\0a\0\0\0\0\0\0\0h",
            "1\0x\0o\0a\0\0\0\0\0\0\0h",
            "1\x001\0o o\0a\0\0\0\0\0\0\0h\x001",
            "1\x001\0o\0a\0\0\0\0\0\0\0h\x002",
            "2\x001\0o\0a\0\0\0\0\0\0\0h\x001",
            "2\x001\0x\0o\0a\0\0\0\0\0\0\0h\x001",
            "2\x0018446744073709551615\09\0o\0a\0\0\0\0\0\0\0h\x001",
            "3\x001\0o\0a\0\0\0\0\0\0\0h",
            "3\x001\0x\0o\0a\0\0\0\0\0\0\0h",
            "3\x001\x009\0o\0a\0\0\0\0\0\0\0h\x001",
            "4\x001\x009\0o\0a\0\0\0\0\0\0\0h",
            "4\x001\x009\0o\0a\0\0\0\0\0\0\0h\0g\0f\0t",
        ] {
            assert!(Click::decode(id.clone(), bad).is_err(), "{bad:?} accepted");
        }
    }
}
