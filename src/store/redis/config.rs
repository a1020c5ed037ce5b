//! Offers and affiliates: writing one (with the version bump every instance
//! polls for), polling the version, and loading all of them.
//!
//! Every config key carries the hash tag `{cfg}`, so each `MULTI`/`EXEC`
//! here touches one hash slot.

use std::collections::HashMap;

use redis::aio::ConnectionLike;

use super::connection::{corrupt, unavailable};
use crate::domain::offer::OfferView;
use crate::domain::{Affiliate, Offer};
use crate::store::keys::Keys;
use crate::store::{ConfigData, StoreError};

/// Creates or replaces an offer and bumps the config version, atomically.
pub(super) async fn put_offer<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    offer: &Offer,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(&offer.view()).map_err(|e| corrupt(e.to_string()))?;
    put(conn, keys, keys.offers(), offer.id.as_str(), json).await
}

/// Creates or replaces an affiliate and bumps the config version, atomically.
pub(super) async fn put_affiliate<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    affiliate: &Affiliate,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(affiliate).map_err(|e| corrupt(e.to_string()))?;
    put(conn, keys, keys.affiliates(), affiliate.id.as_str(), json).await
}

/// `MULTI; HSET hash id json; INCR version; EXEC`.
async fn put<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    hash: String,
    id: &str,
    json: String,
) -> Result<(), StoreError> {
    redis::pipe()
        .atomic()
        .hset(hash, id, json)
        .ignore()
        .incr(keys.config_version(), 1)
        .ignore()
        .query_async::<()>(conn)
        .await
        .map_err(unavailable)
}

/// The config version (0 before the first write).
pub(super) async fn config_version<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
) -> Result<u64, StoreError> {
    let version: Option<u64> = redis::Cmd::get(keys.config_version())
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    Ok(version.unwrap_or(0))
}

/// Every offer and affiliate with the version they were read at, in one
/// `MULTI`/`EXEC`. A stored entry that no longer reads is skipped and
/// logged, so one bad entry cannot keep the others from loading.
pub(super) async fn load_config<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
) -> Result<ConfigData, StoreError> {
    let (version, offers, affiliates): (
        Option<u64>,
        HashMap<String, String>,
        HashMap<String, String>,
    ) = redis::pipe()
        .atomic()
        .get(keys.config_version())
        .hgetall(keys.offers())
        .hgetall(keys.affiliates())
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    let mut data = ConfigData {
        version: version.unwrap_or(0),
        ..ConfigData::default()
    };
    for (id, json) in offers {
        match serde_json::from_str::<OfferView>(&json)
            .map_err(|e| e.to_string())
            .and_then(|v| Offer::from_view(v).map_err(|e| e.detail))
        {
            Ok(offer) => data.offers.push(offer),
            Err(e) => log::error!("skipping stored offer {id:?}: {e}"),
        }
    }
    for (id, json) in affiliates {
        match serde_json::from_str::<Affiliate>(&json) {
            Ok(affiliate) => data.affiliates.push(affiliate),
            Err(e) => log::error!("skipping stored affiliate {id:?}: {e}"),
        }
    }
    Ok(data)
}
