//! `GET|POST /postback` (API.md §2).

use serde_json::json;

use crate::helpers::*;

/// An app with offer `o1` (fixed 2.50 EUR), affiliate `a1` and one click on them.
async fn app_with_click() -> (TestApp, String) {
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let click_id = app.click_id("o1", "a1").await;
    (app, click_id)
}

/// An app with offer `pct` paying 12.5 % of the amount, affiliate `a1` and one click.
async fn app_with_percent_click() -> (TestApp, String) {
    let app = spawn_app().await;
    app.create_offer(
        "pct",
        json!({"payout": null, "payout_percent": "12.5", "revenue": null}),
    )
    .await;
    app.create_affiliate("a1").await;
    let click_id = app.click_id("pct", "a1").await;
    (app, click_id)
}

#[tokio::test]
async fn a_first_postback_credits_the_offers_payout_and_answers_credited() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let body = postback_ok(&app, &click_id, "txid=order-1").await;

    // Assert
    assert_eq!(body["status"], "credited", "{body}");
    assert!(
        body["conversion_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{body}"
    );
    assert_eq!(body["click_id"], click_id.as_str());
    assert_eq!(body["offer_id"], "o1");
    assert_eq!(body["aff_id"], "a1");
    assert_eq!(body["payout"], "2.5");
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 1, "{totals}");
    assert_eq!(totals["payout"], "2.5", "{totals}");
    assert_eq!(totals["revenue"], "4", "{totals}");
    assert_eq!(app.conversion_keys().len(), 1);
}

#[tokio::test]
async fn a_duplicate_postback_answers_200_duplicate_with_the_same_conversion_id_and_credits_nothing(
) {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let first = postback_ok(&app, &click_id, "txid=order-1").await;

    // Act
    let second = postback_ok(&app, &click_id, "txid=order-1").await;

    // Assert
    assert_eq!(second["status"], "duplicate", "{second}");
    assert_eq!(second["conversion_id"], first["conversion_id"]);
    assert_eq!(second["payout"], "2.5");
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 1, "{totals}");
    assert_eq!(totals["payout"], "2.5", "{totals}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_identical_postbacks_credit_exactly_once() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let query = format!("click_id={click_id}&token={OFFER_TOKEN}&txid=race");

    // Act
    let answers = app.postbacks_at_once(vec![query; 64]).await;

    // Assert
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let count = |status: &str| {
        answers
            .iter()
            .filter(|(_, b)| b["status"] == status)
            .count()
    };
    assert_eq!(count("credited"), 1, "{answers:?}");
    assert_eq!(count("duplicate"), 63, "{answers:?}");
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|(_, b)| b["conversion_id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "one conversion id: {ids:?}");
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 1, "{totals}");
    assert_eq!(totals["payout"], "2.5", "{totals}");
    assert_eq!(totals["revenue"], "4", "{totals}");
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"clickback_conversions_total{offer="o1"}"#),
        1.0
    );
    assert_eq!(app.conversion_keys().len(), 1);
}

#[tokio::test]
async fn two_txids_on_one_click_are_two_conversions() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let first = postback_ok(&app, &click_id, "txid=order-1").await;
    let second = postback_ok(&app, &click_id, "txid=order-2").await;

    // Assert
    assert_eq!(first["status"], "credited");
    assert_eq!(second["status"], "credited");
    assert_ne!(first["conversion_id"], second["conversion_id"]);
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 2, "{totals}");
    assert_eq!(totals["payout"], "5", "{totals}");
}

#[tokio::test]
async fn the_same_goal_twice_on_one_click_is_one_conversion() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let first = postback_ok(&app, &click_id, "goal=signup").await;
    let again = postback_ok(&app, &click_id, "goal=signup").await;
    let other_goal = postback_ok(&app, &click_id, "goal=deposit").await;

    // Assert
    assert_eq!(first["status"], "credited");
    assert_eq!(again["status"], "duplicate");
    assert_eq!(
        other_goal["status"], "credited",
        "another goal is another conversion"
    );
    assert_eq!(app.totals().await["conversions"], 2);
}

#[tokio::test]
async fn a_postback_without_a_goal_is_the_goal_default() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let without_goal = postback_ok(&app, &click_id, "").await;
    let explicit_default = postback_ok(&app, &click_id, "goal=default").await;

    // Assert
    assert_eq!(without_goal["status"], "credited");
    assert_eq!(explicit_default["status"], "duplicate");
    assert_eq!(
        explicit_default["conversion_id"],
        without_goal["conversion_id"]
    );
}

#[tokio::test]
async fn a_wrong_or_missing_token_answers_403_invalid_token_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    for query in [
        format!("click_id={click_id}&token=wrong"),
        format!("click_id={click_id}&token="),
        format!("click_id={click_id}"),
        format!("click_id={click_id}&token={OFFER_TOKEN}x"),
        format!("click_id={click_id}&token=OFFER-SECRET-TOKEN"),
    ] {
        // Act
        let response = app.postback(&query).await;

        // Assert
        assert_rejected(response, 403, "invalid_token").await;
    }
    assert!(app.conversion_keys().is_empty());
    assert_eq!(app.totals().await["conversions"], 0);
}

#[tokio::test]
async fn a_well_formed_click_id_that_was_never_issued_answers_404_unknown_click() {
    // Arrange
    let (app, _) = app_with_click().await;

    // Act
    let response = app
        .postback(&format!(
            "click_id=AAAAAAAAAAAAAAAAAAAAAA&token={OFFER_TOKEN}"
        ))
        .await;

    // Assert
    assert_rejected(response, 404, "unknown_click").await;
    assert!(app.conversion_keys().is_empty());
}

#[tokio::test]
async fn a_malformed_or_missing_click_id_answers_400_invalid_request() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let too_long = format!("{click_id}A");

    for click in ["", "short", "AAAAAAAAAAAAAAAAAAAA%2F%2F", too_long.as_str()] {
        // Act
        let response = app
            .postback(&format!("click_id={click}&token={OFFER_TOKEN}"))
            .await;

        // Assert
        assert_rejected(response, 400, "invalid_request").await;
    }
    let response = app.postback(&format!("token={OFFER_TOKEN}")).await;
    assert_rejected(response, 400, "invalid_request").await;
    assert!(app.conversion_keys().is_empty());
}

#[tokio::test]
async fn a_postback_just_inside_the_attribution_window_is_credited() {
    // Arrange
    let app = spawn_app().await;
    app.create_offer("short", json!({"attribution_window_secs": 60}))
        .await;
    app.create_affiliate("a1").await;
    let click_id = app.click_id("short", "a1").await;

    // Act
    app.clock.advance(59);
    let body = postback_ok(&app, &click_id, "txid=order-1").await;

    // Assert
    assert_eq!(body["status"], "credited", "{body}");
    assert_eq!(app.totals().await["conversions"], 1);
}

#[tokio::test]
async fn a_postback_after_the_attribution_window_answers_404_unknown_click() {
    // Arrange
    let app = spawn_app().await;
    app.create_offer("short", json!({"attribution_window_secs": 60}))
        .await;
    app.create_affiliate("a1").await;
    let click_id = app.click_id("short", "a1").await;

    // Act: the window closes on the app's clock; Redis still holds the click
    app.clock.advance(61);
    let response = app
        .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}"))
        .await;

    // Assert
    assert_rejected(response, 404, "unknown_click").await;
    assert!(app.conversion_keys().is_empty());
    assert_eq!(app.totals().await["conversions"], 0);
}

#[tokio::test]
async fn a_percent_offer_pays_its_percentage_of_the_amount_exactly() {
    // Arrange
    let (app, click_id) = app_with_percent_click().await;

    // Act
    let body = postback_ok(&app, &click_id, "amount=19.99").await;

    // Assert
    assert_eq!(body["status"], "credited", "{body}");
    assert_eq!(body["payout"], "2.49875", "12.5 % of 19.99");
    let totals = app.totals().await;
    assert_eq!(totals["payout"], "2.49875", "{totals}");
    assert_eq!(totals["revenue"], "19.99", "{totals}");
}

#[tokio::test]
async fn a_percent_payout_rounds_half_up_at_the_sixth_decimal() {
    // Arrange
    let (app, click_id) = app_with_percent_click().await;

    // Act: 12.5 % of 10.000004 = 1.2500005; 12.5 % of 0.000004 = 0.0000005
    let half = postback_ok(&app, &click_id, "txid=1&amount=10.000004").await;
    let tiny = postback_ok(&app, &click_id, "txid=2&amount=0.000004").await;
    let below_half = postback_ok(&app, &click_id, "txid=3&amount=0.000003").await;

    // Assert
    assert_eq!(half["payout"], "1.250001");
    assert_eq!(tiny["payout"], "0.000001");
    assert_eq!(below_half["payout"], "0", "0.000000375 rounds down");
    assert_eq!(app.totals().await["payout"], "1.250002");
}

#[tokio::test]
async fn a_percent_offer_without_an_amount_answers_400_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_percent_click().await;

    // Act
    let response = app
        .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}"))
        .await;

    // Assert
    let body = assert_rejected(response, 400, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("amount"),
        "{body}"
    );
    assert!(app.conversion_keys().is_empty());
}

#[tokio::test]
async fn a_form_encoded_post_credits() {
    // Arrange
    let (app, click_id) = app_with_percent_click().await;

    // Act
    let response = app
        .postback_post(
            "application/x-www-form-urlencoded",
            format!("click_id={click_id}&token={OFFER_TOKEN}&amount=19.99&txid=A%20B"),
        )
        .await;

    // Assert
    let body = ok_json(response).await;
    assert_eq!(body["status"], "credited", "{body}");
    assert_eq!(body["payout"], "2.49875");
    let again = postback_ok(&app, &click_id, "txid=A+B&amount=19.99").await;
    assert_eq!(again["status"], "duplicate", "form and query decode alike");
}

#[tokio::test]
async fn a_json_post_credits_with_the_amount_as_a_string_or_a_number() {
    // Arrange
    let (app, click_id) = app_with_percent_click().await;

    // Act
    let as_string = app
        .postback_post(
            "application/json",
            json!({"click_id": click_id, "token": OFFER_TOKEN, "txid": "1", "amount": "19.99"})
                .to_string(),
        )
        .await;
    let as_number = app
        .postback_post(
            "application/json; charset=utf-8",
            format!(
                r#"{{"click_id":"{click_id}","token":"{OFFER_TOKEN}","txid":2,"amount":19.99}}"#
            ),
        )
        .await;

    // Assert
    for response in [as_string, as_number] {
        let body = ok_json(response).await;
        assert_eq!(body["status"], "credited", "{body}");
        assert_eq!(body["payout"], "2.49875", "{body}");
    }
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 2, "{totals}");
    assert_eq!(totals["payout"], "4.9975", "{totals}");
}

#[tokio::test]
async fn a_json_post_with_an_unknown_field_credits_like_a_form_and_the_log_names_the_field() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let response = app
        .postback_post(
            "application/json",
            json!({"click_id": click_id, "token": OFFER_TOKEN, "txid": "t", "amuont": "10",
                   "meta": {"source": "shop"}})
            .to_string(),
        )
        .await;

    // Assert
    let body = ok_json(response).await;
    assert_eq!(body["status"], "credited", "{body}");
    let logged = eventually(std::time::Duration::from_secs(5), || async {
        let log = ok_json(app.admin_get("/api/v1/postbacks?offer_id=o1").await).await;
        log["postbacks"][0]["ignored_params"] == json!(["amuont", "meta"])
    })
    .await;
    assert!(logged.is_some(), "the log names amuont and meta");
}

#[tokio::test]
async fn a_json_post_with_a_known_field_that_is_not_a_string_or_number_answers_400() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let response = app
        .postback_post(
            "application/json",
            json!({"click_id": click_id, "token": OFFER_TOKEN, "order_id": ["a"]}).to_string(),
        )
        .await;

    // Assert
    let body = assert_rejected(response, 400, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("order_id"),
        "{body}"
    );
    assert!(app.conversion_keys().is_empty());
}

#[tokio::test]
async fn a_pending_conversion_approved_later_answers_updated_and_moves_the_stats() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let pending = postback_ok(&app, &click_id, "txid=t&status=pending").await;
    let before = app.totals().await;

    // Act
    let approved = postback_ok(&app, &click_id, "txid=t&status=approved").await;

    // Assert
    assert_eq!(
        pending["status"], "pending",
        "a pending conversion reads as paid: {pending}"
    );
    assert_eq!(pending["conversion_status"], "pending", "{pending}");
    assert_eq!(before["pending_conversions"], 1, "{before}");
    assert_eq!(before["pending_payout"], "2.5", "{before}");
    assert_eq!(before["conversions"], 0, "{before}");
    assert_eq!(before["payout"], "0", "{before}");
    assert_eq!(approved["status"], "updated", "{approved}");
    assert_eq!(approved["conversion_id"], pending["conversion_id"]);
    let after = app.totals().await;
    assert_eq!(after["pending_conversions"], 0, "{after}");
    assert_eq!(after["pending_payout"], "0", "{after}");
    assert_eq!(after["conversions"], 1, "{after}");
    assert_eq!(after["payout"], "2.5", "{after}");
    assert_eq!(after["revenue"], "4", "{after}");
}

#[tokio::test]
async fn an_approved_conversion_rejected_later_answers_updated_and_takes_the_payout_back() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    postback_ok(&app, &click_id, "txid=t").await;

    // Act
    let rejected = postback_ok(&app, &click_id, "txid=t&status=rejected").await;

    // Assert
    assert_eq!(rejected["status"], "updated", "{rejected}");
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 0, "{totals}");
    assert_eq!(totals["payout"], "0", "{totals}");
    assert_eq!(totals["revenue"], "0", "{totals}");
    assert_eq!(totals["rejected_conversions"], 1, "{totals}");
}

#[tokio::test]
async fn a_rejected_conversion_cannot_be_approved_again() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    postback_ok(&app, &click_id, "txid=t").await;
    postback_ok(&app, &click_id, "txid=t&status=rejected").await;
    let before = app.totals().await;

    // Act
    let again = postback_ok(&app, &click_id, "txid=t&status=approved").await;

    // Assert
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(app.totals().await, before);
}

#[tokio::test]
async fn a_pending_conversion_reported_pending_again_is_a_duplicate() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    postback_ok(&app, &click_id, "txid=t&status=pending").await;
    let before = app.totals().await;

    // Act
    let again = postback_ok(&app, &click_id, "txid=t&status=pending").await;

    // Assert
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(app.totals().await, before);
}

#[tokio::test]
async fn an_approved_conversion_cannot_go_back_to_pending() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    postback_ok(&app, &click_id, "txid=t").await;
    let before = app.totals().await;

    // Act
    let again = postback_ok(&app, &click_id, "txid=t&status=pending").await;

    // Assert
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(app.totals().await, before);
}

#[tokio::test]
async fn each_click_id_alias_credits_the_click() {
    for alias in ["cid", "subid", "transaction_id"] {
        // Arrange
        let (app, click_id) = app_with_click().await;

        // Act
        let response = app
            .postback(&format!("{alias}={click_id}&token={OFFER_TOKEN}"))
            .await;

        // Assert
        let body = ok_json(response).await;
        assert_eq!(body["status"], "credited", "{alias}: {body}");
        assert_eq!(body["click_id"], click_id.as_str(), "{alias}");
    }
}

#[tokio::test]
async fn each_amount_alias_sets_the_amount() {
    for alias in ["sum", "revenue"] {
        // Arrange
        let (app, click_id) = app_with_percent_click().await;

        // Act
        let body = postback_ok(&app, &click_id, &format!("{alias}=19.99")).await;

        // Assert
        assert_eq!(body["status"], "credited", "{alias}: {body}");
        assert_eq!(body["payout"], "2.49875", "{alias}");
    }
}

#[tokio::test]
async fn each_txid_alias_names_the_transaction() {
    for alias in ["action_id", "order_id"] {
        // Arrange
        let (app, click_id) = app_with_click().await;

        // Act
        let by_alias = postback_ok(&app, &click_id, &format!("{alias}=order-9")).await;
        let by_txid = postback_ok(&app, &click_id, "txid=order-9").await;
        let other = postback_ok(&app, &click_id, &format!("{alias}=order-10")).await;

        // Assert
        assert_eq!(by_alias["status"], "credited", "{alias}");
        assert_eq!(by_txid["status"], "duplicate", "{alias} is the txid");
        assert_eq!(other["status"], "credited", "{alias}: another transaction");
    }
}

#[tokio::test]
async fn the_event_alias_names_the_goal() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let by_event = postback_ok(&app, &click_id, "event=signup").await;
    let by_goal = postback_ok(&app, &click_id, "goal=signup").await;
    let default_goal = postback_ok(&app, &click_id, "").await;

    // Assert
    assert_eq!(by_event["status"], "credited");
    assert_eq!(by_goal["status"], "duplicate", "event is the goal");
    assert_eq!(default_goal["status"], "credited", "signup is not default");
}

#[tokio::test]
async fn a_parameter_given_twice_with_different_values_answers_400() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let other_click = app.click_id("o1", "a1").await;

    for query in [
        format!("click_id={click_id}&cid={other_click}&token={OFFER_TOKEN}"),
        format!("click_id={click_id}&click_id={other_click}&token={OFFER_TOKEN}"),
        format!("click_id={click_id}&token={OFFER_TOKEN}&txid=1&order_id=2"),
        format!("click_id={click_id}&token={OFFER_TOKEN}&amount=1&sum=2"),
        format!("click_id={click_id}&token={OFFER_TOKEN}&goal=a&event=b"),
    ] {
        // Act
        let response = app.postback(&query).await;

        // Assert
        assert_rejected(response, 400, "invalid_request").await;
    }
    assert!(app.conversion_keys().is_empty());
}

#[tokio::test]
async fn a_parameter_repeated_with_the_same_value_is_accepted() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let body = postback_ok(&app, &click_id, &format!("cid={click_id}")).await;

    // Assert
    assert_eq!(body["status"], "credited", "{body}");
}

#[tokio::test]
async fn a_currency_other_than_the_offers_answers_400_currency_mismatch() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let response = app
        .postback(&format!(
            "click_id={click_id}&token={OFFER_TOKEN}&amount=10&currency=USD"
        ))
        .await;

    // Assert
    assert_rejected(response, 400, "currency_mismatch").await;
    assert!(app.conversion_keys().is_empty());
}

#[tokio::test]
async fn the_offers_currency_in_lower_case_is_accepted() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let body = postback_ok(&app, &click_id, "amount=10&currency=eur").await;

    // Assert
    assert_eq!(body["status"], "credited", "{body}");
}

#[tokio::test]
async fn a_first_postback_with_status_rejected_answers_200_rejected_and_pays_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let body = postback_ok(&app, &click_id, "txid=t&status=rejected").await;
    let retry = postback_ok(&app, &click_id, "txid=t&status=approved").await;

    // Assert
    assert_eq!(body["status"], "rejected", "{body}");
    assert_eq!(body["reason"], "rejected_by_advertiser", "{body}");
    assert_eq!(body["click_id"], click_id.as_str());
    assert_eq!(
        retry["status"], "duplicate",
        "a retry never turns it into a credit"
    );
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 0, "{totals}");
    assert_eq!(totals["payout"], "0", "{totals}");
    assert_eq!(totals["rejected_conversions"], 1, "{totals}");
}

#[tokio::test]
async fn a_post_can_carry_the_token_in_the_query_and_the_conversion_in_the_body() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    // Act
    let response = app
        .client
        .post(format!("{}/postback?token={OFFER_TOKEN}", app.address))
        .header("content-type", "application/json")
        .body(json!({"click_id": click_id, "txid": "t"}).to_string())
        .send()
        .await
        .expect("request sent");

    // Assert
    let body = ok_json(response).await;
    assert_eq!(body["status"], "credited", "{body}");
}

#[tokio::test]
async fn a_click_stored_before_hour_buckets_is_still_credited() {
    // Arrange: a click as earlier versions stored it, one key per click
    // under a 22-character id, with the first record format.
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let legacy_id = "Qy1skY0rTpyqDSD5or0iyg";
    let created_at = app.clock.now() - 60;
    let record = format!("1\0{created_at}\0o1\0a1\0s1\0\0\0\0\0fb\0abcdefghijk\x001");
    let _: () = redis::cmd("SET")
        .arg(
            app.keys()
                .click(&clickback::domain::ClickId::parse(legacy_id).expect("legacy id"))
                .key(),
        )
        .arg(record)
        .arg("EX")
        .arg(3600)
        .query(&mut app.redis())
        .expect("SET");

    // Act
    let body = postback_ok(&app, legacy_id, "txid=order-1").await;

    // Assert
    assert_eq!(body["status"], "credited", "{body}");
    assert_eq!(body["aff_id"], "a1");
    assert_eq!(app.totals().await["conversions"], 1);
}

#[tokio::test]
async fn a_second_event_named_by_an_event_parameter_is_a_new_conversion_not_a_duplicate() {
    // Arrange: platforms name the event `goal_id`, `event_id`, `adv_event_id`,
    // `et`, `type` or `event_name` (docs/integration.md).
    let (app, click_id) = app_with_click().await;
    let registration = postback_ok(&app, &click_id, "goal_id=registration").await;

    // Act
    let answers = [
        postback_ok(&app, &click_id, "goal_id=deposit").await,
        postback_ok(&app, &click_id, "event_id=7").await,
        postback_ok(&app, &click_id, "adv_event_id=8").await,
        postback_ok(&app, &click_id, "et=upsell").await,
        postback_ok(&app, &click_id, "type=Purchase").await,
        postback_ok(&app, &click_id, "event_name=af_purchase").await,
    ];

    // Assert
    assert_eq!(registration["status"], "credited", "{registration}");
    for answer in &answers {
        assert_eq!(answer["status"], "credited", "{answer}");
    }
    assert_eq!(app.totals().await["conversions"], 7);
}
