//! Redis killed and restarted under load: redirects keep flowing, postbacks
//! answer 503 while it is down, and not one acknowledged conversion is lost
//! or credited twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// How many conversions the advertiser reports during the outage test.
const CONVERSIONS: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_redis_under_load_loses_no_acknowledged_conversion_and_credits_none_twice() {
    // Arrange: a durable Redis (AOF, fsync on every write), an offer, and
    // clicks the advertiser will report conversions for.
    let server = RedisServer::start_persistent();
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

    // Act: visitors click and advertisers post back, retrying every non-2xx
    // as real ones do, while Redis is killed and restarted.
    let stop_clicking = Arc::new(AtomicBool::new(false));
    let redirects = Arc::new(AtomicUsize::new(0));
    let clickers: Vec<_> = (0..4)
        .map(|_| {
            let (app, stop, redirects) = (
                Arc::clone(&app),
                Arc::clone(&stop_clicking),
                Arc::clone(&redirects),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let response = app.click("o1", "aff_id=a1").await;
                    assert_eq!(response.status(), 302, "a visitor was not redirected");
                    assert!(location(&response).starts_with("https://shop.example/landing"));
                    redirects.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let saw_503 = Arc::new(AtomicBool::new(false));
    let advertisers: Vec<_> = click_ids
        .chunks(CONVERSIONS / 6)
        .map(|chunk| {
            let (app, saw_503, chunk) = (Arc::clone(&app), Arc::clone(&saw_503), chunk.to_vec());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for click_id in chunk {
                    let txid = format!("order-{click_id}");
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
                                break;
                            }
                            503 => {
                                saw_503.store(true, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            other => panic!("postback answered {other}"),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killer = tokio::task::spawn_blocking(move || {
        server.stop();
        std::thread::sleep(Duration::from_millis(800));
        server.restart();
        server
    });
    let server = killer.await.expect("redis restarted");
    let mut acknowledged = Vec::new();
    for advertiser in advertisers {
        acknowledged.extend(advertiser.await.expect("advertiser finished"));
    }
    stop_clicking.store(true, Ordering::Relaxed);
    for clicker in clickers {
        clicker.await.expect("no visitor was dropped");
    }

    // Assert
    assert!(
        saw_503.load(Ordering::Relaxed),
        "the outage was not observed by any postback"
    );
    assert!(redirects.load(Ordering::Relaxed) > 0);
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
    drop(server);
}
