//! Report counters with many sub values (run by `benches/subs.sh`): loads
//! N clicks (default 1,000,000) with VALUES distinct `sub1` values (default
//! 100,000) through `RedisStore::record_click` (each click its pipeline on
//! the multiplexed connection, CONCURRENCY in flight), writes the report
//! counters, and prints Redis's memory and the time of the stats queries.
//!
//! Env: REDIS_URL (required), N, VALUES, CONCURRENCY (default 256), CAP
//! (distinct values admitted per dimension and day; default the server's).

use std::time::{Duration, Instant};

use clickback::domain::query::Params;
use clickback::domain::{AffiliateId, Click, ClickId, OfferId};
use clickback::stats::{report, StatsQuery};
use clickback::store::keys::Keys;
use clickback::store::report::VALUES_PER_DAY;
use clickback::store::{RedisStore, Store};
use futures_util::StreamExt;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `INFO memory`'s `used_memory`, bytes.
fn used_memory(url: &str) -> u64 {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_connection().expect("redis connection");
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut conn)
        .expect("INFO memory");
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO")
}

/// `MEMORY USAGE` of every report key (`<prefix>:{rep:*`), summed, and
/// the fields of the `sub1` hash.
fn report_memory(url: &str, prefix: &str) -> (u64, u64, u64) {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_connection().expect("redis connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:{{rep:*"))
        .query(&mut conn)
        .expect("KEYS");
    let mut bytes = 0;
    let mut sub1_fields = 0;
    let mut sub1_values = 0;
    for key in &keys {
        let usage: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query(&mut conn)
            .expect("MEMORY USAGE");
        bytes += usage.unwrap_or(0);
        if key.ends_with(":sub1") {
            sub1_fields = redis::cmd("HLEN").arg(key).query(&mut conn).expect("HLEN");
        }
        if key.ends_with(":sub1:v") {
            sub1_values = redis::cmd("SCARD")
                .arg(key)
                .query(&mut conn)
                .expect("SCARD");
        }
    }
    (bytes, sub1_fields, sub1_values)
}

/// Runs one stats query `raw` three times; the rows and the best time.
async fn time_query(store: &RedisStore, raw: &str) -> (usize, Duration) {
    let params = Params::parse(raw.as_bytes()).expect("query");
    let query = StatsQuery::from_params(&params, clickback::domain::unix_now()).expect("valid");
    let offers = std::collections::HashMap::new();
    let mut best = Duration::MAX;
    let mut rows = 0;
    for _ in 0..3 {
        let started = Instant::now();
        rows = report(store, &offers, &query)
            .await
            .unwrap_or_else(|e| panic!("stats {raw:?}: {e}"))
            .len();
        best = best.min(started.elapsed());
    }
    (rows, best)
}

fn main() {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let n = env_number("N", 1_000_000);
    let values = env_number("VALUES", 100_000).max(1);
    let concurrency = env_number("CONCURRENCY", 256).max(1);
    let cap = env_number("CAP", VALUES_PER_DAY);
    let prefix = "subs";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = RedisStore::new(&url, Keys::new(prefix), 8, Duration::from_secs(30))
            .expect("store")
            .with_report_values_per_day(cap);
        let before = used_memory(&url);
        // One hour's worth of one offer and affiliate, so every value's
        // counters land in one day's hash (the worst day for the bound).
        let now = clickback::domain::unix_now() / 3600 * 3600 + 60;
        let offer = OfferId::parse("bench-offer").expect("id");
        let aff = AffiliateId::parse("bench-aff").expect("id");
        let started = Instant::now();
        futures_util::stream::iter(0..n)
            .for_each_concurrent(concurrency, |i| {
                let shard = clickback::domain::ids::shard_char(i % 64);
                let click = Click {
                    id: ClickId::mint(shard, now, 64),
                    offer_id: offer.clone(),
                    aff_id: aff.clone(),
                    subs: [
                        format!("{:012}", 120_210_000_000u64 + (i % values) as u64),
                        "ad7f3k2q".into(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ],
                    source: "fb".into(),
                    created_at: now,
                    expires_at: now + 3600,
                    visitor: format!("{shard}{i:010}"),
                    ad_ids: Default::default(),
                };
                let store = &store;
                async move {
                    store.record_click(&click, 0).await.expect("click written");
                }
            })
            .await;
        let loaded = started.elapsed();
        let flushing = Instant::now();
        store.flush_all().await.expect("report counts written");
        let flushed = flushing.elapsed();
        let after = used_memory(&url);
        let (report_bytes, sub1_fields, sub1_values) = report_memory(&url, prefix);
        let (plain_rows, plain) = time_query(&store, "").await;
        let (sub1_rows, by_sub1) = time_query(&store, "group_by=sub1").await;
        let (hour_rows, by_hour) = time_query(&store, "group_by=hour&tz=Europe/Berlin").await;
        let (source_rows, by_source) = time_query(&store, "group_by=source").await;
        println!("| what | figure |");
        println!("|---|---|");
        println!("| clicks loaded | {n} ({values} distinct sub1, cap {cap}) |");
        println!(
            "| load through RedisStore::record_click | {:.1} s ({:.0} clicks/s, {concurrency} in flight) |",
            loaded.as_secs_f64(),
            n as f64 / loaded.as_secs_f64()
        );
        println!(
            "| writing the report counts of all clicks at once (no background writer here: one batch) | {} ms |",
            flushed.as_millis()
        );
        println!(
            "| Redis used_memory, all (clicks, day counters, report counters) | {:.1} MB ({:.1} B per click) |",
            (after - before) as f64 / 1e6,
            (after - before) as f64 / n as f64
        );
        println!(
            "| report counters (MEMORY USAGE of {{rep:*}}) | {:.2} MB ({:.2} B per click) |",
            report_bytes as f64 / 1e6,
            report_bytes as f64 / n as f64
        );
        println!("| sub1 hash fields / values admitted | {sub1_fields} / {sub1_values} |");
        println!(
            "| stats, no grouping (exact day counters) | {:.1} ms, {plain_rows} rows |",
            plain.as_secs_f64() * 1e3
        );
        println!(
            "| stats group_by=sub1 | {:.1} ms, {sub1_rows} rows |",
            by_sub1.as_secs_f64() * 1e3
        );
        println!(
            "| stats group_by=source | {:.1} ms, {source_rows} rows |",
            by_source.as_secs_f64() * 1e3
        );
        println!(
            "| stats group_by=hour&tz=Europe/Berlin | {:.1} ms, {hour_rows} rows |",
            by_hour.as_secs_f64() * 1e3
        );
    });
}
