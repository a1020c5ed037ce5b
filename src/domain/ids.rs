//! Identifiers that arrive from the outside world: offer and affiliate ids
//! chosen by the operator, and the click ids clickback mints itself.
//!
//! Parsing happens once, at the HTTP edge; everything behind it holds these
//! types, so a raw string can never reach a Redis key or a stats field.

use std::borrow::Borrow;
use std::fmt;

use super::DomainError;

/// The operator-chosen identifier alphabet of API.md: 1–64 of `A-Z a-z 0-9 _ -`.
///
/// The alphabet excludes `|` and `:`, which is what lets offer and affiliate
/// ids be joined into Redis keys and stats fields without escaping.
fn is_operator_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! operator_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Accepts only the API.md identifier alphabet, naming the field in the error.
            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                if is_operator_id(raw) {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(DomainError::invalid(concat!(
                        $what,
                        " must be 1-64 characters of A-Z a-z 0-9 _ -"
                    )))
                }
            }

            /// The id as it appears on the wire and in keys.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(|e| serde::de::Error::custom(e.detail))
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

operator_id!(
    /// An offer: one advertiser landing page with its payout rules.
    OfferId,
    "offer_id"
);
operator_id!(
    /// An affiliate (publisher) who is credited for the clicks it sends.
    AffiliateId,
    "aff_id"
);

/// URL-safe base64 alphabet (RFC 4648 §5); click ids use it so they need no
/// escaping in a redirect URL, a Redis key or an advertiser's database.
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Length of a click id: 128 bits (122 of them random) in unpadded base64url.
pub const CLICK_ID_LEN: usize = 22;

/// Number of storage shards; the first character of a click id names its shard.
pub const SHARD_COUNT: usize = 64;

/// Encodes bytes as unpadded base64url.
pub fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(BASE64URL[index as usize]));
        }
    }
    out
}

/// The character that names shard `index` (0..SHARD_COUNT) in keys.
pub fn shard_char(index: usize) -> char {
    char::from(BASE64URL[index % SHARD_COUNT])
}

/// An unguessable click id, minted per tracked click.
///
/// 16 bytes from a v4 UUID (122 random bits from a CSPRNG) encoded as 22
/// base64url characters. The first character doubles as the shard: it is
/// uniformly random over 64 values and becomes the Redis hash tag of every key
/// that belongs to the click, so one click's keys live in one cluster slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ClickId(String);

impl ClickId {
    /// Mints a fresh random click id.
    pub fn generate() -> Self {
        Self(base64url(uuid::Uuid::new_v4().as_bytes()))
    }

    /// Mints a fresh random click id in a given shard (the first character of
    /// a visitor hash, so that one visitor's clicks and their duplicate marker
    /// share a hash tag). 116 random bits remain.
    pub fn generate_in_shard(shard: char) -> Self {
        let mut id = base64url(uuid::Uuid::new_v4().as_bytes());
        if BASE64URL.contains(&(shard as u8)) && shard.is_ascii() {
            id.replace_range(0..1, shard.encode_utf8(&mut [0; 4]));
        }
        Self(id)
    }

    /// Accepts exactly the shape [`ClickId::generate`] produces.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.len() == CLICK_ID_LEN && raw.bytes().all(|b| BASE64URL.contains(&b)) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::invalid(
                "click_id is not a click id issued by this tracker",
            ))
        }
    }

    /// The id as it appears on the wire and in keys.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shard character: the Redis hash tag for all of this click's keys.
    pub fn shard(&self) -> char {
        // A parsed or generated id always has CLICK_ID_LEN ASCII characters.
        self.0.chars().next().unwrap_or('A')
    }
}

impl fmt::Display for ClickId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_ids_accept_the_documented_alphabet_only() {
        assert!(OfferId::parse("summer-sale_2026").is_ok());
        assert!(OfferId::parse(&"a".repeat(64)).is_ok());
        assert!(OfferId::parse(&"a".repeat(65)).is_err());
        assert!(OfferId::parse("").is_err());
        for bad in ["a b", "a|b", "a:b", "é", "a/b", "a\0b", "{x}"] {
            assert!(AffiliateId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn generated_click_ids_are_url_safe_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = ClickId::generate();
            assert_eq!(id.as_str().len(), CLICK_ID_LEN);
            assert_eq!(ClickId::parse(id.as_str()).as_ref(), Ok(&id));
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn click_ids_spread_over_all_shards() {
        let shards: std::collections::HashSet<char> =
            (0..5000).map(|_| ClickId::generate().shard()).collect();
        assert_eq!(shards.len(), SHARD_COUNT);
    }

    #[test]
    fn click_ids_can_be_minted_in_a_chosen_shard() {
        let id = ClickId::generate_in_shard('Q');
        assert_eq!(id.shard(), 'Q');
        assert_eq!(ClickId::parse(id.as_str()), Ok(id));
        assert_eq!(ClickId::generate_in_shard('%').as_str().len(), CLICK_ID_LEN);
    }

    #[test]
    fn malformed_click_ids_are_refused() {
        for bad in [
            "",
            "short",
            &"A".repeat(23),
            "AAAAAAAAAAAAAAAAAAAAA=",
            "AAAAAAAAAAAAAAAAAAAA/A",
        ] {
            assert!(ClickId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
