//! On a Redis Cluster whose shape changes under traffic (API.md §7): a slot
//! migration and a primary's failover lose no acknowledged click or
//! conversion and count none twice. Each test starts a cluster of its own
//! (`tests/support/redis_cluster.rs`), whatever backend the suite runs on.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::redis_server::redis_cluster::RedisCluster;
use crate::helpers::*;

/// A clickback on `cluster`, under a fresh prefix, with a store timeout
/// that leaves room for a few redirections.
async fn app_on(cluster: &RedisCluster) -> TestApp {
    let prefix = random_prefix();
    let mut settings = test_settings(Some(cluster.nodes()), &prefix);
    settings.store_timeout = Duration::from_millis(1_500);
    spawn_app_with(
        Backend::Redis {
            url: cluster.nodes(),
            prefix,
        },
        settings,
    )
    .await
}

/// What the traffic saw: every click's status and click id, every
/// postback's click id, HTTP status and answer.
#[derive(Default)]
struct Seen {
    clicks: Vec<(u16, Option<String>)>,
    postbacks: Vec<(String, u16, String)>,
}

/// Clicks from ever new visitors (so they spread over every shard) and a
/// postback for each click that got an id, until `stop`.
async fn traffic(app: Arc<TestApp>, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>, lane: usize) {
    // Each lane makes at least one click and its postback, however soon it
    // is told to stop: what a traffic window saw never depends on timing.
    let mut n = 0;
    loop {
        n += 1;
        let response = app
            .client
            .get(format!("{}/c/o1?aff_id=a1", app.address))
            .header("user-agent", format!("visitor-{lane}-{n}"))
            .send()
            .await
            .expect("click sent");
        let status = response.status().as_u16();
        let id = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .and_then(click_id_from);
        seen.lock().expect("lock").clicks.push((status, id.clone()));
        if let Some(id) = id {
            let (status, answer) = postback(&app, &id).await;
            seen.lock()
                .expect("lock")
                .postbacks
                .push((id, status, answer));
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// The conversion postback of click `id` (txid `t-<id>`): HTTP status and
/// the answer's `status`.
async fn postback(app: &TestApp, id: &str) -> (u16, String) {
    let response = app
        .postback(&format!("click_id={id}&token={OFFER_TOKEN}&txid=t-{id}"))
        .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["status"].as_str().unwrap_or("").to_owned())
}

/// Runs `lanes` traffic lanes while `during` runs on a blocking thread.
async fn with_traffic(
    app: &Arc<TestApp>,
    lanes: usize,
    during: impl FnOnce(&Mutex<Seen>) + Send + 'static,
) -> Seen {
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            tokio::spawn(traffic(
                Arc::clone(app),
                Arc::clone(&stop),
                Arc::clone(&seen),
                lane,
            ))
        })
        .collect();
    let watched = Arc::clone(&seen);
    tokio::task::spawn_blocking(move || during(&watched))
        .await
        .expect("joined");
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("traffic lane");
    }
    let taken = std::mem::take(&mut *seen.lock().expect("lock"));
    taken
}

/// Blocks until the traffic lanes have made `n` more clicks (within a
/// deadline): a window of traffic measured in requests, not in time.
fn until_clicks(seen: &Mutex<Seen>, n: usize) {
    let count = || seen.lock().expect("lock").clicks.len();
    let target = count() + n;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count() < target {
        assert!(
            Instant::now() < deadline,
            "no traffic: {} of {target} clicks",
            count()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The slot of shard `shard`'s keys (`…:{S}:…`), as the cluster computes it.
fn slot_of_shard(cluster: &RedisCluster, shard: char) -> u16 {
    let port = cluster.primaries()[0];
    cluster
        .ask(port, &["CLUSTER", "KEYSLOT", &format!("{{{shard}}}")])
        .and_then(|s| s.parse().ok())
        .expect("CLUSTER KEYSLOT")
}

/// Moves `slot` from the node on `from` to the node on `to` by hand, a few
/// keys at a time, as `redis-cli --cluster reshard` does.
fn migrate_slot(cluster: &RedisCluster, slot: u16, from: u16, to: u16) {
    let slot = slot.to_string();
    let (from_id, to_id) = (cluster.node_id(from), cluster.node_id(to));
    let ok = |port: u16, words: &[&str]| {
        let answer = cluster.ask(port, words);
        assert!(
            answer.as_deref().is_some_and(|a| !a.starts_with("ERR")),
            "{words:?} on {port}: {answer:?}"
        );
        answer.unwrap_or_default()
    };
    ok(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
    ok(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let keys = ok(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "1"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let port = to.to_string();
        let mut words = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        words.extend(keys);
        ok(from, &words);
        assert!(Instant::now() < deadline, "slot {slot} did not empty");
        // Traffic meets the slot half moved.
        std::thread::sleep(Duration::from_millis(5));
    }
    for port in cluster.primaries() {
        ok(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
    }
}

/// Asserts that every click that got an id is stored and counted once, and
/// that every click's conversion is credited exactly once, retrying (as an
/// advertiser would) the postbacks that were not answered 200.
async fn assert_nothing_lost_or_doubled(app: &TestApp, seen: &Seen) {
    let ids: Vec<String> = seen
        .clicks
        .iter()
        .filter_map(|(_, id)| id.clone())
        .collect();
    let stored: HashSet<String> = app.stored_click_ids().into_iter().collect();
    let missing: Vec<&String> = ids.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged clicks not stored: {missing:?}"
    );
    let totals = app.totals().await;
    assert_eq!(
        totals["clicks"],
        json!(ids.len()),
        "every acknowledged click counted once, no other: {totals}"
    );

    // Every postback answered 200 credited its conversion: sent again it
    // is a duplicate. Those answered otherwise are retried until they are.
    let mut answered: HashMap<&str, Vec<(u16, &str)>> = HashMap::new();
    for (id, status, answer) in &seen.postbacks {
        answered.entry(id).or_default().push((*status, answer));
    }
    for id in &ids {
        let first_ok = answered
            .get(id.as_str())
            .is_some_and(|answers| answers.iter().any(|(s, _)| *s == 200));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, answer) = postback(app, id).await;
            if status == 200 {
                if first_ok {
                    assert_eq!(answer, "duplicate", "click {id} was credited twice");
                }
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the postback of {id} still answers {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let totals = app.totals().await;
    assert_eq!(
        totals["conversions"],
        json!(ids.len()),
        "one conversion per click, none twice: {totals}"
    );
    assert_eq!(app.conversion_keys().len(), ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moving_slots_with_live_clicks_between_primaries_loses_and_doubles_nothing() {
    // Arrange: three primaries, an offer, and four shards whose slots one
    // of them serves, with clicks stored in them.
    let cluster = Arc::new(RedisCluster::start(3, 0));
    let app = Arc::new(app_on(&cluster).await);
    app.with_offer_and_affiliate().await;
    let warm_up = with_traffic(&app, 2, |seen| until_clicks(seen, 20)).await;
    assert!(
        warm_up.clicks.iter().any(|(_, id)| id.is_some()),
        "no click stored"
    );
    let primaries = cluster.primaries();
    let (from, to) = (primaries[0], primaries[1]);
    let slots: Vec<u16> = (0..64)
        .map(clickback::domain::ids::shard_char)
        .map(|shard| slot_of_shard(&cluster, shard))
        .filter(|&slot| cluster.owner_of(slot) == from)
        .take(4)
        .collect();
    assert!(!slots.is_empty(), "the first primary serves no shard");

    // Act: move them, one at a time, while clicks and postbacks flow.
    let mover = Arc::clone(&cluster);
    let moved = slots.clone();
    let during = with_traffic(&app, 4, move |_| {
        for slot in moved {
            migrate_slot(&mover, slot, from, to);
        }
    })
    .await;

    // Assert: every click redirected, every postback answered 200 or 503;
    // then nothing acknowledged lost, nothing counted twice.
    for slot in &slots {
        assert_eq!(cluster.owner_of(*slot), to, "slot {slot} moved");
    }
    assert!(
        during.clicks.iter().all(|(status, _)| *status == 302),
        "every visitor redirected"
    );
    assert!(
        during
            .postbacks
            .iter()
            .all(|(_, s, _)| *s == 200 || *s == 503),
        "postbacks answer 200 or 503: {:?}",
        during
            .postbacks
            .iter()
            .filter(|(_, s, _)| *s != 200)
            .collect::<Vec<_>>()
    );
    let seen = Seen {
        clicks: [warm_up.clicks, during.clicks].concat(),
        postbacks: [warm_up.postbacks, during.postbacks].concat(),
    };
    assert!(
        seen.clicks.iter().filter(|(_, id)| id.is_some()).count() > 50,
        "traffic flowed during the move"
    );
    assert_nothing_lost_or_doubled(&app, &seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_primary_is_replaced_by_its_replica_with_only_503s_in_between_and_nothing_lost() {
    // Arrange: three primaries with a replica each, an offer, clicks.
    let cluster = Arc::new(RedisCluster::start(3, 1));
    let app = Arc::new(app_on(&cluster).await);
    app.with_offer_and_affiliate().await;
    let warm_up = with_traffic(&app, 2, |seen| until_clicks(seen, 20)).await;
    let victim = cluster.primaries()[0];

    // Act: kill a primary under traffic and keep it flowing until its
    // replica has taken over and clicks and postbacks pass again.
    let killer = Arc::clone(&cluster);
    let during = with_traffic(&app, 4, move |seen| {
        until_clicks(seen, 10);
        killer.kill(victim);
        killer.wait_until_healthy();
        until_clicks(seen, 20);
    })
    .await;
    let mut after = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let recovered = loop {
        let seen = with_traffic(&app, 2, |seen| until_clicks(seen, 20)).await;
        let passed = !seen.clicks.is_empty()
            && seen.clicks.iter().all(|(_, id)| id.is_some())
            && seen.postbacks.iter().all(|(_, status, _)| *status == 200);
        after.push(seen);
        if passed || Instant::now() > deadline {
            break passed;
        }
    };

    // Assert
    assert!(!cluster.primaries().contains(&victim), "the victim is gone");
    assert_eq!(cluster.primaries().len(), 3, "its replica took over");
    assert!(
        during.clicks.iter().all(|(status, _)| *status == 302),
        "visitors redirected throughout"
    );
    assert!(
        during
            .postbacks
            .iter()
            .all(|(_, s, _)| *s == 200 || *s == 503),
        "postbacks answer only 200 or 503 meanwhile"
    );
    assert!(recovered, "clicks and postbacks never all passed again");
    let mut seen = Seen {
        clicks: [warm_up.clicks, during.clicks].concat(),
        postbacks: [warm_up.postbacks, during.postbacks].concat(),
    };
    for later in after {
        seen.clicks.extend(later.clicks);
        seen.postbacks.extend(later.postbacks);
    }
    assert_nothing_lost_or_doubled(&app, &seen).await;
}
