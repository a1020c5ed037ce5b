//! Several clickback instances on one store (API.md §7): what one instance
//! decides holds on the others. Offers changed through one instance and
//! clicks converting through another are in `admin.rs`
//! (`an_offer_created_and_paused_through_one_instance_reaches_another_within_5_seconds`);
//! this file adds unique clicks, caps and the postback log. On a cluster
//! backend (`CLICKBACK_TEST_BACKEND=cluster`) they run on the cluster.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

/// A desktop browser.
const BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0";
/// Where capped clicks go.
const FALLBACK: &str = "https://fallback.example/more";

/// A click of `a1` on `o1` from the browser above; its click id.
async fn browser_click(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/c/o1?aff_id=a1", app.address))
        .header("user-agent", BROWSER_UA)
        .send()
        .await
        .expect("click sent");
    assert_eq!(response.status(), 302);
    click_id_from(&location(&response)).expect("a click id")
}

#[tokio::test]
async fn the_same_visitor_through_two_instances_is_one_unique_click() {
    // Arrange
    let a = spawn_app().await;
    let b = spawn_sibling(&a, |_| {}).await;
    a.with_offer_and_affiliate().await;
    let seen_by_b = eventually(Duration::from_secs(5), || async {
        b.click("o1", "aff_id=a1").await.status() == 302
    })
    .await;
    assert!(seen_by_b.is_some(), "B never saw the offer");
    b.totals().await;
    let before = a.totals().await;

    // Act
    browser_click(&a).await;
    browser_click(&b).await;

    // Assert: B's stats write its own queued counts; A's then see both.
    b.totals().await;
    let totals = a.totals().await;
    assert_eq!(
        totals["clicks"],
        json!(before["clicks"].as_i64().unwrap_or(0) + 2),
        "{totals}"
    );
    assert_eq!(
        totals["unique_clicks"],
        json!(before["unique_clicks"].as_i64().unwrap_or(0) + 1),
        "{totals}"
    );
}

#[tokio::test]
async fn a_cap_filled_through_one_instance_holds_on_another() {
    // Arrange: a cap of one conversion a day, two clicks through A.
    let a = spawn_app().await;
    let b = spawn_sibling(&a, |_| {}).await;
    a.create_affiliate("a1").await;
    a.create_offer(
        "o1",
        json!({
            "caps": [{"scope": "offer", "period": "day", "metric": "conversions", "limit": "1"}],
            "fallback_url": FALLBACK,
        }),
    )
    .await;
    let first = a.click_id("o1", "a1").await;
    let second = a.click_id("o1", "a1").await;
    let seen_by_b = eventually(Duration::from_secs(5), || async {
        b.click("o1", "aff_id=a1").await.status() == 302
    })
    .await;
    assert!(seen_by_b.is_some(), "B never saw the offer");

    // Act: the first converts through A, the second through B.
    let credited = postback_ok(&a, &first, "txid=t1").await;
    let refused = postback_ok(&b, &second, "txid=t2").await;

    // Assert
    assert_eq!(credited["status"], "credited", "{credited}");
    assert_eq!(refused["status"], "rejected", "{refused}");
    assert_eq!(refused["reason"], "cap_reached", "{refused}");
    let capped = eventually(Duration::from_secs(5), || async {
        location(&b.click("o1", "aff_id=a1").await) == FALLBACK
    })
    .await;
    assert!(capped.is_some(), "B kept sending clicks to the full offer");
    let totals = b.totals().await;
    assert_eq!(totals["conversions"], 1, "{totals}");
    assert_eq!(totals["rejected_conversions"], 1, "{totals}");
}

#[tokio::test]
async fn postbacks_through_two_instances_are_in_one_log_read_through_either() {
    // Arrange
    let a = spawn_app().await;
    let b = spawn_sibling(&a, |_| {}).await;
    a.with_offer_and_affiliate().await;
    let click = a.click_id("o1", "a1").await;
    let seen_by_b = eventually(Duration::from_secs(5), || async {
        b.click("o1", "aff_id=a1").await.status() == 302
    })
    .await;
    assert!(seen_by_b.is_some(), "B never saw the offer");

    // Act
    postback_ok(&a, &click, "txid=through-a").await;
    postback_ok(&b, &click, "txid=through-b").await;

    // Assert: both entries (each instance files its own in the background),
    // through either instance.
    for reader in [&a, &b] {
        let logged = eventually(Duration::from_secs(5), || async {
            let body = ok_json(reader.admin_get("/api/v1/postbacks?offer_id=o1").await).await;
            let mut txids: Vec<String> = body["postbacks"]
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|e| e["txid"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            txids.sort();
            txids == ["through-a", "through-b"]
        })
        .await;
        assert!(logged.is_some(), "the log does not hold both postbacks");
    }
}
