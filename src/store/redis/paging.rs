//! Paging through sorted sets newest first, after a `(score, member)`
//! position: the audit log, the conversion list and the delivery lists.
//!
//! A page after position `p` is every member with a lower score, or the
//! same score and a lower member (Redis orders one score's members by
//! member). So each set is asked for the members that share `p`'s score,
//! whole, and for the next `want` below it; the answers of all sets read are
//! merged, the ones not after `p` dropped, and the rest sorted newest first.

use redis::{Pipeline, ToRedisArgs, ToSingleRedisArg};

use crate::store::Position;

/// How many commands [`queue`] sends per set: the replies of set `i` are
/// at `i * commands_per_set(after) ..`.
pub(super) fn commands_per_set(after: Option<&Position>) -> usize {
    if after.is_some() {
        2
    } else {
        1
    }
}

/// Queues the reads of one set's members after `after` (or from the top),
/// scored below `below` (exclusive) and at least `min`: at most `want` of
/// them, plus every member that shares `after`'s score.
pub(super) fn queue<M: ToRedisArgs + ToSingleRedisArg>(
    pipe: &mut Pipeline,
    key: &str,
    after: Option<&Position>,
    below: Option<u64>,
    min: M,
    want: usize,
) {
    match after {
        None => {
            let max = below.map_or_else(|| "+inf".to_owned(), |b| format!("({b}"));
            pipe.zrevrangebyscore_limit_withscores(key, max, min, 0, want as isize);
        }
        Some(cursor) => {
            pipe.zrevrangebyscore_withscores(key, cursor.score, cursor.score);
            pipe.zrevrangebyscore_limit_withscores(
                key,
                format!("({}", cursor.score),
                min,
                0,
                want as isize,
            );
        }
    }
}

/// One reply's members as positions.
pub(super) fn positions(reply: Vec<(String, f64)>) -> impl Iterator<Item = Position> {
    reply.into_iter().map(|(id, score)| Position {
        score: score as u64,
        id,
    })
}

/// Keeps what comes after `after` and sorts it newest first.
pub(super) fn newest_first<T>(
    mut entries: Vec<T>,
    after: Option<&Position>,
    position: impl Fn(&T) -> &Position,
) -> Vec<T> {
    entries.retain(|entry| after.is_none_or(|after| position(entry) < after));
    entries.sort_by(|a, b| position(b).cmp(position(a)));
    entries
}
