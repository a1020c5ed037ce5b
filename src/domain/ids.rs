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
operator_id!(
    /// An advertiser: the party whose offers convert and who sends postbacks.
    AdvertiserId,
    "advertiser_id"
);

/// URL-safe base64 alphabet (RFC 4648 §5); click ids use it so they need no
/// escaping in a redirect URL, a Redis key or an advertiser's database.
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Length of a click id: shard (1), hour (4), bucket (2) and 96 random bits (16).
pub const CLICK_ID_LEN: usize = 23;

/// Length of the click ids minted before hour buckets (one Redis key per
/// click); still accepted so that their postbacks keep working.
pub const LEGACY_CLICK_ID_LEN: usize = 22;

/// Number of storage shards; the first character of a click id names its shard.
pub const SHARD_COUNT: usize = 64;

/// Most buckets per shard and hour: two base64url characters.
pub const MAX_CLICK_BUCKETS: u16 = 4096;

/// Buckets per shard and hour when nothing else is configured.
pub const DEFAULT_CLICK_BUCKETS: u16 = 64;

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
/// `S HHHH BB RRRRRRRRRRRRRRRR` in base64url, 23 characters:
/// - `S`, the shard: the Redis hash tag of every key that belongs to the
///   click, so one click's keys live in one cluster slot;
/// - `HHHH`, the UTC hour of the click, and `BB`, one of the configured
///   buckets of that shard and hour: together the hash that stores the click
///   (`cb:{S}:c:HHHHBB`), so a postback finds it from the id alone;
/// - 96 random bits from a CSPRNG (v4 UUID), the field within the bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ClickId(String);

/// Appends the low `chars * 6` bits of `value` as base64url, most significant first.
fn push_base64url_bits(out: &mut String, value: u128, chars: u32) {
    for i in (0..chars).rev() {
        out.push(char::from(BASE64URL[((value >> (6 * i)) & 0x3f) as usize]));
    }
}

/// 122 random bits from a v4 UUID, the version and variant bits squeezed out.
fn random_bits() -> u128 {
    let r = uuid::Uuid::new_v4().as_u128();
    // Layout of a v4 UUID: 48 random | 4 version | 12 random | 2 variant | 62 random.
    let high = r >> 80;
    let middle = (r >> 64) & 0xfff;
    let low = r & ((1 << 62) - 1);
    (high << 74) | (middle << 62) | low
}

/// The shard named by six of [`random_bits`]' bits the id's other parts leave unused.
fn shard_of(bits: u128) -> char {
    shard_char((bits >> 108) as usize & 0x3f)
}

/// A shard picked at random, for writes tied to no visitor or click.
pub fn random_shard() -> char {
    shard_of(random_bits())
}

impl ClickId {
    /// Mints a fresh click id in a random shard and bucket, for the current hour.
    pub fn generate() -> Self {
        let bits = random_bits();
        Self::mint_from(
            shard_of(bits),
            super::unix_now(),
            DEFAULT_CLICK_BUCKETS,
            bits,
        )
    }

    /// Mints a fresh click id in a given shard (the first character of a
    /// visitor hash, so that one visitor's clicks and their duplicate marker
    /// share a hash tag) for the current hour.
    pub fn generate_in_shard(shard: char) -> Self {
        Self::mint(shard, super::unix_now(), DEFAULT_CLICK_BUCKETS)
    }

    /// Mints the id of a click made at `created_at` (unix seconds) in `shard`,
    /// in one of `buckets` buckets (1 to [`MAX_CLICK_BUCKETS`]) picked at random.
    pub fn mint(shard: char, created_at: u64, buckets: u16) -> Self {
        Self::mint_from(shard, created_at, buckets, random_bits())
    }

    fn mint_from(shard: char, created_at: u64, buckets: u16, bits: u128) -> Self {
        let shard = if shard.is_ascii() && BASE64URL.contains(&(shard as u8)) {
            shard
        } else {
            shard_char(0)
        };
        let buckets = u128::from(buckets.clamp(1, MAX_CLICK_BUCKETS));
        let bucket = ((bits >> 96) & 0xfff) % buckets;
        let mut id = String::with_capacity(CLICK_ID_LEN);
        id.push(shard);
        push_base64url_bits(&mut id, u128::from(created_at / 3600), 4);
        push_base64url_bits(&mut id, bucket, 2);
        push_base64url_bits(&mut id, bits, 16);
        Self(id)
    }

    /// Accepts exactly the shapes clickback mints: [`ClickId::generate`]'s
    /// and the older one of [`LEGACY_CLICK_ID_LEN`] characters.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if (raw.len() == CLICK_ID_LEN || raw.len() == LEGACY_CLICK_ID_LEN)
            && raw.bytes().all(|b| BASE64URL.contains(&b))
        {
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

    /// Where the click is stored: its hour bucket (`HHHHBB`) and its field in
    /// it, or `None` for a legacy id, stored under a key of its own.
    pub fn bucket(&self) -> Option<(&str, &str)> {
        if self.0.len() == CLICK_ID_LEN {
            Some((&self.0[1..7], &self.0[7..]))
        } else {
            None
        }
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
    fn random_shards_cover_all_shards() {
        let shards: std::collections::HashSet<char> = (0..5000).map(|_| random_shard()).collect();
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
    fn a_click_id_names_the_hour_and_bucket_that_store_it() {
        // 2026-11-28 16:xx UTC is hour 498,874 = 0x79CBA = base64url "B5y6".
        let at = 1_795_946_400 + 1_234;
        assert_eq!(at / 3600, 0x79CBA);
        let id = ClickId::mint('Q', at, 1);
        let (bucket, field) = id.bucket().expect("bucketed");
        assert_eq!(bucket, "B5y6AA");
        assert_eq!(field.len(), 16);
        assert_eq!(
            ClickId::mint('Q', at + 3_600, 1).bucket().map(|b| b.0),
            Some("B5y7AA")
        );
        // Buckets spread over exactly the configured number.
        let buckets: std::collections::HashSet<String> = (0..4000)
            .filter_map(|_| {
                ClickId::mint('Q', at, 5)
                    .bucket()
                    .map(|(b, _)| b.to_owned())
            })
            .collect();
        assert_eq!(buckets.len(), 5);
        assert!(buckets.iter().all(|b| b.starts_with("B5y6")));
        assert_eq!(ClickId::mint('Q', at, 9999).as_str().len(), CLICK_ID_LEN);
    }

    #[test]
    fn legacy_click_ids_still_parse_and_have_no_bucket() {
        let legacy = ClickId::parse("my1skY0rTpyqDSD5or0iyg").expect("22 characters");
        assert_eq!(legacy.shard(), 'm');
        assert_eq!(legacy.bucket(), None);
    }

    #[test]
    fn the_random_part_keeps_96_bits() {
        // Fields of one bucket never repeat and use the whole alphabet.
        let mut fields = std::collections::HashSet::new();
        let mut alphabet = std::collections::HashSet::new();
        for _ in 0..5000 {
            let id = ClickId::mint('A', 0, 1);
            let field = id.bucket().expect("bucketed").1.to_owned();
            alphabet.extend(field.chars());
            assert!(fields.insert(field));
        }
        assert_eq!(alphabet.len(), 64);
    }

    #[test]
    fn malformed_click_ids_are_refused() {
        for bad in [
            "",
            "short",
            &"A".repeat(21),
            &"A".repeat(24),
            "AAAAAAAAAAAAAAAAAAAAA=",
            "AAAAAAAAAAAAAAAAAAAA/A",
        ] {
            assert!(ClickId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
