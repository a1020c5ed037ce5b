//! The visitor fingerprint: a keyed hash of IP + user agent, never the IP.
//!
//! The key is derived per UTC day from the configured salt, the way
//! privacy-first analytics tools do it: the same visitor hashes the same all
//! day (enough to spot duplicate clicks), and differently tomorrow, so no one
//! holding the database can follow a person across days or reverse the hash
//! by enumerating the IPv4 space without the salt.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{ids::base64url, Day};

type HmacSha256 = Hmac<Sha256>;

/// Hashes visitors; holds the secret salt.
#[derive(Clone)]
pub struct VisitorHasher {
    salt: Vec<u8>,
}

impl std::fmt::Debug for VisitorHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorHasher(<salt redacted>)")
    }
}

impl VisitorHasher {
    /// A hasher with the operator's salt (`CLICKBACK_HASH_SALT`).
    pub fn new(salt: impl Into<Vec<u8>>) -> Self {
        Self { salt: salt.into() }
    }

    /// 64 bits of HMAC-SHA256(day key, ip ‖ 0 ‖ user agent), base64url (11 chars).
    pub fn hash(&self, day: Day, ip: &str, user_agent: &str) -> String {
        let mut day_key =
            HmacSha256::new_from_slice(&self.salt).expect("HMAC accepts any key length");
        day_key.update(&day.index().to_be_bytes());
        let key = day_key.finalize().into_bytes();
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC accepts any key length");
        mac.update(ip.as_bytes());
        mac.update(&[0]);
        mac.update(user_agent.as_bytes());
        base64url(&mac.finalize().into_bytes()[..8])
    }
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
    }
}
