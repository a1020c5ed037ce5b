//! What must hold whatever the input: a credit is written whole or not at
//! all, reports never wrap or mix currencies, a postback that failed can be
//! retried, and refused postbacks never push accepted ones out of the log.

use clickback::domain::signature::{canonical, sign};
use clickback::store::PostbackLogKind;
use serde_json::{json, Value};

use crate::helpers::*;

/// The signing secret of the signed offer below.
const SECRET: &str = "0123456789abcdef-secret";

#[tokio::test]
async fn a_credit_that_would_overflow_the_days_totals_is_refused_whole_and_stays_refused() {
    // Arrange: a fixed payout of nearly a trillion units; nine of them fit
    // in a day's counter (2^63 - 1 micro-units), a tenth would not.
    let app = spawn_app().await;
    app.create_offer("o1", json!({"payout": "999999999999.999999"}))
        .await;
    app.create_affiliate("a1").await;
    let click_id = app.click_id("o1", "a1").await;
    for i in 0..9 {
        let body = postback_ok(&app, &click_id, &format!("txid=t{i}")).await;
        assert_eq!(body["status"], "credited", "{body}");
    }

    // Act: the tenth would take the day's payout past the bound
    let fifth = app
        .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}&txid=t9"))
        .await;
    let body = assert_rejected(fifth, 400, "amount_too_large").await;
    let retry = app
        .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}&txid=t9"))
        .await;

    // Assert: nothing of it was written, so the retry is refused the same
    // way instead of answering duplicate
    assert!(body["detail"]
        .as_str()
        .is_some_and(|d| d.contains("nothing was recorded")));
    assert_rejected(retry, 400, "amount_too_large").await;
    assert_eq!(app.conversion_keys().len(), 9);
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 9, "{totals}");
    assert_eq!(totals["payout"], "8999999999999.999991", "{totals}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"clickback_conversions_total{offer="o1"} 9"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_amount_above_the_documented_bound_is_refused_before_anything_is_written() {
    // Arrange
    let app = spawn_app().await;
    app.create_offer("o1", json!({"payout": null, "payout_percent": "50"}))
        .await;
    app.create_affiliate("a1").await;
    let click_id = app.click_id("o1", "a1").await;

    // Act
    let response = app
        .postback(&format!(
            "click_id={click_id}&token={OFFER_TOKEN}&amount=999999999999.999999"
        ))
        .await;

    // Assert
    let body = assert_rejected(response, 400, "invalid_request").await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("amount")),
        "{body}"
    );
    assert!(app.conversion_keys().is_empty());
}

#[tokio::test]
async fn report_sums_past_the_64_bit_range_are_exact_never_negative() {
    // Arrange: two shards' revenue counters near the 64-bit limit (as years
    // of a big offer could hold), written where the stats read them.
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let mut redis = app.redis();
    for shard in ['A', 'B'] {
        let key = app.keys().stats(shard, app.today());
        let _: () = redis::cmd("HSET")
            .arg(&key)
            .arg("o1|a1|rv")
            .arg(i64::MAX - 1)
            .query(&mut redis)
            .expect("HSET");
    }

    // Act
    let totals = app.totals().await;

    // Assert
    assert_eq!(totals["revenue"], "18446744073709.551612", "{totals}");
}

#[tokio::test]
async fn money_of_two_currencies_is_never_added_into_one_row() {
    // Arrange
    let app = spawn_app().await;
    app.create_offer("eur", json!({"currency": "EUR", "payout": "2.50"}))
        .await;
    app.create_offer("usd", json!({"currency": "USD", "payout": "2.50"}))
        .await;
    app.create_affiliate("a1").await;
    for offer in ["eur", "usd"] {
        let click_id = app.click_id(offer, "a1").await;
        postback_ok(&app, &click_id, "txid=t1").await;
    }

    // Act
    let totals = app.stats("").await;
    let by_offer = app.stats("group_by=offer").await;

    // Assert
    let shown = |rows: &[Value]| -> Vec<(Value, Value)> {
        rows.iter()
            .map(|r| (r["currency"].clone(), r["payout"].clone()))
            .collect()
    };
    assert_eq!(
        shown(&totals),
        vec![(json!("EUR"), json!("2.5")), (json!("USD"), json!("2.5"))]
    );
    assert_eq!(shown(&by_offer), shown(&totals));
}

#[tokio::test]
async fn an_offers_currency_cannot_change_under_its_counted_money() {
    // Arrange
    let app = spawn_app().await;
    app.create_offer("o1", json!({"currency": "EUR"})).await;
    let mut body = offer_body();
    body["currency"] = json!("USD");

    // Act
    let response = app.put_offer("o1", &body).await;

    // Assert
    assert_rejected(response, 409, "currency_immutable").await;
}

/// A query signed with [`SECRET`] over `pairs`.
fn signed(pairs: &[(&str, &str)]) -> String {
    let sig = sign(SECRET, &canonical(pairs.iter().copied()));
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}&sig={sig}", query.join("&"))
}

#[tokio::test]
async fn a_signed_postback_that_failed_with_a_503_can_be_retried_as_it_was() {
    // Arrange: a signed offer with a cap whose counters Redis cannot move
    // (the key holds a string), so the cap step fails after the signature
    // was claimed.
    let app = spawn_app().await;
    app.create_offer(
        "o1",
        json!({
            "postback_signing_secret": SECRET,
            "caps": [{"scope": "offer", "period": "day", "metric": "conversions", "limit": "10"}],
        }),
    )
    .await;
    app.create_affiliate("a1").await;
    let click_id = app.click_id("o1", "a1").await;
    let cap_key = app
        .keys()
        .caps("o1", &format!("d{}", app.today().compact()));
    let mut redis = app.redis();
    let _: () = redis::cmd("SET")
        .arg(&cap_key)
        .arg("not a hash")
        .query(&mut redis)
        .expect("SET");
    let ts = clickback::clock::Clock::now(app.clock.as_ref()).to_string();
    let query = signed(&[
        ("click_id", &click_id),
        ("token", OFFER_TOKEN),
        ("txid", "order-1"),
        ("ts", &ts),
    ]);
    let failed = app.postback(&query).await;
    assert_eq!(
        failed.status(),
        503,
        "{}",
        failed.text().await.unwrap_or_default()
    );

    // Act: the store recovers; the advertiser retries the very same request
    let _: () = redis::cmd("DEL")
        .arg(&cap_key)
        .query(&mut redis)
        .expect("DEL");
    let retried = ok_json(app.postback(&query).await).await;
    let replayed = app.postback(&query).await;

    // Assert
    assert_eq!(retried["status"], "credited", "{retried}");
    assert_rejected(replayed, 403, "replayed").await;
}

#[tokio::test]
async fn wrong_token_floods_never_push_accepted_postbacks_out_of_the_log() {
    // Arrange
    let app = spawn_app_tweaked(|s| s.postback_log_size = 5).await;
    app.with_offer_and_affiliate().await;
    let click_id = app.click_id("o1", "a1").await;
    postback_ok(&app, &click_id, "txid=real-order").await;

    // Act: anyone who knows the click id sends refused postbacks
    for i in 0..30 {
        let response = app
            .postback(&format!(
                "click_id={click_id}&token=wrong-token-{i}&txid=x{i}"
            ))
            .await;
        assert_eq!(response.status(), 403);
    }
    let read = |kind: &'static str| {
        let app = &app;
        async move {
            let response = app
                .admin_get(&format!("/api/v1/postbacks?offer_id=o1&kind={kind}"))
                .await;
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.expect("json");
            body["postbacks"].as_array().cloned().unwrap_or_default()
        }
    };
    let filed = eventually(std::time::Duration::from_secs(10), || async {
        read("refused").await.len() == 5
    })
    .await;
    assert!(filed.is_some(), "the refusals never reached the log");

    // Assert
    let accepted = read("accepted").await;
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0]["txid"], "real-order");
    let mut redis = app.redis();
    for kind in [PostbackLogKind::Accepted, PostbackLogKind::Refused] {
        let key = app.keys().postback_log(Some("o1"), kind);
        let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut redis).expect("TTL");
        assert!(ttl > 0, "{key} never expires (TTL {ttl})");
    }
}
