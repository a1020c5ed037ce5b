//! Redis killed and restarted under load: redirects keep flowing, postbacks
//! answer 503 while it is down, and not one acknowledged conversion is lost
//! or credited twice.
//!
//! Nothing here waits for a fixed time. Redis is killed once the advertisers
//! have demonstrably started (some conversions acknowledged); every
//! advertiser holds back the rest of its work until Redis is down, and Redis
//! comes back only once every advertiser has been answered 503 and visitors
//! have been redirected during the outage. Every wait is bounded by
//! [`PATIENCE`] and fails the test with a message saying what did not happen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use crate::helpers::*;

/// How many conversions the advertisers report during the outage test.
const CONVERSIONS: usize = 120;
/// How many advertisers report them, each its own share, one at a time.
const ADVERTISERS: usize = 6;
/// How many visitors click throughout.
const VISITORS: usize = 4;
/// Conversions acknowledged before Redis is killed: proof the load is on.
const ACKNOWLEDGED_BEFORE_KILL: usize = 12;
/// The last conversions of each advertiser, posted only once Redis is down.
const HELD_BACK_PER_ADVERTISER: usize = 5;
/// Redirects answered while Redis is down before it is restarted.
const REDIRECTS_DURING_OUTAGE: usize = VISITORS;
/// The bound on every wait: far more than a loaded machine needs, and a
/// Redis that never comes back fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `done` every 10 ms until it holds; panics with `what` after [`PATIENCE`].
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reports conversions for `click_ids` one at a time, retrying every 503 as
/// real advertisers do (each retry loop bounded by [`PATIENCE`]); the last
/// [`HELD_BACK_PER_ADVERTISER`] only once `redis_down` says Redis is down.
/// Answers each acknowledged (txid, body).
async fn advertise(
    app: Arc<TestApp>,
    click_ids: Vec<String>,
    acknowledged_count: Arc<AtomicUsize>,
    mut redis_down: watch::Receiver<bool>,
    observers: Arc<AtomicUsize>,
) -> Vec<(String, Value)> {
    let held_back_from = click_ids.len() - HELD_BACK_PER_ADVERTISER;
    let mut acknowledged = Vec::new();
    let mut saw_503 = false;
    for (i, click_id) in click_ids.into_iter().enumerate() {
        if i == held_back_from {
            tokio::time::timeout(PATIENCE, redis_down.wait_for(|down| *down))
                .await
                .unwrap_or_else(|_| panic!("Redis was not killed within {PATIENCE:?}"))
                .expect("the test still runs");
        }
        let txid = format!("order-{click_id}");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let response = app
                .postback(&format!(
                    "click_id={click_id}&token={OFFER_TOKEN}&txid={txid}"
                ))
                .await;
            match response.status().as_u16() {
                200 => {
                    let body: Value = response.json().await.expect("json");
                    acknowledged.push((txid.clone(), body));
                    acknowledged_count.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                503 => {
                    if !saw_503 {
                        saw_503 = true;
                        observers.fetch_add(1, Ordering::SeqCst);
                    }
                    assert!(
                        Instant::now() < deadline,
                        "conversion {txid} still answered 503 after {PATIENCE:?} of retries: Redis never came back"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("postback answered {other}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_redis_under_load_loses_no_acknowledged_conversion_and_credits_none_twice() {
    // Arrange: a durable Redis (AOF, fsync on every write), an offer, and
    // clicks the advertisers will report conversions for.
    let server = Arc::new(RedisServer::start_persistent());
    let app = Arc::new(
        spawn_app_on(Backend::Redis {
            url: server.url(),
            prefix: random_prefix(),
        })
        .await,
    );
    app.with_offer_and_affiliate().await;
    let mut click_ids = Vec::new();
    for _ in 0..CONVERSIONS {
        click_ids.push(app.click_id("o1", "a1").await);
    }

    // Act: visitors click and advertisers post back while Redis is killed
    // and restarted.
    let stop_clicking = Arc::new(AtomicBool::new(false));
    let redirects = Arc::new(AtomicUsize::new(0));
    let visitors: Vec<_> = (0..VISITORS)
        .map(|_| {
            let (app, stop, redirects) = (
                Arc::clone(&app),
                Arc::clone(&stop_clicking),
                Arc::clone(&redirects),
            );
            tokio::spawn(async move {
                let deadline = Instant::now() + 4 * PATIENCE;
                while !stop.load(Ordering::SeqCst) {
                    assert!(
                        Instant::now() < deadline,
                        "visitors were never told to stop"
                    );
                    let response = app.click("o1", "aff_id=a1").await;
                    assert_eq!(response.status(), 302, "a visitor was not redirected");
                    assert!(location(&response).starts_with("https://shop.example/landing"));
                    redirects.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let acknowledged_count = Arc::new(AtomicUsize::new(0));
    let observers = Arc::new(AtomicUsize::new(0));
    let (redis_down_tx, redis_down) = watch::channel(false);
    let advertisers: Vec<_> = click_ids
        .chunks(CONVERSIONS / ADVERTISERS)
        .map(|chunk| {
            tokio::spawn(advertise(
                Arc::clone(&app),
                chunk.to_vec(),
                Arc::clone(&acknowledged_count),
                redis_down.clone(),
                Arc::clone(&observers),
            ))
        })
        .collect();

    wait_for("the first acknowledged conversions", || {
        acknowledged_count.load(Ordering::SeqCst) >= ACKNOWLEDGED_BEFORE_KILL
    })
    .await;
    let killed = Arc::clone(&server);
    tokio::task::spawn_blocking(move || killed.stop())
        .await
        .expect("Redis killed");
    let redirects_at_kill = redirects.load(Ordering::SeqCst);
    redis_down_tx.send(true).expect("advertisers listen");
    wait_for("every advertiser to be answered 503", || {
        observers.load(Ordering::SeqCst) == ADVERTISERS
    })
    .await;
    wait_for("visitors to be redirected while Redis is down", || {
        redirects.load(Ordering::SeqCst) >= redirects_at_kill + REDIRECTS_DURING_OUTAGE
    })
    .await;
    let restarted = Arc::clone(&server);
    tokio::task::spawn_blocking(move || restarted.restart())
        .await
        .expect("Redis restarted");

    let mut acknowledged = Vec::new();
    for advertiser in advertisers {
        acknowledged.extend(advertiser.await.expect("advertiser finished"));
    }
    stop_clicking.store(true, Ordering::SeqCst);
    for visitor in visitors {
        visitor.await.expect("no visitor was dropped");
    }

    // Assert: the outage was observed by construction (the waits above);
    // what matters is that nothing acknowledged was lost or doubled.
    assert_eq!(
        acknowledged.len(),
        CONVERSIONS,
        "every conversion was eventually acknowledged"
    );
    let mut credited_per_txid: HashMap<String, usize> = HashMap::new();
    for (txid, body) in &acknowledged {
        let status = body["status"].as_str().unwrap_or_default();
        assert!(matches!(status, "credited" | "duplicate"), "{body}");
        if status == "credited" {
            *credited_per_txid.entry(txid.clone()).or_default() += 1;
        }
    }
    assert!(credited_per_txid.values().all(|n| *n == 1));
    // A `duplicate` answer means an earlier attempt was written but its answer
    // was lost with the connection; either way the conversion is stored once.
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], CONVERSIONS as u64, "{totals}");
    assert_eq!(
        totals["payout"],
        (CONVERSIONS * 5 / 2).to_string(),
        "{totals}"
    );
    assert_eq!(app.conversion_keys().len(), CONVERSIONS);
    drop(app);
    drop(server);
}
