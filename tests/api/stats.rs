//! `GET /api/v1/stats` (API.md §3).

use serde_json::{json, Value};

use crate::helpers::*;

/// The counters every row carries, whatever the grouping.
const COUNTERS: [&str; 8] = [
    "clicks",
    "conversions",
    "payout",
    "revenue",
    "pending_conversions",
    "pending_payout",
    "rejected_conversions",
    "declined_clicks",
];

/// `n` tracked clicks of `offer` by `aff`; returns their click ids.
async fn clicks(app: &TestApp, offer: &str, aff: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(app.click_id(offer, aff).await);
    }
    ids
}

/// An approved postback for `click_id`, asserted credited.
async fn convert(app: &TestApp, click_id: &str, txid: &str) {
    let body = postback_ok(app, click_id, &format!("txid={txid}")).await;
    assert_eq!(body["status"], "credited", "{body}");
}

/// The grouping keys present in a row, in API order.
fn keys_of(row: &Value) -> Vec<&'static str> {
    ["offer_id", "aff_id", "day"]
        .into_iter()
        .filter(|k| row.get(*k).is_some())
        .collect()
}

/// A small network: o1 and o2, affiliates a1 and a2.
/// Clicks: o1/a1 ×3, o1/a2 ×2, o2/a1 ×1. Conversions: two on o1/a1.
async fn small_network(app: &TestApp) {
    app.with_offer_and_affiliate().await;
    app.create_offer("o2", json!({"payout": "1", "revenue": "1.5"}))
        .await;
    app.create_affiliate("a2").await;
    let o1a1 = clicks(app, "o1", "a1", 3).await;
    clicks(app, "o1", "a2", 2).await;
    clicks(app, "o2", "a1", 1).await;
    convert(app, &o1a1[0], "t1").await;
    convert(app, &o1a1[1], "t2").await;
}

/// `from=<yesterday>&to=<tomorrow>` around the app's day.
fn around_today(app: &TestApp) -> String {
    let today = app.today();
    format!("from={}&to={}", today.minus(1), today.succ())
}

#[tokio::test]
async fn an_ungrouped_query_without_data_answers_one_zero_row() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.admin_get("/api/v1/stats").await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("stats json");
    assert_eq!(
        body,
        json!({"rows": [{
            "clicks": 0, "conversions": 0, "payout": "0", "revenue": "0",
            "pending_conversions": 0, "pending_payout": "0",
            "rejected_conversions": 0, "declined_clicks": 0,
            "unique_clicks": 0, "capped_clicks": 0
        }]})
    );
}

#[tokio::test]
async fn a_grouped_query_without_data_answers_no_rows() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let rows = app.stats("group_by=offer,affiliate,day").await;

    // Assert
    assert!(rows.is_empty(), "{rows:?}");
}

#[tokio::test]
async fn clicks_are_counted_exactly() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    clicks(&app, "o1", "a1", 7).await;
    let rows = app.stats("").await;

    // Assert
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["clicks"], 7);
    assert_eq!(rows[0]["conversions"], 0);
    assert_eq!(keys_of(&rows[0]), Vec::<&str>::new(), "no grouping keys");
}

#[tokio::test]
async fn conversions_payout_and_revenue_add_up_as_exact_decimals() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let ids = clicks(&app, "o1", "a1", 3).await;

    // Act: two credits of 2.50, and a duplicate that must not count
    convert(&app, &ids[0], "t1").await;
    convert(&app, &ids[1], "t2").await;
    let duplicate = app
        .postback(&format!("click_id={}&token={OFFER_TOKEN}&txid=t1", ids[0]))
        .await;
    let rows = app.stats("").await;

    // Assert
    assert_eq!(duplicate.status(), 200);
    let row = &rows[0];
    assert_eq!(row["clicks"], 3);
    assert_eq!(row["conversions"], 2);
    assert_eq!(row["payout"], "5");
    assert_eq!(row["revenue"], "8");
    assert_eq!(row["pending_conversions"], 0);
    assert_eq!(row["rejected_conversions"], 0);
}

#[tokio::test]
async fn rows_group_by_offer_with_only_the_offer_key() {
    // Arrange
    let app = spawn_app().await;
    small_network(&app).await;

    // Act
    let rows = app.stats("group_by=offer").await;

    // Assert
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(keys_of(&rows[0]), ["offer_id"]);
    assert_eq!(keys_of(&rows[1]), ["offer_id"]);
    assert_eq!(
        (
            &rows[0]["offer_id"],
            &rows[0]["clicks"],
            &rows[0]["conversions"]
        ),
        (&json!("o1"), &json!(5), &json!(2))
    );
    assert_eq!(rows[0]["payout"], "5");
    assert_eq!(
        (&rows[1]["offer_id"], &rows[1]["clicks"], &rows[1]["payout"]),
        (&json!("o2"), &json!(1), &json!("0"))
    );
    for row in &rows {
        for counter in COUNTERS {
            assert!(row.get(counter).is_some(), "{counter} missing in {row}");
        }
    }
}

#[tokio::test]
async fn rows_group_by_affiliate_with_only_the_affiliate_key() {
    // Arrange
    let app = spawn_app().await;
    small_network(&app).await;

    // Act
    let rows = app.stats("group_by=affiliate").await;

    // Assert
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(keys_of(&rows[0]), ["aff_id"]);
    assert_eq!(
        (
            &rows[0]["aff_id"],
            &rows[0]["clicks"],
            &rows[0]["conversions"]
        ),
        (&json!("a1"), &json!(4), &json!(2))
    );
    assert_eq!(
        (
            &rows[1]["aff_id"],
            &rows[1]["clicks"],
            &rows[1]["conversions"]
        ),
        (&json!("a2"), &json!(2), &json!(0))
    );
}

#[tokio::test]
async fn rows_group_by_day_with_only_the_day_key() {
    // Arrange
    let app = spawn_app().await;
    small_network(&app).await;

    // Act
    let rows = app
        .stats(&format!("group_by=day&{}", around_today(&app)))
        .await;

    // Assert
    assert_eq!(rows.len(), 1, "only today has activity: {rows:?}");
    assert_eq!(rows[0]["day"], app.today().to_string());
    assert_eq!(rows[0]["clicks"], 6);
    for row in &rows {
        assert_eq!(keys_of(row), ["day"]);
    }
    let total: i64 = rows.iter().map(|r| r["clicks"].as_i64().unwrap()).sum();
    assert_eq!(total, 6);
}

#[tokio::test]
async fn rows_group_by_every_combination_of_offer_affiliate_and_day() {
    // Arrange
    let app = spawn_app().await;
    small_network(&app).await;
    let day = app.today().to_string();
    let range = format!("from={day}&to={day}");

    // Act
    let by_offer_aff = app
        .stats(&format!("group_by=offer,affiliate&{range}"))
        .await;
    let all_three = app
        .stats(&format!("group_by=day,offer,affiliate&{range}"))
        .await;
    let offer_day = app.stats(&format!("group_by=offer,day&{range}")).await;

    // Assert
    let summary: Vec<(String, String, i64, i64)> = by_offer_aff
        .iter()
        .map(|r| {
            assert_eq!(keys_of(r), ["offer_id", "aff_id"]);
            (
                r["offer_id"].as_str().unwrap().to_owned(),
                r["aff_id"].as_str().unwrap().to_owned(),
                r["clicks"].as_i64().unwrap(),
                r["conversions"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("o1".into(), "a1".into(), 3, 2),
            ("o1".into(), "a2".into(), 2, 0),
            ("o2".into(), "a1".into(), 1, 0),
        ]
    );
    assert_eq!(all_three.len(), 3);
    for row in &all_three {
        assert_eq!(keys_of(row), ["offer_id", "aff_id", "day"]);
        assert_eq!(row["day"], day.as_str());
    }
    assert_eq!(offer_day.len(), 2);
    for row in &offer_day {
        assert_eq!(keys_of(row), ["offer_id", "day"]);
    }
}

#[tokio::test]
async fn filters_by_offer_and_affiliate_narrow_the_counts() {
    // Arrange
    let app = spawn_app().await;
    small_network(&app).await;

    // Act
    let o1 = app.stats("offer_id=o1").await;
    let a2 = app.stats("aff_id=a2").await;
    let o2_a1 = app.stats("offer_id=o2&aff_id=a1").await;
    let o2_a2 = app.stats("offer_id=o2&aff_id=a2").await;
    let o1_by_aff = app.stats("offer_id=o1&group_by=affiliate").await;
    let unknown = app.stats("offer_id=nope&group_by=offer").await;

    // Assert
    assert_eq!(
        (&o1[0]["clicks"], &o1[0]["payout"]),
        (&json!(5), &json!("5"))
    );
    assert_eq!(
        keys_of(&o1[0]),
        Vec::<&str>::new(),
        "a filter is not a grouping"
    );
    assert_eq!(a2[0]["clicks"], 2);
    assert_eq!(a2[0]["conversions"], 0);
    assert_eq!(o2_a1[0]["clicks"], 1);
    assert_eq!(o2_a2.len(), 1);
    assert_eq!(o2_a2[0]["clicks"], 0, "o2 had no clicks from a2");
    let affs: Vec<(&str, i64)> = o1_by_aff
        .iter()
        .map(|r| (r["aff_id"].as_str().unwrap(), r["clicks"].as_i64().unwrap()))
        .collect();
    assert_eq!(affs, [("a1", 3), ("a2", 2)]);
    assert!(unknown.is_empty(), "{unknown:?}");
}

#[tokio::test]
async fn the_date_range_selects_which_days_count() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    clicks(&app, "o1", "a1", 4).await;
    let today = app.today();

    // Act
    let past = app.stats("from=2020-01-01&to=2020-12-31").await;
    let around = app.stats(&around_today(&app)).await;
    let until_yesterday = app
        .stats(&format!("from={}&to={}", today.minus(30), today.minus(1)))
        .await;
    let only_from = app.stats(&format!("from={}", today.minus(3))).await;

    // Assert
    assert_eq!(past.len(), 1);
    assert_eq!(past[0]["clicks"], 0, "nothing happened in 2020");
    assert_eq!(around[0]["clicks"], 4);
    assert_eq!(until_yesterday[0]["clicks"], 0);
    assert_eq!(only_from[0]["clicks"], 4, "to defaults to today");
}

#[tokio::test]
async fn bad_queries_are_refused_with_400() {
    // Arrange
    let app = spawn_app().await;
    let today = app.today();
    let bad = [
        "group_by=country".to_owned(),
        "group_by=offer,country".to_owned(),
        "from=2026-02-30".to_owned(),
        "from=2026-13-01&to=2026-12-01".to_owned(),
        "from=yesterday".to_owned(),
        "to=22-11-2026".to_owned(),
        "from=2026-11-22T00:00:00Z".to_owned(),
        format!("from={}&to={}", today, today.minus(1)),
        "from=2024-01-01&to=2025-01-01".to_owned(),
        "from=2020-01-01&to=2026-01-01".to_owned(),
        "offer_id=a%20b".to_owned(),
        format!("aff_id={}", "x".repeat(65)),
    ];

    for query in &bad {
        // Act
        let response = app.admin_get(&format!("/api/v1/stats?{query}")).await;

        // Assert
        assert_eq!(response.status(), 400, "{query}");
        assert_rejected(response, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn a_range_of_exactly_366_days_is_accepted() {
    // Arrange
    let app = spawn_app().await;

    // Act: 2025 has 365 days, plus 2026-01-01
    let response = app
        .admin_get("/api/v1/stats?from=2025-01-01&to=2026-01-01&group_by=day")
        .await;

    // Assert
    let status = response.status();
    assert_eq!(status, 200, "{}", response.text().await.unwrap_or_default());
}
