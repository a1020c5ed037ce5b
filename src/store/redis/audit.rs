//! The audit log: one sorted set in its own slot `{audit}`, scored by time
//! (ms); each member is `<id> <json>`, so that members are unique and
//! entries of one millisecond are ordered by id.

use redis::aio::ConnectionLike;

use super::connection::{corrupt, unavailable};
use super::paging;
use crate::store::keys::Keys;
use crate::store::{AuditLine, AuditPage, AuditRetention, Position, StoreError};

/// `MULTI; ZADD; ZREMRANGEBYSCORE (too old); ZREMRANGEBYRANK (too many); EXEC`.
pub(super) async fn append_audit<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    line: &AuditLine,
    retention: AuditRetention,
) -> Result<(), StoreError> {
    let key = keys.audit();
    let oldest_ms = line
        .at_ms
        .saturating_sub(retention.max_age_secs.saturating_mul(1000));
    let keep = isize::try_from(retention.keep).unwrap_or(isize::MAX);
    redis::pipe()
        .atomic()
        .zadd(&key, format!("{} {}", line.id, line.json), line.at_ms)
        .ignore()
        .zrembyscore(&key, "-inf", format!("({oldest_ms}"))
        .ignore()
        .zremrangebyrank(&key, 0, -(keep + 1))
        .ignore()
        .query_async::<()>(conn)
        .await
        .map_err(unavailable)
}

/// A page, newest first: the entries after the cursor (those sharing its
/// score read whole, the rest up to a page).
pub(super) async fn list_audit<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    limit: usize,
    after: Option<&Position>,
) -> Result<AuditPage, StoreError> {
    let key = keys.audit();
    let want = limit + 1;
    let mut pipe = redis::pipe();
    paging::queue(&mut pipe, &key, after, None, "-inf", want);
    let batches: Vec<Vec<(String, f64)>> = pipe.query_async(conn).await.map_err(unavailable)?;
    let entries = batches
        .into_iter()
        .flat_map(paging::positions)
        .map(|position| {
            let (id, json) = position
                .id
                .split_once(' ')
                .ok_or_else(|| corrupt("audit entry"))?;
            Ok((
                Position {
                    score: position.score,
                    id: id.to_owned(),
                },
                json.to_owned(),
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut entries = paging::newest_first(entries, after, |(position, _)| position);
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|(position, _)| position.clone())
    } else {
        None
    };
    Ok(AuditPage {
        entries: entries.into_iter().map(|(_, json)| json).collect(),
        next,
    })
}
