//! Enforcing offer caps.
//!
//! Conversions: before a new conversion is credited, one script reserves room
//! under every cap it counts against (all or nothing, in the offer's own
//! `{cap:<offer>}` slot). If a cap is full, the conversion is recorded as
//! rejected with reason `cap_reached`. If the conversion turns out to exist
//! already, the reservation is given back. A crash between the two steps can
//! leave one unit of a cap unused; it can never let a cap be exceeded.
//!
//! Clicks: the redirect cannot ask Redis, so every instance reads the cap
//! counters of its capped offers once a second and keeps the set of full
//! caps in memory. A click on a full offer (or a full offer + affiliate) goes
//! to the offer's `fallback_url`, else the global `CLICKBACK_FALLBACK_URL`.

use std::collections::HashSet;
use std::sync::RwLock;

use crate::domain::cap::{Cap, CapScope};
use crate::domain::{AffiliateId, Day, Money, Offer, OfferId};
use crate::offers::Snapshot;
use crate::store::{CapEntry, Store, StoreError};

/// The cap counters one new conversion moves.
pub fn entries(offer: &Offer, aff: &AffiliateId, payout: Money, day: Day) -> Vec<CapEntry> {
    offer
        .caps
        .iter()
        .map(|cap| CapEntry {
            period_id: cap.period_id(day),
            field: field(cap, aff),
            increment: cap.increment(payout),
            limit: cap.limit_units(),
            ttl_secs: cap.counter_ttl_secs(),
        })
        .collect()
}

fn field(cap: &Cap, aff: &AffiliateId) -> String {
    match cap.scope {
        CapScope::Offer => cap.counter_name().to_owned(),
        CapScope::Affiliate => format!("{}:{aff}", cap.counter_name()),
    }
}

/// Which offers (or offer + affiliate pairs) are full right now.
#[derive(Default)]
pub struct CapWatch {
    /// `(offer, None)`: full for everyone; `(offer, Some(aff))`: full for one affiliate.
    full: RwLock<HashSet<(OfferId, Option<AffiliateId>)>>,
}

impl CapWatch {
    /// No caps known to be full.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a click of `aff` on `offer` should go to the fallback URL.
    pub fn is_full(&self, offer: &OfferId, aff: &AffiliateId) -> bool {
        let Ok(full) = self.full.read() else {
            return false;
        };
        if full.is_empty() {
            return false;
        }
        full.contains(&(offer.clone(), None)) || full.contains(&(offer.clone(), Some(aff.clone())))
    }

    /// Re-reads the counters of every capped offer (one pipeline per offer)
    /// for the periods that contain `now` (Unix seconds).
    pub async fn refresh(
        &self,
        store: &dyn Store,
        config: &Snapshot,
        now: u64,
    ) -> Result<(), StoreError> {
        let today = Day::from_unix(now);
        let mut full = HashSet::new();
        for offer in config.offers.values().filter(|o| !o.caps.is_empty()) {
            let periods: Vec<String> = offer.caps.iter().map(|c| c.period_id(today)).collect();
            let counters = store.read_caps(&offer.id, &periods).await?;
            for (cap, fields) in offer.caps.iter().zip(&counters) {
                let limit = cap.limit_units();
                match cap.scope {
                    CapScope::Offer => {
                        if fields.get(cap.counter_name()).copied().unwrap_or(0) >= limit {
                            full.insert((offer.id.clone(), None));
                        }
                    }
                    CapScope::Affiliate => {
                        let prefix = format!("{}:", cap.counter_name());
                        for (name, used) in fields {
                            let Some(aff) = name.strip_prefix(&prefix) else {
                                continue;
                            };
                            if *used >= limit {
                                if let Ok(aff) = AffiliateId::parse(aff) {
                                    full.insert((offer.id.clone(), Some(aff)));
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Ok(mut current) = self.full.write() {
            *current = full;
        }
        Ok(())
    }
}
