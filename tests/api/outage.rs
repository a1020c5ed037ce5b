//! The store goes away and comes back (API.md §1, §2, §4 "store down").
//! Each test owns its Redis, so killing it disturbs nobody else.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

const STORE_ERROR_CLICKS: &str = r#"clickback_clicks_total{offer="o1",result="store_error"}"#;
const STORE_ERROR_POSTBACKS: &str = r#"clickback_postbacks_total{result="store_error"}"#;
const OFFER_URL: &str = "https://shop.example/landing?utm=x#top";

/// The sum of every `clickback_store_errors_total` sample.
fn store_errors(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("clickback_store_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A clickback on its own, private Redis.
async fn app_on_private_redis(server: &RedisServer) -> TestApp {
    spawn_app_on(Backend::Redis {
        url: server.url(),
        prefix: random_prefix(),
    })
    .await
}

async fn credit(app: &TestApp, click_id: &str, txid: &str) -> reqwest::Response {
    app.postback(&format!(
        "click_id={click_id}&token={OFFER_TOKEN}&txid={txid}"
    ))
    .await
}

#[tokio::test]
async fn while_redis_is_down_visitors_are_still_redirected_and_postbacks_ask_for_a_retry() {
    // Arrange
    let server = RedisServer::start();
    let app = app_on_private_redis(&server).await;
    app.with_offer_and_affiliate().await;
    let earlier_click = app.click_id("o1", "a1").await;
    let before = app.metrics().await;

    // Act
    server.stop();
    let click = app.click("o1", "aff_id=a1").await;
    let postback = credit(&app, &earlier_click, "t1").await;
    let ready = app.get("/readyz").await;
    let after = app.metrics().await;

    // Assert: the visitor lands on the offer, without a click id
    assert_eq!(click.status(), 302);
    assert_eq!(location(&click), OFFER_URL);
    // the advertiser is told to retry
    assert_eq!(
        postback.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    assert_rejected(postback, 503, "store_unavailable").await;
    // the load balancer takes the instance out
    assert_rejected(ready, 503, "store_unavailable").await;
    // and operators can see it
    assert!(store_errors(&after) > store_errors(&before), "{after}");
    assert_eq!(
        metric_value(&after, STORE_ERROR_CLICKS) - metric_value(&before, STORE_ERROR_CLICKS),
        1.0,
        "{after}"
    );
    assert_eq!(metric_value(&after, STORE_ERROR_POSTBACKS), 1.0, "{after}");
    let healthz = app.get("/healthz").await;
    assert_eq!(healthz.status(), 200, "the process itself is alive");
}

/// Every key under `app`'s prefix with its remaining TTL (ms, 0 = none) and
/// its `DUMP` payload, to put back after a restart as a persistent Redis would.
fn snapshot_keys(app: &TestApp) -> Vec<(String, i64, Vec<u8>)> {
    let mut conn = app.redis();
    app.redis_keys()
        .into_iter()
        .map(|key| {
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).expect("PTTL");
            let dump: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut conn).expect("DUMP");
            (key, ttl.max(0), dump)
        })
        .collect()
}

fn restore_keys(app: &TestApp, keys: &[(String, i64, Vec<u8>)]) {
    let mut conn = app.redis();
    for (key, ttl, dump) in keys {
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(*ttl)
            .arg(dump.as_slice())
            .arg("REPLACE")
            .query(&mut conn)
            .expect("RESTORE");
    }
}

#[tokio::test]
async fn when_redis_comes_back_with_its_data_clickback_recovers_without_a_restart() {
    // Arrange: a click before the outage, then Redis crashes
    let server = RedisServer::start();
    let app = app_on_private_redis(&server).await;
    app.with_offer_and_affiliate().await;
    let earlier_click = app.click_id("o1", "a1").await;
    let persisted = snapshot_keys(&app);
    server.stop();
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert!(click_id_from(&location(&app.click("o1", "aff_id=a1").await)).is_none());

    // Act: Redis restarts and reloads its data (as with RDB/AOF persistence)
    server.restart();
    restore_keys(&app, &persisted);
    let ready_after = eventually(Duration::from_secs(5), || async {
        app.get("/readyz").await.status() == 200
    })
    .await;
    let tracked_after = eventually(Duration::from_secs(5), || async {
        let response = app.click("o1", "aff_id=a1").await;
        response.status() == 302 && click_id_from(&location(&response)).is_some()
    })
    .await;

    // Assert
    assert!(ready_after.is_some(), "/readyz stayed 503");
    assert!(tracked_after.is_some(), "clicks were not tracked again");
    let new_click = app.click_id("o1", "a1").await;
    for (click_id, txid) in [(&new_click, "t-new"), (&earlier_click, "t-old")] {
        let response = credit(&app, click_id, txid).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("postback json");
        assert_eq!(body["status"], "credited", "{body}");
        assert_eq!(body["payout"], "2.5");
    }
}

#[tokio::test]
async fn when_redis_comes_back_empty_recreating_the_config_restores_tracking_without_a_restart() {
    // Arrange
    let server = RedisServer::start();
    let app = app_on_private_redis(&server).await;
    app.with_offer_and_affiliate().await;
    server.stop();
    let put_while_down = app.put_offer("o1", &offer_body()).await;

    // Act: Redis restarts without its data; the operator re-creates the config
    server.restart();
    let ready_after = eventually(Duration::from_secs(5), || async {
        app.get("/readyz").await.status() == 200
    })
    .await;
    app.with_offer_and_affiliate().await;

    // Assert
    assert_rejected(put_while_down, 503, "store_unavailable").await;
    assert!(ready_after.is_some(), "/readyz stayed 503");
    let click_id = app.click_id("o1", "a1").await;
    let response = credit(&app, &click_id, "t1").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("postback json");
    assert_eq!(body["status"], "credited", "{body}");
    assert_eq!(app.stats("").await[0]["conversions"], 1);
}

#[tokio::test]
async fn when_redis_comes_back_empty_visitors_still_reach_the_cached_offers() {
    // Arrange
    let server = RedisServer::start();
    let app = app_on_private_redis(&server).await;
    app.with_offer_and_affiliate().await;
    server.stop();

    // Act: Redis restarts without its data
    server.restart();
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get("/readyz").await.status() == 200
        })
        .await
        .is_some(),
        "/readyz stayed 503"
    );
    // The config refresher has met the emptied Redis once it has written
    // this instance's configuration back.
    let written_back = eventually(Duration::from_secs(10), || async {
        config_in_redis(&app, "o1", "a1")
    })
    .await;
    let click = app.click("o1", "aff_id=a1").await;

    // Assert
    assert!(
        written_back.is_some(),
        "the configuration was never written back to the emptied Redis"
    );
    assert_eq!(click.status(), 302, "the offer vanished with Redis's data");
    assert!(location(&click).starts_with("https://shop.example/landing"));
}

/// Whether `app`'s Redis holds offer `offer` and affiliate `aff` in its configuration.
fn config_in_redis(app: &TestApp, offer: &str, aff: &str) -> bool {
    let keys = app.keys();
    let mut conn = app.redis();
    let has = |conn: &mut Inspector, hash: String, field: &str| -> bool {
        redis::cmd("HEXISTS")
            .arg(hash)
            .arg(field)
            .query(conn)
            .expect("HEXISTS")
    };
    has(&mut conn, keys.offers(), offer) && has(&mut conn, keys.affiliates(), aff)
}

#[tokio::test]
async fn a_click_made_before_a_clickback_restart_converts_after_it() {
    // Arrange: the old process takes the click, then goes away
    let server = RedisServer::start();
    let mut old = app_on_private_redis(&server).await;
    old.with_offer_and_affiliate().await;
    let click_id = old.click_id("o1", "a1").await;
    let backend = old.backend.clone();
    let old_port = old.port;
    // Stop it without the harness's cleanup, which would delete its Redis keys.
    old.backend = Backend::Memory;
    drop(old);
    let gone = eventually(Duration::from_secs(5), || async {
        std::net::TcpStream::connect(("127.0.0.1", old_port)).is_err()
    })
    .await;
    assert!(gone.is_some(), "the old process still listens");

    // Act: a brand-new process on the same Redis and prefix
    let new = spawn_app_on(backend).await;
    let response = credit(&new, &click_id, "t1").await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("postback json");
    assert_eq!(body["status"], "credited", "{body}");
    assert_eq!(body["click_id"], click_id.as_str());
    assert_eq!(body["aff_id"], "a1");
    assert_eq!(body["payout"], "2.5");
    let totals = new.stats("").await;
    assert_eq!(totals[0]["clicks"], 1);
    assert_eq!(totals[0]["conversions"], 1);
    assert_eq!(totals[0]["payout"], "2.5");
}

#[tokio::test]
async fn a_slow_redis_within_the_store_timeout_still_answers_reports_and_listings() {
    // Arrange: a store bound of 5 s; then the app's own Redis (not the
    // shared one: other tests must not wait) holds every client for 1.2 s.
    let server = RedisServer::start();
    let backend = Backend::Redis {
        url: server.url(),
        prefix: random_prefix(),
    };
    let Backend::Redis { url, prefix } = &backend else {
        unreachable!()
    };
    let mut settings = test_settings(Some(url.clone()), prefix);
    settings.store_timeout = Duration::from_secs(5);
    let app = spawn_app_with(backend.clone(), settings).await;
    app.with_offer_and_affiliate().await;
    let click_id = app.click_id("o1", "a1").await;
    postback_ok(&app, &click_id, "").await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1200)
        .arg("ALL")
        .query(&mut app.redis())
        .expect("CLIENT PAUSE");

    // Act
    let rows = app.stats("group_by=offer").await;
    let deliveries = app.admin_get("/api/v1/deliveries?state=pending").await;

    // Assert: slower than the client's own 500 ms default, inside the bound.
    assert_eq!(rows[0]["conversions"], 1, "{rows:?}");
    assert_eq!(deliveries.status(), 200);
}
