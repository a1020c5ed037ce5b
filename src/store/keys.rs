//! Every Redis key clickback uses, built in one place.
//!
//! Layout (prefix `cb` by default, `S` = a click's shard character):
//!
//! | key                         | type   | holds                                   | TTL                   |
//! |-----------------------------|--------|-----------------------------------------|-----------------------|
//! | `cb:{S}:c:<hour><bucket>`   | hash   | click id's random part → click record, for the clicks of one hour | longest attribution window among them |
//! | `cb:{S}:c:<click_id>`       | string | a click record under a legacy 22-character id | attribution window |
//! | `cb:{S}:v:<click_id>:t:<txid>` / `…:g:<goal>` | hash | one conversion              | window + 90 days      |
//! | `cb:{S}:st:<YYYYMMDD>`      | hash   | that shard's counters for one UTC day   | none                  |
//! | `cb:{S}:u:<offer>\|<aff>\|<visitor>` | string | the visitor clicked recently  | duplicate-click window |
//! | `cb:{S}:d:<delivery_id>`    | hash   | one affiliate postback delivery: what to send, state, attempts | 30 days after its last change |
//! | `cb:{S}:dq`                 | zset   | deliveries due (score: due time, or lease end while in flight, ms) | none |
//! | `cb:{S}:dp`                 | zset   | pending deliveries by creation time (ms): depth and oldest | none |
//! | `cb:{S}:dx`                 | zset   | dead deliveries by time of death (ms) | 30 days after the last |
//! | `cb:{S}:da:<aff>`           | zset   | an affiliate's deliveries by creation time (ms) | 30 days after the last |
//! | `cb:{S}:do:<offer>`         | zset   | an offer's deliveries (affiliate and destinations) by creation time (ms) | 30 days after the last |
//! | `cb:{S}:vt`                 | zset   | the shard's conversion ids by creation time (s): the conversion list | entries dropped after 490 days |
//! | `cb:{S}:vk`                 | hash   | conversion id → `<click_id>:<t\|g>:<txid\|goal>`, where the conversion is | as `vt` |
//! | `cb:{rep:<YYYYMMDD>}:h`    | hash   | report counters of one UTC day by hour: `HH\|offer\|aff\|code` | none |
//! | `cb:{rep:<YYYYMMDD>}:<dim>` | hash  | report counters of one UTC day by hour and a dimension's value (`sub1`…`sub5`, `source`, `goal`): `HH\|offer\|aff\|code\|value` | none |
//! | `cb:{rep:<YYYYMMDD>}:<dim>:v` | set  | the values of a dimension admitted that day (at most 10,000; later ones are counted as "other") | none |
//! | `cb:{cap:<offer>}:<period>` | hash   | cap counters of one offer and period    | period + margin       |
//! | `cb:{claim:<xx>}:<token>`   | string | a used signature / an identity being decided | 10 min / 30 s    |
//! | `cb:{log:<offer>}:postbacks`| list   | the latest accepted postbacks and their outcome | 30 days after the last, trimmed |
//! | `cb:{log:<offer>}:refused`  | list   | the latest refused postbacks and why    | 30 days after the last, trimmed |
//! | `cb:{cfg}:offers`           | hash   | offer id → offer JSON                   | none                  |
//! | `cb:{cfg}:affiliates`       | hash   | affiliate id → affiliate JSON           | none                  |
//! | `cb:{cfg}:advertisers`      | hash   | advertiser id → advertiser JSON         | none                  |
//! | `cb:{cfg}:keys`             | hash   | API key id → key JSON (its secret's hash, never the secret) | none |
//! | `cb:{cfg}:keys_used`        | hash   | API key id → last use, Unix seconds (written at most once a minute per key) | none |
//! | `cb:{cfg}:version`          | string | bumped on every config write            | none                  |
//! | `cb:{audit}:log`            | zset   | audit entries (`<id> <json>`) by time (ms) | newest 10,000, 90 days |
//!
//! The `{S}` hash tag puts a click, its conversions and the counters they move
//! into one Redis Cluster slot, so the click pipeline and the credit script
//! each touch a single slot; 64 shard tags spread the load over the cluster
//! instead of making a big offer a hot slot.

use crate::domain::counter::{Counter, Dimension};
use crate::domain::delivery::DeliveryId;
use crate::domain::ids::shard_char;
use crate::domain::{ClickId, Day, Identity};
use crate::store::PostbackLogKind;

/// Where one click record is stored.
///
/// Clicks live as fields of hour buckets: a hash of a few hundred clicks is
/// kept by Redis as one listpack, ~108 bytes a click against ~224 for a key
/// per click (docs/PERFORMANCE.md). Ids minted before buckets still name a
/// key of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClickLocation<'a> {
    /// `HGET key field`.
    Bucket {
        /// `cb:{S}:c:<hour><bucket>`.
        key: String,
        /// The random part of the click id.
        field: &'a str,
    },
    /// `GET key`: a legacy one-key-per-click record.
    Key(String),
}

impl ClickLocation<'_> {
    /// The Redis key, bucket or record.
    pub fn key(&self) -> &str {
        match self {
            Self::Bucket { key, .. } | Self::Key(key) => key,
        }
    }
}

/// Builds keys under a configurable prefix (tests use a random one each).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`, which must not contain `{` or `}` (checked by config).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// Where a click record lives: a field of its hour bucket, or (legacy
    /// ids) a key of its own.
    pub fn click<'a>(&self, id: &'a ClickId) -> ClickLocation<'a> {
        match id.bucket() {
            Some((bucket, field)) => ClickLocation::Bucket {
                key: self.in_shard(id.shard(), ":c:", &[bucket]),
                field,
            },
            None => ClickLocation::Key(self.in_shard(id.shard(), ":c:", &[id.as_str()])),
        }
    }

    /// One conversion of a click.
    pub fn conversion(&self, id: &ClickId, identity: &Identity) -> String {
        self.in_shard(
            id.shard(),
            ":v:",
            &[id.as_str(), ":", &identity.key_suffix()],
        )
    }

    /// Marks that a visitor clicked an offer via an affiliate (duplicate-click window).
    pub fn unique_visitor(&self, shard: char, offer: &str, aff: &str, visitor: &str) -> String {
        self.in_shard(shard, ":u:", &[offer, "|", aff, "|", visitor])
    }

    /// One affiliate postback delivery (its shard is its id's first character).
    pub fn delivery(&self, id: &DeliveryId) -> String {
        self.in_shard(id.shard(), ":d:", &[id.as_str()])
    }

    /// A shard's deliveries that are due, by due time (or lease end).
    pub fn delivery_queue(&self, shard: char) -> String {
        self.in_shard(shard, ":dq", &[])
    }

    /// A shard's pending deliveries, by creation time.
    pub fn deliveries_pending(&self, shard: char) -> String {
        self.in_shard(shard, ":dp", &[])
    }

    /// A shard's dead deliveries, by time of death.
    pub fn deliveries_dead(&self, shard: char) -> String {
        self.in_shard(shard, ":dx", &[])
    }

    /// A shard's deliveries to one affiliate, by creation time.
    pub fn deliveries_of(&self, shard: char, aff: &str) -> String {
        self.in_shard(shard, ":da:", &[aff])
    }

    /// A shard's deliveries of one offer's conversions (to its affiliates
    /// and its destinations) by creation time: the offer's delivery log.
    pub fn deliveries_of_offer(&self, shard: char, offer: &str) -> String {
        self.in_shard(shard, ":do:", &[offer])
    }

    /// A shard's conversion ids by creation time: the conversion list.
    pub fn conversion_index(&self, shard: char) -> String {
        self.in_shard(shard, ":vt", &[])
    }

    /// A shard's conversion id → where the conversion is (`<click_id>:<identity suffix>`).
    pub fn conversion_ids(&self, shard: char) -> String {
        self.in_shard(shard, ":vk", &[])
    }

    /// The conversion key named by a [`Keys::conversion_ids`] entry.
    pub fn conversion_at(&self, shard: char, location: &str) -> String {
        self.in_shard(shard, ":v:", &[location])
    }

    /// `<prefix>:{<shard>}<kind><parts…>`, built without `format!`: the click
    /// path builds four keys and fields per click, and `format!` costs ~5 % of
    /// its instructions (`benches/callgrind.sh`).
    /// Room is left for a compact day, which [`Keys::stats`] appends.
    fn in_shard(&self, shard: char, kind: &str, parts: &[&str]) -> String {
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + len + 12);
        key.push_str(&self.prefix);
        key.push_str(":{");
        key.push(shard);
        key.push('}');
        key.push_str(kind);
        for part in parts {
            key.push_str(part);
        }
        key
    }

    /// The cap counters of one offer for one period (`d20261123`, `m202611`, `l`).
    pub fn caps(&self, offer: &str, period_id: &str) -> String {
        format!("{}:{{cap:{offer}}}:{period_id}", self.prefix)
    }

    /// A one-time claim: a used postback signature, or an identity being decided.
    pub fn claim(&self, token: &str) -> String {
        let tag = token.get(..2).unwrap_or("");
        format!("{}:{{claim:{tag}}}:{token}", self.prefix)
    }

    /// The latest accepted or refused postbacks of an offer (`-` for
    /// postbacks without a known offer). Accepted ones keep the name they
    /// always had.
    pub fn postback_log(&self, offer: Option<&str>, kind: PostbackLogKind) -> String {
        let list = match kind {
            PostbackLogKind::Accepted => "postbacks",
            PostbackLogKind::Refused => "refused",
        };
        format!("{}:{{log:{}}}:{list}", self.prefix, offer.unwrap_or("-"))
    }

    /// A shard's counters for one day.
    pub fn stats(&self, shard: char, day: Day) -> String {
        let mut key = self.in_shard(shard, ":st:", &[]);
        day.push_compact(&mut key);
        key
    }

    /// The counters of every shard for one day.
    pub fn stats_all_shards(&self, day: Day) -> impl Iterator<Item = String> + '_ {
        (0..crate::domain::ids::SHARD_COUNT).map(move |i| self.stats(shard_char(i), day))
    }

    /// One UTC day's report counters: by hour (`None`) or by hour and a
    /// dimension's value. A day's report keys share one hash tag, so that
    /// one script writes all of a day's counts.
    pub fn report(&self, day: Day, dimension: Option<Dimension>) -> String {
        let name = dimension.map_or("h", Dimension::name);
        format!("{}:{{rep:{}}}:{name}", self.prefix, day.compact())
    }

    /// The values of `dimension` admitted on `day`.
    pub fn report_values(&self, day: Day, dimension: Dimension) -> String {
        format!(
            "{}:{{rep:{}}}:{}:v",
            self.prefix,
            day.compact(),
            dimension.name()
        )
    }

    /// Offer id → offer JSON.
    pub fn offers(&self) -> String {
        format!("{}:{{cfg}}:offers", self.prefix)
    }

    /// Affiliate id → affiliate JSON.
    pub fn affiliates(&self) -> String {
        format!("{}:{{cfg}}:affiliates", self.prefix)
    }

    /// Advertiser id → advertiser JSON.
    pub fn advertisers(&self) -> String {
        format!("{}:{{cfg}}:advertisers", self.prefix)
    }

    /// API key id → key JSON.
    pub fn api_keys(&self) -> String {
        format!("{}:{{cfg}}:keys", self.prefix)
    }

    /// API key id → last use.
    pub fn key_use(&self) -> String {
        format!("{}:{{cfg}}:keys_used", self.prefix)
    }

    /// The audit log.
    pub fn audit(&self) -> String {
        format!("{}:{{audit}}:log", self.prefix)
    }

    /// The config version every instance polls.
    pub fn config_version(&self) -> String {
        format!("{}:{{cfg}}:version", self.prefix)
    }
}

/// The field of a day's counter hash: `offer|aff|<counter code>`. The credit
/// script builds the same fields.
pub fn counter_field(offer: &str, aff: &str, counter: Counter) -> String {
    let code = counter.code();
    let mut field = String::with_capacity(offer.len() + aff.len() + code.len() + 2);
    field.push_str(offer);
    field.push('|');
    field.push_str(aff);
    field.push('|');
    field.push_str(code);
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_spelled_as_the_layout_table_says() {
        // Existing data lives under these names: a change here strands it.
        let keys = Keys::new("cb");
        let id = ClickId::parse("kB5w3AzZnEsEy_Yf2CZwk6T").expect("id");
        assert_eq!(keys.click(&id).key(), "cb:{k}:c:B5w3Az");
        assert_eq!(
            keys.conversion(&id, &Identity::Txid("t1".into())),
            "cb:{k}:v:kB5w3AzZnEsEy_Yf2CZwk6T:t:t1"
        );
        assert_eq!(
            keys.unique_visitor('k', "o1", "a1", "h4sh"),
            "cb:{k}:u:o1|a1|h4sh"
        );
        assert_eq!(keys.stats('k', Day::from_unix(0)), "cb:{k}:st:19700101");
        assert_eq!(counter_field("o1", "a1", Counter::Clicks), "o1|a1|clk");
        let day = Day::from_unix(0);
        assert_eq!(keys.report(day, None), "cb:{rep:19700101}:h");
        assert_eq!(
            keys.report(day, Some(Dimension::Sub1)),
            "cb:{rep:19700101}:sub1"
        );
        assert_eq!(
            keys.report_values(day, Dimension::Goal),
            "cb:{rep:19700101}:goal:v"
        );
    }

    #[test]
    fn a_clicks_keys_share_one_hash_tag() {
        let keys = Keys::new("cb");
        let id = ClickId::generate();
        let tag = format!("{{{}}}", id.shard());
        let day = Day::from_unix(0);
        for key in [
            keys.click(&id).key().to_owned(),
            keys.conversion(&id, &Identity::Goal("default".into())),
            keys.stats(id.shard(), day),
        ] {
            let open = key.find('{').expect("has a tag");
            let close = key.find('}').expect("has a tag");
            assert_eq!(&key[open..=close], tag, "{key}");
        }
    }

    #[test]
    fn clicks_of_one_hour_and_bucket_share_a_hash() {
        let keys = Keys::new("cb");
        let at = 1_795_946_400;
        let a = ClickId::mint('Q', at, 1);
        let b = ClickId::mint('Q', at + 3_599, 1);
        let (
            ClickLocation::Bucket {
                key: key_a,
                field: field_a,
            },
            ClickLocation::Bucket {
                key: key_b,
                field: field_b,
            },
        ) = (keys.click(&a), keys.click(&b))
        else {
            panic!("new ids are bucketed");
        };
        assert_eq!(key_a, "cb:{Q}:c:B5y6AA");
        assert_eq!(key_a, key_b);
        assert_ne!(field_a, field_b);
        assert_ne!(keys.click(&ClickId::mint('Q', at + 3_600, 1)).key(), key_a);
        let legacy = ClickId::parse("my1skY0rTpyqDSD5or0iyg").expect("legacy id");
        assert_eq!(
            keys.click(&legacy),
            ClickLocation::Key("cb:{m}:c:my1skY0rTpyqDSD5or0iyg".into())
        );
    }

    #[test]
    fn txid_and_goal_identities_never_collide() {
        let keys = Keys::new("cb");
        let id = ClickId::generate();
        assert_ne!(
            keys.conversion(&id, &Identity::Txid("default".into())),
            keys.conversion(&id, &Identity::Goal("default".into()))
        );
    }
}
