//! A postback's two round trips: the look-up (the click and the conversion
//! it refers to, one pipeline) and the credit (`scripts/credit.lua`, which
//! creates or moves a conversion and its counters atomically), and the
//! reading of stored conversion records both of them answer.
//!
//! Both touch one hash slot, the click's shard `{S}`: the click bucket, the
//! conversion and the counters of its shard share the hash tag.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::aio::ConnectionLike;

use super::connection::{corrupt, unavailable};
use super::paging;
use crate::domain::conversion::{
    ConversionCommand, ConversionEntry, ConversionOutcome, ConversionRecord, ConversionStatus,
    RejectReason, StatusChange,
};
use crate::domain::delivery::{DeliveryContext, DeliveryId};
use crate::domain::ids::{shard_char, SHARD_COUNT};
use crate::domain::{AffiliateId, Click, ClickId, Day, Identity, Money, OfferId};
use crate::store::keys::{ClickLocation, Keys};
use crate::store::report::Tally;
use crate::store::{
    ConversionLookup, ConversionPage, ConversionQuery, Position, StoreError, CONVERSION_INDEX_SECS,
    MAX_CONVERSION_SCAN,
};

/// The credit script, run by EVALSHA (falling back to EVAL after a Redis restart).
static CREDIT_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../scripts/credit.lua")));

/// Reads the click (from its hour bucket, or its own key for a legacy id)
/// and the conversion with `identity`, in one pipeline. A click whose
/// attribution window has closed by `now` is not found.
pub(super) async fn lookup_conversion<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    click_id: &ClickId,
    identity: &Identity,
    now: u64,
) -> Result<ConversionLookup, StoreError> {
    let mut pipe = redis::pipe();
    match keys.click(click_id) {
        ClickLocation::Bucket { key, field } => pipe.hget(key, field),
        ClickLocation::Key(key) => pipe.get(key),
    };
    pipe.hgetall(keys.conversion(click_id, identity));
    let (click, fields): (Option<String>, HashMap<String, String>) =
        pipe.query_async(conn).await.map_err(unavailable)?;
    let click = match click {
        Some(stored) => {
            Some(Click::decode(click_id.clone(), &stored).map_err(|e| corrupt(e.detail))?)
        }
        None => None,
    };
    // The bucket outlives clicks with a shorter window than its longest.
    let click = click.filter(|c| !c.expired(now));
    Ok(ConversionLookup {
        click,
        conversion: conversion_from_fields(&fields)?,
    })
}

/// Runs the credit script for `command`: the conversion and the counters
/// of the days it moves, all in the click's shard. Answers, beside the
/// outcome, the report counts the change moves (written behind).
pub(super) async fn apply_conversion<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    command: &ConversionCommand,
) -> Result<(ConversionOutcome, Tally), StoreError> {
    let shard = command.click_id.shard();
    let seen_day = command.seen_day.unwrap_or(command.today);
    let mut invocation = CREDIT_SCRIPT.prepare_invoke();
    invocation
        .key(keys.conversion(&command.click_id, &command.identity))
        .key(keys.stats(shard, command.today))
        .key(keys.stats(shard, seen_day))
        .key(keys.conversion_index(shard))
        .key(keys.conversion_ids(shard))
        .arg(command.status.code())
        .arg(
            command
                .payout
                .map(|m| m.micros().to_string())
                .unwrap_or_default(),
        )
        .arg(
            command
                .revenue
                .map(|m| m.micros().to_string())
                .unwrap_or_default(),
        )
        .arg(&command.new_conversion_id)
        .arg(command.today.compact())
        .arg(seen_day.compact())
        .arg(command.offer_id.as_str())
        .arg(command.aff_id.as_str())
        .arg(command.retention_secs)
        .arg(command.now)
        .arg(RejectReason::stored(command.reason))
        .arg(command.context.encode())
        .arg(location(&command.click_id, &command.identity))
        .arg(command.now.saturating_sub(CONVERSION_INDEX_SECS))
        .arg(if command.must_exist { "1" } else { "" });
    // The deliveries' keys and arguments go only with an order: a
    // conversion with nothing to send costs nothing more.
    if let Some(order) = &command.delivery {
        let new_delivery = DeliveryId::new(shard, &command.new_conversion_id, command.status);
        let seen_conversion = command
            .seen_conversion_id
            .as_deref()
            .unwrap_or(&command.new_conversion_id);
        let seen_delivery = DeliveryId::new(shard, seen_conversion, command.status);
        invocation
            .key(keys.delivery(&new_delivery))
            .key(keys.delivery(&seen_delivery))
            .key(keys.delivery_queue(shard))
            .key(keys.deliveries_pending(shard))
            .key(keys.deliveries_of(shard, command.aff_id.as_str()))
            .key(keys.deliveries_of_offer(shard, command.offer_id.as_str()));
        for conversion in [&command.new_conversion_id, seen_conversion] {
            for destination in &order.destinations {
                let id =
                    DeliveryId::to_destination(shard, conversion, command.status, &destination.id);
                invocation.key(keys.delivery(&id));
            }
        }
        invocation
            .arg(
                order
                    .amount
                    .map(|m| m.micros().to_string())
                    .unwrap_or_default(),
            )
            .arg(order.now_ms)
            .arg(order.retention_secs)
            .arg(new_delivery.as_str())
            .arg(seen_delivery.as_str())
            .arg(command.seen_conversion_id.as_deref().unwrap_or(""))
            .arg(command.click_id.as_str())
            .arg(if order.affiliate { "1" } else { "0" });
        for destination in &order.destinations {
            invocation
                .arg(&destination.id)
                .arg(destination.kind.label());
        }
    }
    let reply: String = invocation.invoke_async(conn).await.map_err(unavailable)?;
    let parts: Vec<&str> = reply.split('\0').collect();
    let part = |i: usize| parts.get(i).copied().unwrap_or("");
    let record = || {
        record_from_parts([
            part(1),
            part(2),
            part(3),
            part(4),
            part(5),
            part(6),
            part(7),
            part(9),
        ])
    };
    let mut tally = Tally::default();
    let outcome = match part(0) {
        "created" => {
            let record = record()?;
            tally.created(command, &record);
            ConversionOutcome::Created(record)
        }
        "duplicate" => ConversionOutcome::Duplicate(record()?),
        "updated" => {
            let record = record()?;
            let previous =
                ConversionStatus::from_code(part(8)).ok_or_else(|| corrupt("previous status"))?;
            let micros = |raw: &str| {
                raw.parse::<i64>()
                    .map(Money::from_micros)
                    .map_err(|_| corrupt("previous amount"))
            };
            let created_at = part(12).parse::<u64>().unwrap_or(command.now);
            let kept = parts
                .get(13..)
                .map(|rest| rest.join("\0"))
                .unwrap_or_default();
            let context =
                DeliveryContext::decode(&kept).unwrap_or_else(|_| command.context.clone());
            for (status, payout, revenue, sign) in [
                (previous, micros(part(10))?, micros(part(11))?, -1),
                (record.status, record.payout, record.revenue, 1),
            ] {
                tally.conversion(
                    created_at,
                    &record.offer_id,
                    &record.aff_id,
                    &command.identity,
                    &context,
                    status,
                    payout,
                    revenue,
                    sign,
                );
            }
            ConversionOutcome::Updated { record, previous }
        }
        "retry" => ConversionOutcome::Retry,
        "too_large" => ConversionOutcome::TooLarge,
        "missing" => ConversionOutcome::Missing,
        other => return Err(corrupt(format!("credit script answered {other:?}"))),
    };
    Ok((outcome, tally))
}

/// Where a conversion lives, as the index keeps it: the part of its key
/// after `:v:`.
fn location(click_id: &ClickId, identity: &Identity) -> String {
    format!("{}:{}", click_id.as_str(), identity.key_suffix())
}

/// The click and identity a [`location`] names.
fn parse_location(raw: &str) -> Result<(ClickId, Identity), StoreError> {
    let bad = || corrupt("conversion index location");
    let (click, suffix) = raw.split_once(':').ok_or_else(bad)?;
    let click = ClickId::parse(click).map_err(|_| bad())?;
    let identity = match suffix.split_once(':') {
        Some(("t", txid)) => Identity::Txid(txid.to_owned()),
        Some(("g", goal)) => Identity::Goal(goal.to_owned()),
        _ => return Err(bad()),
    };
    Ok((click, identity))
}

/// A candidate of a listing: an index entry and its shard.
struct Candidate {
    position: Position,
    shard: char,
}

/// One page of the conversion list. Rounds of: from every shard's index
/// the entries after the cursor within the range (those sharing its score
/// read whole, the rest up to a page), merged newest first and cut to a
/// page; their locations, then their records (two pipelines); the filter.
/// Until the page is full, the index is exhausted, or
/// [`MAX_CONVERSION_SCAN`] entries were read.
pub(super) async fn list_conversions<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    query: &ConversionQuery,
) -> Result<ConversionPage, StoreError> {
    let want = query.limit + 1;
    let mut after = query.after.clone();
    let mut found: Vec<(Position, ConversionEntry)> = Vec::new();
    let mut scanned = 0;
    let exhausted = loop {
        let (candidates, more) = index_round(conn, keys, query, after.as_ref(), want).await?;
        scanned += candidates.len();
        if let Some(last) = candidates.last() {
            after = Some(last.position.clone());
        }
        for (candidate, entry) in candidates
            .iter()
            .zip(read_entries(conn, keys, &candidates).await?)
        {
            if let Some(entry) = entry.filter(|e| query.filter.matches(e)) {
                found.push((candidate.position.clone(), entry));
            }
        }
        if !more {
            break true;
        }
        if found.len() >= want || scanned >= MAX_CONVERSION_SCAN {
            break false;
        }
    };
    let next = if found.len() > query.limit {
        found.truncate(query.limit);
        found.last().map(|(position, _)| position.clone())
    } else if exhausted {
        None
    } else {
        after
    };
    Ok(ConversionPage {
        conversions: found.into_iter().map(|(_, entry)| entry).collect(),
        next,
    })
}

/// The next `want` index entries after `after` within the query's range,
/// over every shard, newest first; and whether more may follow.
async fn index_round<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    query: &ConversionQuery,
    after: Option<&Position>,
    want: usize,
) -> Result<(Vec<Candidate>, bool), StoreError> {
    let mut pipe = redis::pipe();
    for i in 0..SHARD_COUNT {
        paging::queue(
            &mut pipe,
            &keys.conversion_index(shard_char(i)),
            after,
            Some(query.to),
            query.from,
            want,
        );
    }
    let batches: Vec<Vec<(String, f64)>> = pipe.query_async(conn).await.map_err(unavailable)?;
    let per_shard = paging::commands_per_set(after);
    let candidates: Vec<Candidate> = batches
        .into_iter()
        .enumerate()
        .flat_map(|(i, batch)| {
            let shard = shard_char(i / per_shard);
            paging::positions(batch).map(move |position| Candidate { position, shard })
        })
        .collect();
    let mut candidates = paging::newest_first(candidates, after, |c| &c.position);
    candidates.dedup_by(|a, b| a.position == b.position);
    let more = candidates.len() > want;
    candidates.truncate(want);
    Ok((candidates, more))
}

/// The conversions of `candidates`, in order; `None` for one that expired.
async fn read_entries<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    candidates: &[Candidate],
) -> Result<Vec<Option<ConversionEntry>>, StoreError> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for candidate in candidates {
        pipe.hget(keys.conversion_ids(candidate.shard), &candidate.position.id);
    }
    let locations: Vec<Option<String>> = pipe.query_async(conn).await.map_err(unavailable)?;
    let mut pipe = redis::pipe();
    let mut located = Vec::new();
    for (candidate, location) in candidates.iter().zip(locations) {
        if let Some(location) = location {
            pipe.hgetall(keys.conversion_at(candidate.shard, &location));
            located.push(Some(parse_location(&location)?));
        } else {
            located.push(None);
        }
    }
    let mut records = if located.iter().any(Option::is_some) {
        let records: Vec<HashMap<String, String>> =
            pipe.query_async(conn).await.map_err(unavailable)?;
        records.into_iter()
    } else {
        Vec::new().into_iter()
    };
    located
        .into_iter()
        .map(|place| {
            let Some((click_id, identity)) = place else {
                return Ok(None);
            };
            let fields = records.next().unwrap_or_default();
            entry_from_fields(click_id, identity, &fields)
        })
        .collect()
}

/// The conversion with this id: its location from every shard's id map
/// (one pipeline of 64 `HGET`s: the id does not name its shard), then its
/// record.
pub(super) async fn find_conversion<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    id: &str,
) -> Result<Option<ConversionEntry>, StoreError> {
    let mut pipe = redis::pipe();
    for i in 0..SHARD_COUNT {
        pipe.hget(keys.conversion_ids(shard_char(i)), id);
    }
    let locations: Vec<Option<String>> = pipe.query_async(conn).await.map_err(unavailable)?;
    let Some((shard, location)) = locations
        .into_iter()
        .enumerate()
        .find_map(|(i, location)| Some((shard_char(i), location?)))
    else {
        return Ok(None);
    };
    let fields: HashMap<String, String> = redis::Cmd::hgetall(keys.conversion_at(shard, &location))
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    let (click_id, identity) = parse_location(&location)?;
    entry_from_fields(click_id, identity, &fields)
}

/// A conversion hash read whole, as the conversion list shows it; `None`
/// when it is gone. A conversion stored before histories were kept shows
/// its current status since its creation.
fn entry_from_fields(
    click_id: ClickId,
    identity: Identity,
    fields: &HashMap<String, String>,
) -> Result<Option<ConversionEntry>, StoreError> {
    let Some(record) = conversion_from_fields(fields)? else {
        return Ok(None);
    };
    let get = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    let created_at = get("t").parse::<u64>().unwrap_or(0);
    let mut history = StatusChange::decode_history(get("h")).map_err(|e| corrupt(e.detail))?;
    if history.is_empty() {
        history.push(StatusChange {
            status: record.status,
            at: created_at,
        });
    }
    let context = match get("j") {
        "" => DeliveryContext::default(),
        raw => DeliveryContext::decode(raw).map_err(|e| corrupt(e.detail))?,
    };
    Ok(Some(ConversionEntry {
        record,
        click_id,
        identity,
        context,
        created_at,
        history,
    }))
}

/// Reads a conversion hash (as returned by HGETALL) into a record.
fn conversion_from_fields(
    fields: &HashMap<String, String>,
) -> Result<Option<ConversionRecord>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let get = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    record_from_parts([
        get("s"),
        get("p"),
        get("r"),
        get("id"),
        get("d"),
        get("o"),
        get("a"),
        get("x"),
    ])
    .map(Some)
}

/// Builds a record from its stored fields: status, payout, revenue, id, day,
/// offer, affiliate, reason (the credit script's reply order).
fn record_from_parts(parts: [&str; 8]) -> Result<ConversionRecord, StoreError> {
    let [status, payout, revenue, id, day, offer, aff, reason] = parts;
    let micros = |s: &str| {
        s.parse::<i64>()
            .map(Money::from_micros)
            .map_err(|_| corrupt("conversion amount"))
    };
    Ok(ConversionRecord {
        conversion_id: id.to_owned(),
        status: ConversionStatus::from_code(status).ok_or_else(|| corrupt("conversion status"))?,
        payout: micros(payout)?,
        revenue: micros(revenue)?,
        day: Day::parse_compact(day).map_err(|_| corrupt("conversion day"))?,
        offer_id: OfferId::parse(offer).map_err(|_| corrupt("conversion offer"))?,
        aff_id: AffiliateId::parse(aff).map_err(|_| corrupt("conversion affiliate"))?,
        reason: RejectReason::from_stored(reason),
    })
}
