//! The postback logs: filing a batch of entries (the background writer's
//! one round trip) and reading one log.
//!
//! Each log is a list of its own offer's slot, `{log:<offer>}`; a batch
//! spans the slots of the offers in it.

use redis::aio::ConnectionLike;

use super::connection::unavailable;
use crate::domain::OfferId;
use crate::store::keys::Keys;
use crate::store::{LogRetention, PostbackLogKind, PostbackLogLine, StoreError};

/// One postback log: its offer (if known) and which of its lists.
type LogName = (Option<OfferId>, PostbackLogKind);

/// Files `entries` in their logs: one `LPUSH` (entries in arrival order: the
/// last ends up first), one `LTRIM` and one `EXPIRE` per log, every log in
/// one plain pipeline. Each log is a key of its own offer's slot: the
/// pipeline may span slots, and a cluster client must split it per node
/// (docs/architecture.md, "Slots touched by each operation").
pub(super) async fn append_postback_logs<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    entries: Vec<PostbackLogLine>,
    retention: LogRetention,
) -> Result<(), StoreError> {
    let mut by_log: Vec<(LogName, Vec<String>)> = Vec::new();
    for line in entries {
        let log = (line.offer, line.kind);
        match by_log.iter_mut().find(|(l, _)| *l == log) {
            Some((_, list)) => list.push(line.json),
            None => by_log.push((log, vec![line.json])),
        }
    }
    let mut pipe = redis::pipe();
    for ((offer, kind), list) in by_log {
        let key = keys.postback_log(offer.as_ref().map(OfferId::as_str), kind);
        pipe.lpush(&key, list)
            .ignore()
            .ltrim(&key, 0, retention.keep.saturating_sub(1) as isize)
            .ignore()
            .expire(&key, retention.ttl_secs as i64)
            .ignore();
    }
    pipe.query_async::<()>(conn).await.map_err(unavailable)
}

/// The newest `limit` entries of one log, newest first (`LRANGE`).
pub(super) async fn read_postback_log<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    offer: Option<&OfferId>,
    kind: PostbackLogKind,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let key = keys.postback_log(offer.map(OfferId::as_str), kind);
    redis::Cmd::lrange(key, 0, limit.saturating_sub(1) as isize)
        .query_async(conn)
        .await
        .map_err(unavailable)
}
