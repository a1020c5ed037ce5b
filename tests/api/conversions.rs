//! `GET /api/v1/conversions` and an advertiser's `PATCH
//! /api/v1/me/conversions/{id}` (API.md §8): each conversion with its
//! click's subs, its money and its status history; pages that never skip or
//! repeat one.

use std::collections::HashSet;
use std::sync::Arc;

use clickback::domain::conversion::{ConversionCommand, ConversionOutcome};
use clickback::domain::delivery::DeliveryContext;
use clickback::domain::{AffiliateId, ClickId, ConversionStatus, Day, Identity, Money, OfferId};
use clickback::store::Store;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::keys::{create_advertiser, create_key, get_as};

async fn list(app: &TestApp, query: &str) -> Value {
    ok_json(app.admin_get(&format!("/api/v1/conversions?{query}")).await).await
}

async fn patch_as(app: &TestApp, secret: &str, id: &str, body: Value) -> reqwest::Response {
    app.client
        .patch(format!("{}/api/v1/me/conversions/{id}", app.address))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn a_listed_conversion_carries_its_clicks_subs_its_money_and_its_status_history() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let click = app
        .click("o1", "aff_id=a1&sub1=camp%207&sub3=x&source=mail")
        .await;
    let click_id = click_id_from(&location(&click)).expect("click id");
    let created = postback_ok(&app, &click_id, "status=pending&txid=T1").await;
    app.clock.advance(60);
    postback_ok(&app, &click_id, "status=approved&txid=T1").await;

    // Act
    let listed = list(&app, "").await;

    // Assert
    let at = app.clock.now();
    assert_eq!(
        listed,
        json!({
            "conversions": [{
                "id": created["conversion_id"], "click_id": click_id,
                "offer_id": "o1", "aff_id": "a1", "status": "approved",
                "goal": null, "txid": "T1",
                "sub1": "camp 7", "sub2": null, "sub3": "x", "sub4": null, "sub5": null,
                "source": "mail", "created_at": at - 60, "updated_at": at,
                "payout": "2.5", "revenue": "4", "currency": "EUR",
                "history": [
                    {"status": "pending", "at": at - 60},
                    {"status": "approved", "at": at}
                ]
            }],
            "next_cursor": null
        })
    );
}

#[tokio::test]
async fn the_list_filters_by_party_status_goal_and_range() {
    // Arrange
    let app = spawn_app().await;
    create_advertiser(&app, "adv1", false).await;
    app.create_offer("o1", json!({"advertiser_id": "adv1"}))
        .await;
    app.create_offer("o2", json!({})).await;
    app.create_affiliate("a1").await;
    app.create_affiliate("a2").await;
    let c1 = app.click_id("o1", "a1").await;
    postback_ok(&app, &c1, "goal=sale").await;
    let c2 = app.click_id("o2", "a2").await;
    postback_ok(&app, &c2, "goal=lead&status=pending").await;
    let ids = |body: &Value| -> Vec<String> {
        body["conversions"]
            .as_array()
            .expect("list")
            .iter()
            .map(|c| c["click_id"].as_str().expect("click id").to_owned())
            .collect()
    };
    let tomorrow = app.today().succ();

    for (query, expected) in [
        ("", vec![c1.clone(), c2.clone()]),
        ("aff_id=a1", vec![c1.clone()]),
        ("offer_id=o2", vec![c2.clone()]),
        ("advertiser_id=adv1", vec![c1.clone()]),
        ("status=pending", vec![c2.clone()]),
        ("goal=sale", vec![c1.clone()]),
        ("aff_id=a1&status=pending", vec![]),
        (&format!("from={tomorrow}&to={tomorrow}"), vec![]),
    ] {
        // Act
        let mut got = ids(&list(&app, query).await);
        got.sort();
        let mut expected = expected.clone();
        expected.sort();

        // Assert
        assert_eq!(got, expected, "{query}");
    }
    assert_rejected(
        app.admin_get("/api/v1/conversions?advertiser_id=nobody")
            .await,
        404,
        "unknown_advertiser",
    )
    .await;
    for bad in [
        "status=paid",
        "limit=0",
        "limit=1001",
        "cursor=nope",
        "from=2026-13-01",
    ] {
        assert_rejected(
            app.admin_get(&format!("/api/v1/conversions?{bad}")).await,
            400,
            "invalid_request",
        )
        .await;
    }
}

/// A new approved conversion of `o1`/`a1` on a fresh click, created at `now`.
fn seeded(now: u64, i: usize) -> ConversionCommand {
    ConversionCommand {
        click_id: ClickId::generate(),
        identity: Identity::Goal("default".into()),
        offer_id: OfferId::parse("o1").expect("id"),
        aff_id: AffiliateId::parse("a1").expect("id"),
        status: ConversionStatus::Approved,
        payout: Some(Money::from_micros(1_000_000)),
        revenue: Some(Money::from_micros(2_000_000)),
        new_conversion_id: format!("seed{i:05}"),
        today: Day::from_unix(now),
        seen_day: None,
        retention_secs: 3_600,
        reason: None,
        now,
        delivery: None,
        seen_conversion_id: None,
        context: DeliveryContext::default(),
        must_exist: false,
    }
}

#[tokio::test]
async fn pages_over_ten_thousand_conversions_show_each_exactly_once_newest_first() {
    // Arrange: ten conversions a second, so that pages split seconds. A page
    // reads its entries from all 64 shards and then their records: a debug
    // build on a machine busy with the rest of the suite needs more than the
    // tests' usual 500 ms bound per store operation (this test is about
    // paging, not speed).
    const COUNT: usize = 10_000;
    const PAGE: usize = 250;
    let app = spawn_app_tweaked(|settings| {
        settings.store_timeout = std::time::Duration::from_secs(30);
    })
    .await;
    app.with_offer_and_affiliate().await;
    let store: Arc<dyn Store> = Arc::clone(&app.state.store);
    let now = app.clock.now();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in (w..COUNT).step_by(8) {
                    let command = seeded(now - (i / 10) as u64, i);
                    let outcome = store.apply_conversion(&command).await.expect("applied");
                    assert!(matches!(outcome, ConversionOutcome::Created(_)));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("seeded");
    }

    // Act
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..=COUNT / PAGE + 1 {
        let query = match &cursor {
            Some(c) => format!("limit={PAGE}&cursor={c}"),
            None => format!("limit={PAGE}"),
        };
        let page = list(&app, &query).await;
        for c in page["conversions"].as_array().expect("list") {
            seen.push((
                c["created_at"].as_u64().expect("time"),
                c["id"].as_str().expect("id").to_owned(),
            ));
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }

    // Assert
    assert_eq!(cursor, None, "the last page says it is the last");
    assert_eq!(seen.len(), COUNT);
    let unique: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), COUNT, "none repeated");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, ties by id"
    );
}

#[tokio::test]
async fn an_advertiser_approves_its_pending_conversion_and_the_counters_and_the_affiliate_postback_follow(
) {
    // Arrange: no delivery worker, so the queued postback stays to be looked at.
    let app = spawn_app_tweaked(|settings| settings.delivery.concurrency = 0).await;
    create_advertiser(&app, "adv1", false).await;
    create_advertiser(&app, "adv2", false).await;
    app.create_offer("o1", json!({"advertiser_id": "adv1"}))
        .await;
    let affiliate = app
        .put_affiliate(
            "a1",
            &json!({"name": "a1", "postback_url": "https://tracker.example/pb?c={click_id}&s={status}"}),
        )
        .await;
    assert_eq!(affiliate.status(), 200);
    let click = app.click_id("o1", "a1").await;
    let pending = postback_ok(&app, &click, "status=pending").await;
    let id = pending["conversion_id"].as_str().expect("id").to_owned();
    let (own_id, own) =
        create_key(&app, json!({"role": "advertiser", "advertiser_id": "adv1"})).await;
    let (_, other) = create_key(&app, json!({"role": "advertiser", "advertiser_id": "adv2"})).await;

    // Act
    let foreign = patch_as(&app, &other, &id, json!({"status": "approved"})).await;
    let approved = patch_as(&app, &own, &id, json!({"status": "approved"})).await;
    let back = patch_as(&app, &own, &id, json!({"status": "pending"})).await;

    // Assert
    assert_rejected(foreign, 404, "unknown_conversion").await;
    let approved = ok_json(approved).await;
    assert_eq!(approved["status"], "updated");
    assert_eq!(approved["conversion_status"], "approved");
    assert!(
        approved.get("payout").is_none(),
        "adv1 does not see payouts"
    );
    assert_eq!(ok_json(back).await["status"], "duplicate");
    let totals = app.totals().await;
    assert_eq!(
        (
            totals["conversions"].clone(),
            totals["pending_conversions"].clone()
        ),
        (json!(1), json!(0))
    );
    assert_eq!(totals["payout"], "2.5");
    let listed = ok_json(get_as(&app, &own, "/api/v1/me/conversions").await).await;
    let history: Vec<&str> = listed["conversions"][0]["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["status"].as_str().expect("status"))
        .collect();
    assert_eq!(history, vec!["pending", "approved"]);
    let deliveries = ok_json(app.admin_get("/api/v1/affiliates/a1/deliveries").await).await;
    let statuses: Vec<&str> = deliveries["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| d["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "approved").count(),
        1,
        "{statuses:?}"
    );
    let audit = ok_json(app.admin_get("/api/v1/audit?limit=1").await).await;
    let entry = &audit["entries"][0];
    assert_eq!(
        (&entry["action"], &entry["actor"], &entry["target"]),
        (&json!("conversion.status"), &json!(own_id), &json!(id))
    );
    assert_eq!(
        (&entry["before"], &entry["after"]),
        (
            &json!({"status": "pending"}),
            &json!({"status": "approved"})
        )
    );
    for bad in [json!({"status": "paid"}), json!({"state": "approved"})] {
        assert_rejected(patch_as(&app, &own, &id, bad).await, 400, "invalid_request").await;
    }
    assert_rejected(
        patch_as(
            &app,
            &own,
            "no-such-conversion",
            json!({"status": "approved"}),
        )
        .await,
        404,
        "unknown_conversion",
    )
    .await;
}
