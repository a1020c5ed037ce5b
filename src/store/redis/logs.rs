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

/// Entries sent per `LPUSH`: a batch queued during an outage may hold many
/// thousands for one log.
const ENTRIES_PER_LPUSH: usize = 1_000;

/// Files `entries` in their logs: `LPUSH` (entries in arrival order: the
/// last ends up first; only the newest `keep`, a thousand per command),
/// one `LTRIM` and one `EXPIRE` per log, every log in one plain pipeline.
/// Each log is a key of its own offer's slot: on a cluster the pipeline is
/// sent as one call per slot (`super::slots`).
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
        // Only the newest `keep` survive the trim; at most a bounded number
        // per LPUSH (a cluster runs the pipeline inside a script, whose
        // commands take at most ~8,000 arguments).
        let newest = &list[list.len().saturating_sub(retention.keep)..];
        for chunk in newest.chunks(ENTRIES_PER_LPUSH) {
            pipe.lpush(&key, chunk).ignore();
        }
        pipe.ltrim(&key, 0, retention.keep.saturating_sub(1) as isize)
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
