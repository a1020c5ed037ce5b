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

#[tokio::test]
async fn after_redis_restarts_clickback_recovers_without_a_restart() {
    // Arrange
    let server = RedisServer::start();
    let app = app_on_private_redis(&server).await;
    app.with_offer_and_affiliate().await;
    server.stop();
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert!(click_id_from(&location(&app.click("o1", "aff_id=a1").await)).is_none());

    // Act
    server.restart();
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
    tokio::time::sleep(Duration::from_secs(1)).await;
    let click_id = app.click_id("o1", "a1").await;
    let response = credit(&app, &click_id, "t1").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("postback json");
    assert_eq!(body["status"], "credited", "{body}");
    assert_eq!(body["payout"], "2.5");
}

#[tokio::test]
async fn a_click_made_before_a_clickback_restart_converts_after_it() {
    // Arrange: the old process takes the click, then goes away
    let server = RedisServer::start();
    let mut old = app_on_private_redis(&server).await;
    old.with_offer_and_affiliate().await;
    let click_id = old.click_id("o1", "a1").await;
    let backend = old.backend.clone();
    let old_address = old.address.clone();
    // Stop it without the harness's cleanup, which would delete its Redis keys.
    old.backend = Backend::Memory;
    drop(old);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let old_answers = reqwest::get(format!("{old_address}/healthz")).await.is_ok();

    // Act: a brand-new process on the same Redis and prefix
    let new = spawn_app_on(backend).await;
    let response = credit(&new, &click_id, "t1").await;

    // Assert
    eprintln!("old still answers: {old_answers}");
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
