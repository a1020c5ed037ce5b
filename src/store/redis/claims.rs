//! One-time claims: a used postback signature (a second use is a replay),
//! or an identity whose capped conversion one postback is deciding alone.
//!
//! A claim is one key, `{claim:<xx>}` tagged by the token's first two
//! characters; each operation here is a single command.

use redis::aio::ConnectionLike;

use super::connection::unavailable;
use crate::store::keys::Keys;
use crate::store::StoreError;

/// `SET token NX EX ttl`: `true` if the token was free and is now held.
pub(super) async fn claim<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    token: &str,
    ttl_secs: u64,
) -> Result<bool, StoreError> {
    let fresh: Option<String> = redis::cmd("SET")
        .arg(keys.claim(token))
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(ttl_secs)
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    Ok(fresh.is_some())
}

/// `DEL token`: gives a claim back.
pub(super) async fn release_claim<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    token: &str,
) -> Result<(), StoreError> {
    redis::Cmd::del(keys.claim(token))
        .query_async::<()>(conn)
        .await
        .map_err(unavailable)
}
