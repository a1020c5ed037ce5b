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
use crate::domain::conversion::{
    ConversionCommand, ConversionOutcome, ConversionRecord, ConversionStatus, RejectReason,
};
use crate::domain::delivery::DeliveryId;
use crate::domain::{AffiliateId, Click, ClickId, Day, Identity, Money, OfferId};
use crate::store::keys::{ClickLocation, Keys};
use crate::store::{ConversionLookup, StoreError};

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
/// of the days it moves, all in the click's shard.
pub(super) async fn apply_conversion<C: ConnectionLike + Send>(
    conn: &mut C,
    keys: &Keys,
    command: &ConversionCommand,
) -> Result<ConversionOutcome, StoreError> {
    let shard = command.click_id.shard();
    let seen_day = command.seen_day.unwrap_or(command.today);
    let mut invocation = CREDIT_SCRIPT.prepare_invoke();
    invocation
        .key(keys.conversion(&command.click_id, &command.identity))
        .key(keys.stats(shard, command.today))
        .key(keys.stats(shard, seen_day))
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
        .arg(RejectReason::stored(command.reason));
    // The delivery's keys and arguments go only with an order: a postback
    // without one costs Redis no more than before deliveries existed.
    if let Some(order) = &command.delivery {
        let new_delivery = DeliveryId::new(shard, &command.new_conversion_id, command.status);
        let seen_delivery = command
            .seen_conversion_id
            .as_deref()
            .map(|id| DeliveryId::new(shard, id, command.status))
            .unwrap_or_else(|| new_delivery.clone());
        invocation
            .key(keys.delivery(&new_delivery))
            .key(keys.delivery(&seen_delivery))
            .key(keys.delivery_queue(shard))
            .key(keys.deliveries_pending(shard))
            .key(keys.deliveries_of(shard, command.aff_id.as_str()))
            .arg(order.context.encode())
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
            .arg(command.click_id.as_str());
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
    match part(0) {
        "created" => Ok(ConversionOutcome::Created(record()?)),
        "duplicate" => Ok(ConversionOutcome::Duplicate(record()?)),
        "updated" => Ok(ConversionOutcome::Updated {
            record: record()?,
            previous: ConversionStatus::from_code(part(8))
                .ok_or_else(|| corrupt("previous status"))?,
        }),
        "retry" => Ok(ConversionOutcome::Retry),
        "too_large" => Ok(ConversionOutcome::TooLarge),
        other => Err(corrupt(format!("credit script answered {other:?}"))),
    }
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
