//! Deliveries (affiliate postbacks and destinations): the queue the credit script writes to, the
//! worker's claim and report, the operator's retry, and the listings.
//!
//! A delivery is a hash of its click's shard `{S}`, queued in that shard's
//! sorted set `dq` by due time, so the credit script queues it in the same
//! atomic step as the conversion. Claiming leases entries by moving their
//! score to the lease's end: a worker that dies leaves its deliveries to
//! come due again. Claim, report and retry each touch one slot. The
//! listings and the backlog read every shard, in one pipeline.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::aio::ConnectionLike;

use super::connection::{corrupt, unavailable};
use super::paging;
use crate::domain::delivery::{
    AttemptRecord, AttemptReport, Delivery, DeliveryContext, DeliveryId, DeliveryState,
};
use crate::domain::destination::DestinationKind;
use crate::domain::ids::{shard_char, SHARD_COUNT};
use crate::domain::{AffiliateId, ConversionStatus, Money, OfferId};
use crate::store::keys::Keys;
use crate::store::{
    DeliveryBacklog, DeliveryPage, DeliveryQuery, DeliveryScope, Lease, Position, RetryOutcome,
    StoreError,
};

static CLAIM_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../scripts/delivery_claim.lua")));
static FINISH_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../scripts/delivery_finish.lua")));
static RETRY_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../scripts/delivery_retry.lua")));

/// Leases the due deliveries of `shard` (the claim script), then reads
/// their records (one pipeline of the same slot).
pub(super) async fn claim_deliveries<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    shard: char,
    now_ms: u64,
    lease: Lease,
    limit: usize,
) -> Result<Vec<Result<Delivery, DeliveryId>>, StoreError> {
    let ids: Vec<String> = CLAIM_SCRIPT
        .key(keys.delivery_queue(shard))
        .arg(now_ms)
        .arg(lease.score())
        .arg(limit)
        .invoke_async(conn)
        .await
        .map_err(unavailable)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = ids
        .iter()
        .map(|raw| DeliveryId::parse(raw).map_err(|_| corrupt("queued delivery id")))
        .collect::<Result<Vec<_>, _>>()?;
    read_records(conn, keys, ids).await
}

/// The records of `ids` (any shards), in order; an expired one as `Err(id)`.
async fn read_records<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    ids: Vec<DeliveryId>,
) -> Result<Vec<Result<Delivery, DeliveryId>>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.hgetall(keys.delivery(id));
    }
    let records: Vec<HashMap<String, String>> =
        pipe.query_async(conn).await.map_err(unavailable)?;
    ids.into_iter()
        .zip(records)
        .map(|(id, fields)| {
            if fields.is_empty() {
                Ok(Err(id))
            } else {
                delivery_from_fields(id, &fields).map(Ok)
            }
        })
        .collect()
}

/// The keys the finish and retry scripts take: the record, and the shard's
/// queue, pending and dead sets.
fn with_delivery_keys<'a, 'b>(
    invocation: &'b mut redis::ScriptInvocation<'a>,
    keys: &Keys,
    id: &DeliveryId,
) -> &'b mut redis::ScriptInvocation<'a> {
    let shard = id.shard();
    invocation
        .key(keys.delivery(id))
        .key(keys.delivery_queue(shard))
        .key(keys.deliveries_pending(shard))
        .key(keys.deliveries_dead(shard))
}

/// Records an attempt (the finish script); `false` when the lease was lost.
pub(super) async fn finish_delivery<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    id: &DeliveryId,
    lease: Lease,
    report: &AttemptReport,
) -> Result<bool, StoreError> {
    let (how, retry_at, status, error) = match &report.record {
        AttemptRecord::Delivered { http_status } => ("delivered", None, Some(*http_status), ""),
        AttemptRecord::Failed {
            http_status,
            error,
            retry_at_ms,
        } => ("failed", Some(*retry_at_ms), *http_status, error.as_str()),
        AttemptRecord::Dead { http_status, error } => ("dead", None, *http_status, error.as_str()),
        AttemptRecord::Postponed { retry_at_ms } => ("postponed", Some(*retry_at_ms), None, ""),
        AttemptRecord::Gone => ("gone", None, None, ""),
    };
    let done: i64 = with_delivery_keys(&mut FINISH_SCRIPT.prepare_invoke(), keys, id)
        .arg(id.as_str())
        .arg(lease.score())
        .arg(how)
        .arg(report.now_ms)
        .arg(retry_at.map(|ms| ms.to_string()).unwrap_or_default())
        .arg(status.map(|s| s.to_string()).unwrap_or_default())
        .arg(error)
        .arg(report.url.as_deref().unwrap_or(""))
        .arg(report.retention_secs)
        .invoke_async(conn)
        .await
        .map_err(unavailable)?;
    Ok(done == 1)
}

/// Queues a delivery again (the retry script).
pub(super) async fn retry_delivery<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    id: &DeliveryId,
    now_ms: u64,
    retention_secs: u64,
) -> Result<RetryOutcome, StoreError> {
    let answer: String = with_delivery_keys(&mut RETRY_SCRIPT.prepare_invoke(), keys, id)
        .arg(id.as_str())
        .arg(now_ms)
        .arg(retention_secs)
        .invoke_async(conn)
        .await
        .map_err(unavailable)?;
    match answer.as_str() {
        "queued" => Ok(RetryOutcome::Queued),
        "delivered" => Ok(RetryOutcome::AlreadyDelivered),
        "missing" => Ok(RetryOutcome::NotFound),
        other => Err(corrupt(format!("retry script answered {other:?}"))),
    }
}

/// One page of a listing: from every shard's index the entries after the
/// cursor (those sharing its score read whole, the rest up to a page),
/// merged newest first; then the records of the page, in a second pipeline.
pub(super) async fn list_deliveries<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    query: &DeliveryQuery,
) -> Result<DeliveryPage, StoreError> {
    let index = |shard: char| match &query.scope {
        DeliveryScope::Affiliate(aff) => keys.deliveries_of(shard, aff.as_str()),
        DeliveryScope::Offer(offer) => keys.deliveries_of_offer(shard, offer.as_str()),
        DeliveryScope::Pending => keys.deliveries_pending(shard),
        DeliveryScope::Dead => keys.deliveries_dead(shard),
    };
    let want = query.limit + 1;
    let mut pipe = redis::pipe();
    for i in 0..SHARD_COUNT {
        paging::queue(
            &mut pipe,
            &index(shard_char(i)),
            query.after.as_ref(),
            None,
            "-inf",
            want,
        );
    }
    let batches: Vec<Vec<(String, f64)>> = pipe.query_async(conn).await.map_err(unavailable)?;
    let entries: Vec<Position> = batches.into_iter().flat_map(paging::positions).collect();
    let mut entries = paging::newest_first(entries, query.after.as_ref(), |p| p);
    entries.dedup();
    let next = if entries.len() > query.limit {
        entries.truncate(query.limit);
        entries.last().cloned()
    } else {
        None
    };
    let ids = entries
        .iter()
        .filter_map(|entry| DeliveryId::parse(&entry.id).ok())
        .collect();
    let deliveries = read_records(conn, keys, ids)
        .await?
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    Ok(DeliveryPage { deliveries, next })
}

/// Pending deliveries and the oldest one's creation time, over every shard.
pub(super) async fn delivery_backlog<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
) -> Result<DeliveryBacklog, StoreError> {
    let mut pipe = redis::pipe();
    for i in 0..SHARD_COUNT {
        let key = keys.deliveries_pending(shard_char(i));
        pipe.zcard(&key).zrange_withscores(&key, 0, 0);
    }
    let flat: Vec<redis::Value> = pipe.query_async(conn).await.map_err(unavailable)?;
    let mut backlog = DeliveryBacklog::default();
    let mut answers = flat.into_iter();
    while let (Some(count), Some(oldest)) = (answers.next(), answers.next()) {
        let count: u64 =
            redis::from_redis_value(count).map_err(|e| corrupt(format!("ZCARD: {e}")))?;
        let oldest: Vec<(String, f64)> =
            redis::from_redis_value(oldest).map_err(|e| corrupt(format!("ZRANGE: {e}")))?;
        backlog.pending += count;
        if let Some((_, score)) = oldest.first() {
            let created = *score as u64;
            backlog.oldest_created_ms = Some(
                backlog
                    .oldest_created_ms
                    .map_or(created, |seen| seen.min(created)),
            );
        }
    }
    Ok(backlog)
}

/// Reads a delivery hash (as HGETALL answers it).
fn delivery_from_fields(
    id: DeliveryId,
    fields: &HashMap<String, String>,
) -> Result<Delivery, StoreError> {
    let get = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    let optional = |name: &str| Some(get(name)).filter(|v| !v.is_empty());
    let number = |name: &str| {
        get(name)
            .parse::<u64>()
            .map_err(|_| corrupt(format!("delivery field {name}")))
    };
    let optional_number = |name: &str| -> Result<Option<u64>, StoreError> {
        optional(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| corrupt(format!("delivery field {name}")))
            })
            .transpose()
    };
    let micros = |raw: &str| {
        raw.parse::<i64>()
            .map(Money::from_micros)
            .map_err(|_| corrupt("delivery amount"))
    };
    Ok(Delivery {
        conversion_id: get("c").to_owned(),
        click_id: get("k").to_owned(),
        offer_id: OfferId::parse(get("o")).map_err(|_| corrupt("delivery offer"))?,
        aff_id: AffiliateId::parse(get("a")).map_err(|_| corrupt("delivery affiliate"))?,
        status: ConversionStatus::from_code(get("s")).ok_or_else(|| corrupt("delivery status"))?,
        destination: optional("g")
            .map(|id| {
                DestinationKind::from_label(get("gk"))
                    .map(|kind| (id.to_owned(), kind))
                    .ok_or_else(|| corrupt("delivery destination platform"))
            })
            .transpose()?,
        payout: micros(get("p"))?,
        // Deliveries queued before revenue and the conversion's time were
        // kept with them read as 0.
        revenue: optional("rv")
            .map(micros)
            .transpose()?
            .unwrap_or(Money::ZERO),
        amount: optional("m").map(micros).transpose()?,
        converted_at: optional_number("ct")?.unwrap_or(0),
        context: DeliveryContext::decode(get("j")).map_err(|e| corrupt(e.detail))?,
        state: DeliveryState::from_code(get("st")).ok_or_else(|| corrupt("delivery state"))?,
        attempts: number("n")? as u32,
        run_attempts: number("r")? as u32,
        created_at_ms: number("t")?,
        last_attempt_at_ms: optional_number("la")?,
        next_attempt_at_ms: optional_number("na")?,
        last_http_status: optional_number("h")?.map(|s| s as u16),
        last_error: optional("e").map(str::to_owned),
        url: optional("u").map(str::to_owned),
        id,
    })
}
