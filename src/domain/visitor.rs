//! The visitor fingerprint: a keyed hash of IP + user agent, never the IP.
//!
//! The key is derived per UTC day from the configured salt, the way
//! privacy-first analytics tools do it: the same visitor hashes the same all
//! day (enough to spot duplicate clicks), and differently tomorrow, so no one
//! holding the database can follow a person across days or reverse the hash
//! by enumerating the IPv4 space without the salt.

use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{ids::base64url, Day};

type HmacSha256 = Hmac<Sha256>;

/// Hashes visitors; holds the secret salt and the current day's keyed MAC.
pub struct VisitorHasher {
    salt: Vec<u8>,
    /// The MAC keyed with the last day hashed for, cloned per click: the day
    /// key is derived, and HMAC's two key blocks hashed, once a day instead of
    /// once a click (hashing them per click costs ~16 % of a click's
    /// instructions, `benches/callgrind.sh`).
    day_mac: RwLock<(i64, HmacSha256)>,
}

impl std::fmt::Debug for VisitorHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorHasher(<salt redacted>)")
    }
}

impl VisitorHasher {
    /// A hasher with the operator's salt (`CLICKBACK_HASH_SALT`).
    pub fn new(salt: impl Into<Vec<u8>>) -> Self {
        let salt = salt.into();
        let first = Day::today();
        let mac = keyed_mac(&derive_day_key(&salt, first));
        Self {
            salt,
            day_mac: RwLock::new((first.index(), mac)),
        }
    }

    /// A fresh MAC keyed for `day`.
    fn mac_for(&self, day: Day) -> HmacSha256 {
        if let Ok(cached) = self.day_mac.read() {
            if cached.0 == day.index() {
                return cached.1.clone();
            }
        }
        let mac = keyed_mac(&derive_day_key(&self.salt, day));
        if let Ok(mut cached) = self.day_mac.write() {
            *cached = (day.index(), mac.clone());
        }
        mac
    }

    /// 64 bits of HMAC-SHA256(day key, ip ‖ 0 ‖ user agent), base64url (11 chars).
    pub fn hash(&self, day: Day, ip: &str, user_agent: &str) -> String {
        let mut mac = self.mac_for(day);
        mac.update(ip.as_bytes());
        mac.update(&[0]);
        mac.update(user_agent.as_bytes());
        base64url(&mac.finalize().into_bytes()[..8])
    }
}

/// HMAC-SHA256 keyed with `key`, ready for a message.
fn keyed_mac(key: &[u8; 32]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts any key length")
}

/// HMAC-SHA256(salt, day): the key that makes hashes of different days unlinkable.
fn derive_day_key(salt: &[u8], day: Day) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(salt).expect("HMAC accepts any key length");
    mac.update(&day.index().to_be_bytes());
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_visitor_same_day_hashes_alike_and_never_contains_the_ip() {
        let h = VisitorHasher::new("salt");
        let day = Day::from_unix(1_795_305_600);
        let a = h.hash(day, "203.0.113.7", "Mozilla/5.0");
        assert_eq!(a, h.hash(day, "203.0.113.7", "Mozilla/5.0"));
        assert!(!a.contains("203"));
        assert_eq!(a.len(), 11);
    }

    #[test]
    fn day_salt_and_inputs_all_change_the_hash() {
        let h = VisitorHasher::new("salt");
        let day = Day::from_unix(1_795_305_600);
        let a = h.hash(day, "203.0.113.7", "UA");
        assert_ne!(a, h.hash(day.succ(), "203.0.113.7", "UA"));
        assert_ne!(
            a,
            VisitorHasher::new("pepper").hash(day, "203.0.113.7", "UA")
        );
        assert_ne!(a, h.hash(day, "203.0.113.8", "UA"));
        assert_ne!(a, h.hash(day, "203.0.113.7", "UA2"));
        assert_ne!(h.hash(day, "1.2.3.4", "5"), h.hash(day, "1.2.3.45", ""));
        // Back to the first day after the cache moved on: the same hash again.
        assert_eq!(a, h.hash(day, "203.0.113.7", "UA"));
    }
}
