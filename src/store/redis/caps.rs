//! An offer's cap counters: the reservation a new capped conversion makes
//! (`scripts/reserve_caps.lua`: every counter moves, or none), giving it
//! back, and reading the counters (for the in-memory set of full offers).
//!
//! Every cap key of an offer carries the hash tag `{cap:<offer>}`, so the
//! script and each pipeline here touch one hash slot.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::aio::ConnectionLike;

use super::connection::unavailable;
use crate::domain::OfferId;
use crate::store::keys::Keys;
use crate::store::{CapEntry, StoreError};

/// The cap reservation script: every cap moves, or none.
static CAPS_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../scripts/reserve_caps.lua")));

/// Moves every entry's counter, or none when one would pass its limit:
/// `Some(i)` names the first full entry.
pub(super) async fn reserve_caps<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    offer: &OfferId,
    entries: &[CapEntry],
) -> Result<Option<usize>, StoreError> {
    let mut invocation = CAPS_SCRIPT.prepare_invoke();
    for entry in entries {
        invocation
            .key(keys.caps(offer.as_str(), &entry.period_id))
            .arg(&entry.field)
            .arg(entry.increment)
            .arg(entry.limit)
            .arg(entry.ttl_secs.unwrap_or(0));
    }
    let full: usize = invocation.invoke_async(conn).await.map_err(unavailable)?;
    Ok(full.checked_sub(1))
}

/// Gives a reservation back: one `HINCRBY` of minus its increment per
/// entry, in one pipeline.
pub(super) async fn release_caps<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    offer: &OfferId,
    entries: &[CapEntry],
) -> Result<(), StoreError> {
    let mut pipe = redis::pipe();
    for entry in entries {
        pipe.hincr(
            keys.caps(offer.as_str(), &entry.period_id),
            &entry.field,
            -entry.increment,
        )
        .ignore();
    }
    pipe.query_async::<()>(conn).await.map_err(unavailable)
}

/// The cap counters of `offer` for each period id, in one pipeline.
pub(super) async fn read_caps<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    offer: &OfferId,
    period_ids: &[String],
) -> Result<Vec<HashMap<String, i64>>, StoreError> {
    let mut pipe = redis::pipe();
    for period in period_ids {
        pipe.hgetall(keys.caps(offer.as_str(), period));
    }
    pipe.query_async(conn).await.map_err(unavailable)
}
