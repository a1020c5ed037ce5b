//! Offers, affiliates, advertisers and API keys: writing one (with the
//! version bump every instance polls for), revoking a key, polling the
//! version, and loading all of them; and the keys' last use, which is no
//! configuration and bumps nothing.
//!
//! Every config key carries the hash tag `{cfg}`, so each `MULTI`/`EXEC`
//! here touches one hash slot.

use std::collections::HashMap;

use redis::aio::ConnectionLike;

use super::connection::{corrupt, unavailable};
use crate::domain::offer::OfferView;
use crate::domain::{Advertiser, Affiliate, ApiKey, Offer};
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

/// Creates or replaces an advertiser and bumps the config version, atomically.
pub(super) async fn put_advertiser<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    advertiser: &Advertiser,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(advertiser).map_err(|e| corrupt(e.to_string()))?;
    put(conn, keys, keys.advertisers(), advertiser.id.as_str(), json).await
}

/// Stores an API key and bumps the config version, atomically.
pub(super) async fn put_api_key<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    key: &ApiKey,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(key).map_err(|e| corrupt(e.to_string()))?;
    put(conn, keys, keys.api_keys(), &key.id, json).await
}

/// `MULTI; HDEL keys id; HDEL keys_used id; INCR version; EXEC`: whether
/// the key existed.
pub(super) async fn delete_api_key<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    id: &str,
) -> Result<bool, StoreError> {
    let (deleted,): (u64,) = redis::pipe()
        .atomic()
        .hdel(keys.api_keys(), id)
        .hdel(keys.key_use(), id)
        .ignore()
        .incr(keys.config_version(), 1)
        .ignore()
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    Ok(deleted > 0)
}

/// `HSET keys_used id secs …`, one command for the batch.
pub(super) async fn record_key_use<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    uses: Vec<(String, u64)>,
) -> Result<(), StoreError> {
    if uses.is_empty() {
        return Ok(());
    }
    redis::Cmd::hset_multiple(keys.key_use(), &uses)
        .query_async::<()>(conn)
        .await
        .map_err(unavailable)
}

/// `HGETALL keys_used`.
pub(super) async fn read_key_use<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
) -> Result<HashMap<String, u64>, StoreError> {
    redis::Cmd::hgetall(keys.key_use())
        .query_async(conn)
        .await
        .map_err(unavailable)
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
    #[expect(clippy::type_complexity, reason = "one reply per command of the MULTI")]
    let (version, offers, affiliates, advertisers, api_keys): (
        Option<u64>,
        HashMap<String, String>,
        HashMap<String, String>,
        HashMap<String, String>,
        HashMap<String, String>,
    ) = redis::pipe()
        .atomic()
        .get(keys.config_version())
        .hgetall(keys.offers())
        .hgetall(keys.affiliates())
        .hgetall(keys.advertisers())
        .hgetall(keys.api_keys())
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
    for (id, json) in advertisers {
        match serde_json::from_str::<Advertiser>(&json) {
            Ok(advertiser) => data.advertisers.push(advertiser),
            Err(e) => log::error!("skipping stored advertiser {id:?}: {e}"),
        }
    }
    for (id, json) in api_keys {
        match serde_json::from_str::<ApiKey>(&json) {
            Ok(key) => data.keys.push(key),
            // The JSON may hold a hash: the error says where, never what.
            Err(e) => log::error!(
                "skipping stored API key {id:?}: unreadable at line {} column {}",
                e.line(),
                e.column()
            ),
        }
    }
    Ok(data)
}
