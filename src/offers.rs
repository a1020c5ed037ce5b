//! The in-process cache of offers, affiliates, advertisers and API keys.
//!
//! Redirects and postbacks read offers from here, never from Redis. Each
//! instance polls the store's config version (one `GET`) every second and
//! reloads everything when it moved, so a change made through any instance
//! reaches all of them within about a second; if Redis is down, the last
//! loaded config keeps serving redirects.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::{Advertiser, AdvertiserId, Affiliate, AffiliateId, ApiKey, Offer, OfferId};
use crate::store::{ConfigData, Store, StoreError};

/// One consistent view of the configuration.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The store's config version this snapshot was loaded at.
    pub version: u64,
    /// Offers by id.
    pub offers: HashMap<OfferId, Arc<Offer>>,
    /// Affiliates by id.
    pub affiliates: HashMap<AffiliateId, Arc<Affiliate>>,
    /// Advertisers by id.
    pub advertisers: HashMap<AdvertiserId, Arc<Advertiser>>,
    /// API keys by id: a revoked key is gone from here at the next reload,
    /// on every instance.
    pub keys: HashMap<String, Arc<ApiKey>>,
}

impl Snapshot {
    /// The offers of an advertiser, sorted by id.
    pub fn offers_of(&self, advertiser: &AdvertiserId) -> Vec<Arc<Offer>> {
        let mut offers: Vec<_> = self
            .offers
            .values()
            .filter(|o| o.advertiser_id.as_ref() == Some(advertiser))
            .cloned()
            .collect();
        offers.sort_by(|a, b| a.id.cmp(&b.id));
        offers
    }
}

impl From<ConfigData> for Snapshot {
    fn from(data: ConfigData) -> Self {
        Self {
            version: data.version,
            offers: data
                .offers
                .into_iter()
                .map(|o| (o.id.clone(), Arc::new(o)))
                .collect(),
            affiliates: data
                .affiliates
                .into_iter()
                .map(|a| (a.id.clone(), Arc::new(a)))
                .collect(),
            advertisers: data
                .advertisers
                .into_iter()
                .map(|a| (a.id.clone(), Arc::new(a)))
                .collect(),
            keys: data
                .keys
                .into_iter()
                .map(|k| (k.id.clone(), Arc::new(k)))
                .collect(),
        }
    }
}

/// The shared cache: readers clone an `Arc` under a short read lock.
#[derive(Default)]
pub struct ConfigCache {
    /// The current snapshot, swapped whole on reload so readers never see half a config.
    current: RwLock<Arc<Snapshot>>,
    /// One reload at a time: otherwise a background reload that read the
    /// store just before an admin write could land just after the admin's
    /// own reload and put the old configuration back (read-your-writes).
    reloading: tokio::sync::Mutex<()>,
}

impl ConfigCache {
    /// An empty cache (no offers until the first load).
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// An offer by id, active or not.
    pub fn offer(&self, id: &str) -> Option<Arc<Offer>> {
        self.snapshot().offers.get(id).cloned()
    }

    /// An affiliate by id, active or not.
    pub fn affiliate(&self, id: &str) -> Option<Arc<Affiliate>> {
        self.snapshot().affiliates.get(id).cloned()
    }

    /// An advertiser by id.
    pub fn advertiser(&self, id: &str) -> Option<Arc<Advertiser>> {
        self.snapshot().advertisers.get(id).cloned()
    }

    fn replace(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        match self.current.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// Reloads from the store now (after an admin write, and at startup).
    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let _one_at_a_time = self.reloading.lock().await;
        let data = store.load_config().await?;
        self.replace(Snapshot::from(data));
        Ok(())
    }

    /// Reloads only if the store's version moved since the last load.
    ///
    /// A version that went *backwards* means the store lost its data (a Redis
    /// restarted without persistence, a flush). Reloading would empty the
    /// cache and turn every click into a 404, so instead this instance writes
    /// the configuration it still holds back to the store: the network keeps
    /// redirecting, and instances that already reloaded pick it up again.
    pub async fn refresh_if_changed(&self, store: &dyn Store) -> Result<bool, StoreError> {
        let version = store.config_version().await?;
        let current = self.snapshot();
        // Read twice: a reload of this instance's own admin write may have
        // landed between the first read and the snapshot.
        let version = if version < current.version {
            store.config_version().await?
        } else {
            version
        };
        if version < current.version
            && !(current.offers.is_empty() && current.affiliates.is_empty())
        {
            log::warn!(
                "configuration version went back from {} to {version}: the store lost its data; restoring {} offers and {} affiliates from this instance",
                current.version,
                current.offers.len(),
                current.affiliates.len()
            );
            for offer in current.offers.values() {
                store.put_offer(offer).await?;
            }
            for affiliate in current.affiliates.values() {
                store.put_affiliate(affiliate).await?;
            }
            for advertiser in current.advertisers.values() {
                store.put_advertiser(advertiser).await?;
            }
            for key in current.keys.values() {
                store.put_api_key(key).await?;
            }
        } else if version == current.version {
            // Nothing moved, not even on an empty store at version 0.
            return Ok(false);
        }
        self.reload(store).await?;
        Ok(true)
    }
}
