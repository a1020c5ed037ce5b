//! API key secrets: minted once, shown once, stored as a hash.
//!
//! A secret is `cbk_<key id>_<43 characters>`: the id names the key, so a
//! presented secret is compared with one stored hash (in constant time),
//! never searched for; the rest is 256 random bits in base64url. 256 random
//! bits cannot be guessed or searched for, so a plain SHA-256 is the right
//! hash: a slow password hash would only slow down every request.

use sha2::{Digest, Sha256};

use crate::domain::ids::base64url;
use crate::domain::signature::constant_time_eq;

/// What every secret starts with, so that a leaked one is recognisable
/// (secret scanners, logs).
pub const SECRET_PREFIX: &str = "cbk_";

/// Length of a key id: 16 lowercase hex characters (64 random bits).
pub const KEY_ID_LEN: usize = 16;

/// A new key's id and secret.
pub struct Minted {
    /// The key id.
    pub id: String,
    /// The secret, to be shown once and forgotten.
    pub secret: String,
    /// What is stored instead of the secret.
    pub hash: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// 256 bits from the operating system's CSPRNG: three v4 UUIDs (366
/// random bits) through SHA-256.
fn random_256() -> [u8; 32] {
    let mut hasher = Sha256::new();
    for _ in 0..3 {
        hasher.update(uuid::Uuid::new_v4().as_bytes());
    }
    hasher.finalize().into()
}

/// Mints a key id and secret.
pub fn mint() -> Minted {
    let random = random_256();
    let id: String = random[..KEY_ID_LEN / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let secret = format!("{SECRET_PREFIX}{id}_{}", base64url(&random_256()));
    let hash = hash(&secret);
    Minted { id, secret, hash }
}

/// The stored form of a secret: base64url SHA-256.
pub fn hash(secret: &str) -> String {
    base64url(&Sha256::digest(secret.as_bytes()))
}

/// The key id a presented secret names, if it has the shape of one.
pub fn key_id(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(SECRET_PREFIX)?;
    let id = rest.get(..KEY_ID_LEN)?;
    rest[KEY_ID_LEN..].starts_with('_').then_some(id)
}

/// Whether `presented` hashes to `stored`, compared in constant time.
pub fn matches(presented: &str, stored: &str) -> bool {
    constant_time_eq(hash(presented).as_bytes(), stored.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_secret_names_its_key_and_matches_only_its_hash() {
        let minted = mint();
        assert_eq!(key_id(&minted.secret), Some(minted.id.as_str()));
        assert!(matches(&minted.secret, &minted.hash));
        assert!(!matches(&format!("{}x", minted.secret), &minted.hash));
        assert!(!minted.hash.contains(&minted.secret));
        assert_eq!(
            minted.secret.len(),
            SECRET_PREFIX.len() + KEY_ID_LEN + 1 + 43
        );
    }

    #[test]
    fn two_mints_differ() {
        let (a, b) = (mint(), mint());
        assert_ne!(a.id, b.id);
        assert_ne!(a.secret, b.secret);
    }

    #[test]
    fn shapes_that_are_not_secrets_name_no_key() {
        for raw in [
            "",
            "cbk_",
            "cbk_0123",
            "cbk_0123456789abcdefX",
            "xyz_0123456789abcdef_r",
        ] {
            assert_eq!(key_id(raw), None, "{raw}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let minted = mint();
        assert!(!format!("{minted:?}").contains(&minted.secret));
    }
}
