//! Postback dialects (API.md §9): postbacks shaped as advertisers' platforms
//! document them, credited as someone moving from that platform expects.
//! Each test cites the page its URL shape comes from.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// An app with offer `o1` paying 10 % of the amount (EUR, revenue = amount),
/// with `mapping` as its `postback_mapping` (none for `null`), affiliate
/// `a1` and one click.
async fn percent_offer_with(mapping: Value) -> (TestApp, String) {
    let app = spawn_app().await;
    let mut offer = json!({"payout": null, "payout_percent": "10", "revenue": null});
    if !mapping.is_null() {
        offer["postback_mapping"] = mapping;
    }
    app.create_offer("o1", offer).await;
    app.create_affiliate("a1").await;
    let click_id = app.click_id("o1", "a1").await;
    (app, click_id)
}

/// `GET <path_and_query>`, answered 200 with JSON.
async fn get_ok(app: &TestApp, path_and_query: &str) -> Value {
    ok_json(app.get(path_and_query).await).await
}

/// Waits until offer `o1`'s postback log holds `n` entries (it is written in
/// the background) and answers them, newest first.
async fn log_of_o1(app: &TestApp, n: usize) -> Vec<Value> {
    let read = || async {
        let body = ok_json(app.admin_get("/api/v1/postbacks?offer_id=o1").await).await;
        body["postbacks"].as_array().cloned().unwrap_or_default()
    };
    let filled = eventually(Duration::from_secs(5), || async { read().await.len() >= n }).await;
    assert!(filled.is_some(), "the postback log never held {n} entries");
    read().await
}

// TUNE / HasOffers

#[tokio::test]
async fn a_hasoffers_lsr_and_goal_postback_credit_two_events_on_one_click() {
    // Arrange: https://support.tune.com/hc/en-us/articles/4413247665431-Receiving-Conversions-via-Postback-URL
    // (`/aff_lsr?offer_id=26&transaction_id=…`), goals per
    // https://support.tune.com/hc/en-us/articles/1500005263402-Offer-Goals
    // (`/aff_goal?a=lsr&goal_id=…`), the advertiser security token as `security_token`.
    let (app, click_id) = percent_offer_with(Value::Null).await;

    // Act
    let sale = get_ok(
        &app,
        &format!("/aff_lsr?offer_id=26&transaction_id={click_id}&amount=49.90&security_token={OFFER_TOKEN}"),
    )
    .await;
    let goal = get_ok(
        &app,
        &format!("/aff_goal?a=lsr&goal_id=5&transaction_id={click_id}&amount=10&security_token={OFFER_TOKEN}"),
    )
    .await;

    // Assert
    assert_eq!(sale["status"], "credited", "{sale}");
    assert_eq!(sale["payout"], "4.99", "{sale}");
    assert_eq!(goal["status"], "credited", "{goal}");
    assert_eq!(goal["payout"], "1", "{goal}");
    assert_ne!(sale["conversion_id"], goal["conversion_id"]);
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 2, "{totals}");
    assert_eq!(totals["payout"], "5.99", "{totals}");
}

#[tokio::test]
async fn a_duplicate_carrying_an_unread_order_like_parameter_is_logged_with_a_warning_and_counted()
{
    // Arrange: TUNE's advertiser sub ID `adv_sub` is often the order id, but
    // not always, so it is not a global name
    // (https://support.tune.com/hc/en-us/articles/1500005236742-Customizing-a-Conversion-URL).
    let (app, click_id) = percent_offer_with(Value::Null).await;
    let url = |order: &str| {
        format!("/aff_lsr?offer_id=26&transaction_id={click_id}&amount=20&adv_sub={order}&security_token={OFFER_TOKEN}")
    };
    get_ok(&app, &url("ORDER-1")).await;

    // Act: a second order on the same click, which clickback cannot tell apart.
    let second = get_ok(&app, &url("ORDER-2")).await;

    // Assert: the advertiser hears `duplicate` as before, but the operator sees why.
    assert_eq!(second["status"], "duplicate", "{second}");
    let log = log_of_o1(&app, 2).await;
    let newest = &log[0];
    assert_eq!(newest["outcome"], "duplicate", "{newest}");
    assert_eq!(newest["warning"], "ignored_event_param", "{newest}");
    assert_eq!(
        newest["ignored_params"],
        json!(["offer_id", "adv_sub"]),
        "{newest}"
    );
    assert!(
        newest["detail"]
            .as_str()
            .unwrap_or("")
            .contains("postback_mapping"),
        "{newest}"
    );
    assert!(
        !newest.to_string().contains("ORDER-2"),
        "values of ignored parameters stay out of the log: {newest}"
    );
    assert_eq!(log[1]["ignored_params"], json!(["offer_id", "adv_sub"]));
    assert!(
        log[1].get("warning").is_none(),
        "a credit is no warning: {}",
        log[1]
    );
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"clickback_postback_warnings_total{reason="ignored_event_param"}"#
        ),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn mapping_the_hasoffers_advertiser_sub_to_txid_credits_each_order() {
    // Arrange: same URL shape as above, with `adv_sub` → txid for this offer.
    let (app, click_id) = percent_offer_with(json!({"params": {"adv_sub": "txid"}})).await;
    let url = |order: &str| {
        format!("/aff_lsr?offer_id=26&transaction_id={click_id}&amount=20&adv_sub={order}&security_token={OFFER_TOKEN}")
    };

    // Act
    let first = get_ok(&app, &url("ORDER-1")).await;
    let second = get_ok(&app, &url("ORDER-2")).await;
    let retry = get_ok(&app, &url("ORDER-2")).await;

    // Assert
    assert_eq!(first["status"], "credited", "{first}");
    assert_eq!(second["status"], "credited", "{second}");
    assert_eq!(retry["status"], "duplicate", "{retry}");
    assert_eq!(app.totals().await["conversions"], 2);
    let log = log_of_o1(&app, 3).await;
    assert_eq!(log[0]["txid"], "ORDER-2", "{}", log[0]);
    assert_eq!(log[0]["ignored_params"], json!(["offer_id"]), "{}", log[0]);
}

// Everflow

#[tokio::test]
async fn an_everflow_postback_with_a_decimal_comma_and_an_event_credits_two_conversions() {
    // Arrange: https://helpdesk.everflow.io/customer/accessing-editing-s2s-postback-urls
    // (`nid`, `transaction_id`, `amount` — "&amount=12,34 will be treated as
    // $12.34" —, `adv_event_id` for events, `verification_token`).
    let (app, click_id) = percent_offer_with(json!({"amount": {"decimal_comma": true}})).await;

    // Act
    let base = get_ok(
        &app,
        &format!("/postback?nid=123&transaction_id={click_id}&amount=12,34&verification_token={OFFER_TOKEN}"),
    )
    .await;
    let event = get_ok(
        &app,
        &format!("/postback?nid=123&transaction_id={click_id}&adv_event_id=3&amount=100&verification_token={OFFER_TOKEN}"),
    )
    .await;

    // Assert
    assert_eq!(base["status"], "credited", "{base}");
    assert_eq!(base["payout"], "1.234", "{base}");
    assert_eq!(event["status"], "credited", "{event}");
    assert_eq!(event["payout"], "10", "{event}");
    let log = log_of_o1(&app, 2).await;
    assert_eq!(log[0]["goal"], "3", "{}", log[0]);
    assert_eq!(log[0]["ignored_params"], json!(["nid"]), "{}", log[0]);
    assert_eq!(log[1]["amount"], "12.34", "{}", log[1]);
}

#[tokio::test]
async fn without_a_mapping_a_decimal_comma_amount_is_refused_not_misread() {
    // Arrange: `12,34` means 1234 to some and 12.34 to others.
    let (app, click_id) = percent_offer_with(Value::Null).await;

    // Act
    let response = app
        .get(&format!(
            "/postback?nid=123&transaction_id={click_id}&amount=12,34&verification_token={OFFER_TOKEN}"
        ))
        .await;

    // Assert
    let body = assert_rejected(response, 400, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap_or("").starts_with("amount"),
        "{body}"
    );
    assert!(app.conversion_keys().is_empty());
}

// Keitaro

#[tokio::test]
async fn keitaro_inline_statuses_move_a_conversion_and_a_rebill_with_a_new_tid_is_a_new_one() {
    // Arrange: https://docs.keitaro.io/en/conversions/postback.html (`subid`,
    // `status`, `payout`, `tid` for rebills, `sale_status` / `lead_status` /
    // `rejected_status` as comma-separated lists, `from` of the network).
    let (app, click_id) = percent_offer_with(Value::Null).await;
    let url = |status: &str, tid: &str| {
        format!(
            "/postback?subid={click_id}&payout=21.0&status={status}&tid={tid}&from=adcombo.com\
             &lead_status=hold&sale_status=Confirmed&rejected_status=reject,trash,cancelled&token={OFFER_TOKEN}"
        )
    };

    // Act
    let lead = get_ok(&app, &url("hold", "52949935")).await;
    let sale = get_ok(&app, &url("confirmed", "52949935")).await;
    let rebill = get_ok(&app, &url("confirmed", "52949936")).await;
    let trashed = get_ok(&app, &url("TRASH", "52949936")).await;

    // Assert
    assert_eq!(lead["status"], "pending", "{lead}");
    assert_eq!(sale["status"], "updated", "{sale}");
    assert_eq!(sale["conversion_status"], "approved", "{sale}");
    assert_eq!(rebill["status"], "credited", "{rebill}");
    assert_ne!(rebill["conversion_id"], sale["conversion_id"]);
    assert_eq!(trashed["status"], "updated", "{trashed}");
    assert_eq!(trashed["conversion_status"], "rejected", "{trashed}");
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 1, "{totals}");
    assert_eq!(totals["payout"], "2.1", "{totals}");
    let log = log_of_o1(&app, 4).await;
    assert_eq!(log[0]["ignored_params"], json!(["from"]), "{}", log[0]);
}

// Voluum

#[tokio::test]
async fn voluum_event_types_on_one_click_are_two_conversions() {
    // Arrange: https://doc.voluum.com/en/tracking_conversions_postback.html
    // (`cid`, `payout`, `txid`, `currency`, `et` for the custom conversion event).
    let (app, click_id) = percent_offer_with(Value::Null).await;

    // Act
    let signup = get_ok(
        &app,
        &format!("/postback?cid={click_id}&payout=0&et=signup&token={OFFER_TOKEN}"),
    )
    .await;
    let deposit = get_ok(
        &app,
        &format!("/postback?cid={click_id}&payout=30&currency=eur&txid=T-1&et=deposit&token={OFFER_TOKEN}"),
    )
    .await;
    let retry = get_ok(
        &app,
        &format!("/postback?cid={click_id}&payout=30&currency=eur&txid=T-1&et=deposit&token={OFFER_TOKEN}"),
    )
    .await;

    // Assert
    assert_eq!(signup["status"], "credited", "{signup}");
    assert_eq!(deposit["status"], "credited", "{deposit}");
    assert_eq!(deposit["payout"], "3", "{deposit}");
    assert_eq!(retry["status"], "duplicate", "{retry}");
    assert_eq!(app.totals().await["conversions"], 2);
}

// Binom

#[tokio::test]
async fn a_binom_click_php_postback_moves_from_hold_to_approved_and_a_chargeback_reverses_it() {
    // Arrange: https://docs.binom.org/postback-url.php (`click.php?cnv_id=…
    // &payout=…&cnv_status=…`, `cnv_currency`).
    let (app, click_id) = percent_offer_with(Value::Null).await;
    let url = |status: &str| {
        format!("/click.php?cnv_id={click_id}&payout=50&cnv_status={status}&cnv_currency=EUR&token={OFFER_TOKEN}")
    };

    // Act
    let held = get_ok(&app, &url("Hold")).await;
    let approved = get_ok(&app, &url("approve")).await;
    let before = app.totals().await;
    let charged_back = get_ok(&app, &url("chargeback")).await;

    // Assert
    assert_eq!(held["status"], "pending", "{held}");
    assert_eq!(approved["status"], "updated", "{approved}");
    assert_eq!(before["payout"], "5", "{before}");
    assert_eq!(charged_back["status"], "updated", "{charged_back}");
    assert_eq!(
        charged_back["previous_status"], "approved",
        "{charged_back}"
    );
    assert_eq!(
        charged_back["conversion_status"], "rejected",
        "{charged_back}"
    );
    let after = app.totals().await;
    assert_eq!(after["conversions"], 0, "{after}");
    assert_eq!(after["payout"], "0", "{after}");
}

#[tokio::test]
async fn a_status_word_nobody_documents_is_refused_with_a_400_naming_it() {
    // Arrange: Binom's `cnv_status` may carry any word
    // (https://docs.binom.org/postback-url.php); one that means nothing here
    // must not be credited as approved.
    let (app, click_id) = percent_offer_with(Value::Null).await;

    // Act
    let response = app
        .get(&format!(
            "/click.php?cnv_id={click_id}&payout=50&cnv_status=checkout&token={OFFER_TOKEN}"
        ))
        .await;

    // Assert
    let body = assert_rejected(response, 400, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("checkout"),
        "{body}"
    );
    assert!(app.conversion_keys().is_empty());
}

// RedTrack

#[tokio::test]
async fn redtrack_conversion_types_on_one_click_are_two_conversions() {
    // Arrange: https://help.redtrack.io/knowledgebase/kb/basic-setup-9785/tracking-conversions/tracking-event-types
    // (`clickid`, `sum`, `type=Deposit`, `rdtk_event_id` to deduplicate by event id).
    let (app, click_id) = percent_offer_with(Value::Null).await;

    // Act
    let lead = get_ok(
        &app,
        &format!("/postback?clickid={click_id}&type=Lead&token={OFFER_TOKEN}&sum=0"),
    )
    .await;
    let deposit = get_ok(
        &app,
        &format!("/postback?clickid={click_id}&type=Deposit&sum=80&rdtk_event_id=dep-77&token={OFFER_TOKEN}"),
    )
    .await;
    let again = get_ok(
        &app,
        &format!("/postback?clickid={click_id}&type=Deposit&sum=80&rdtk_event_id=dep-77&token={OFFER_TOKEN}"),
    )
    .await;

    // Assert
    assert_eq!(lead["status"], "credited", "{lead}");
    assert_eq!(deposit["status"], "credited", "{deposit}");
    assert_eq!(deposit["payout"], "8", "{deposit}");
    assert_eq!(again["status"], "duplicate", "{again}");
}

// Affise

/// Affise's numeric statuses (http://help-center.affise.com/en/articles/4103329-statistics-conversion-statuses).
fn affise_statuses() -> Value {
    json!({"status_values": {"1": "approved", "2": "pending", "3": "rejected", "5": "pending"}})
}

#[tokio::test]
async fn affise_numeric_statuses_mapped_for_the_offer_move_a_conversion_through_a_chargeback() {
    // Arrange: https://help-center.affise.com/en/articles/6475468-affise-postback-url-parameters
    // (`clickid`, `action_id`, `goal`, `sum`, `status`, `secure`).
    let (app, click_id) = percent_offer_with(affise_statuses()).await;
    let url = |status: &str| {
        format!("/postback?clickid={click_id}&action_id=A-1&goal=1&sum=10&status={status}&secure={OFFER_TOKEN}")
    };

    // Act
    let pending = get_ok(&app, &url("2")).await;
    let approved = get_ok(&app, &url("1")).await;
    let declined = get_ok(&app, &url("3")).await;

    // Assert
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(approved["status"], "updated", "{approved}");
    assert_eq!(approved["conversion_status"], "approved", "{approved}");
    assert_eq!(declined["status"], "updated", "{declined}");
    assert_eq!(declined["conversion_status"], "rejected", "{declined}");
    assert_eq!(app.totals().await["conversions"], 0);
}

#[tokio::test]
async fn numeric_statuses_are_not_global_and_the_token_rule_holds_through_a_mapping() {
    // Arrange
    let (unmapped, click_id) = percent_offer_with(Value::Null).await;
    let (mapped, mapped_click) = percent_offer_with(affise_statuses()).await;

    // Act
    let numeric = unmapped
        .get(&format!(
            "/postback?clickid={click_id}&action_id=A-1&sum=10&status=2&secure={OFFER_TOKEN}"
        ))
        .await;
    let wrong_secret = mapped
        .get(&format!(
            "/postback?clickid={mapped_click}&action_id=A-1&sum=10&status=2&secure=wrong-secret"
        ))
        .await;

    // Assert
    assert_rejected(numeric, 400, "invalid_request").await;
    assert_rejected(wrong_secret, 403, "invalid_token").await;
    assert!(unmapped.conversion_keys().is_empty());
    assert!(mapped.conversion_keys().is_empty());
}

// CAKE

#[tokio::test]
async fn a_cake_postback_with_renamed_request_id_transaction_and_price_credits() {
    // Arrange: CAKE reads the click as the request session id in `r`
    // (https://support.getcake.com/support/solutions/articles/5000546059-how-to-implement-server-to-server-tracking-using-a-postback-url),
    // the advertiser's transaction id in `t`, the event in `e` and the price
    // in `p`; no global rule can claim one-letter names.
    let mapping = json!({"params": {"r": "click_id", "t": "txid", "e": "goal", "p": "amount"}});
    let (app, click_id) = percent_offer_with(mapping).await;

    // Act
    let first = get_ok(
        &app,
        &format!("/postback?o=12&e=3&r={click_id}&t=T-9&p=20.00&token={OFFER_TOKEN}"),
    )
    .await;
    let second = get_ok(
        &app,
        &format!("/postback?o=12&e=4&r={click_id}&t=T-10&p=5&token={OFFER_TOKEN}"),
    )
    .await;

    // Assert
    assert_eq!(first["status"], "credited", "{first}");
    assert_eq!(first["payout"], "2", "{first}");
    assert_eq!(second["status"], "credited", "{second}");
    let log = log_of_o1(&app, 2).await;
    assert_eq!(log[0]["txid"], "T-10", "{}", log[0]);
    assert_eq!(log[0]["ignored_params"], json!(["o"]), "{}", log[0]);
}

#[tokio::test]
async fn a_click_id_under_another_offers_name_is_not_read_for_an_offer_that_does_not_map_it() {
    // Arrange: offer `cake` maps `r` to the click id; the click is on `o1`, which does not.
    let (app, click_id) = percent_offer_with(Value::Null).await;
    app.create_offer(
        "cake",
        json!({"postback_mapping": {"params": {"r": "click_id"}}}),
    )
    .await;

    // Act
    let response = app
        .get(&format!("/postback?r={click_id}&token={OFFER_TOKEN}"))
        .await;

    // Assert
    let body = assert_rejected(response, 400, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("click_id"),
        "{body}"
    );
    assert!(app.conversion_keys().is_empty());
}

// Impact

#[tokio::test]
async fn an_impact_conversion_as_json_with_fields_clickback_does_not_read_credits_and_lists_them() {
    // Arrange: https://integrations.impact.com/impact-brand/reference/submit-a-conversion
    // (`CampaignId`, `ActionTrackerId`, `EventDate`, `ClickId`, `OrderId`, `CurrencyCode`).
    let (app, click_id) = percent_offer_with(json!({"params": {"Amount": "amount"}})).await;
    let body = |order: &str, tracker: u32| {
        json!({"CampaignId": 1000, "ActionTrackerId": tracker, "EventDate": "NOW",
               "ClickId": click_id, "OrderId": order, "CurrencyCode": "EUR", "Amount": 60,
               "Items": [{"Sku": "x"}], "token": OFFER_TOKEN})
        .to_string()
    };

    // Act
    let sale = ok_json(
        app.postback_post("application/json", body("O-1", 12345))
            .await,
    )
    .await;
    let upsell = ok_json(
        app.postback_post("application/json", body("O-2", 12346))
            .await,
    )
    .await;

    // Assert
    assert_eq!(sale["status"], "credited", "{sale}");
    assert_eq!(sale["payout"], "6", "{sale}");
    assert_eq!(upsell["status"], "credited", "{upsell}");
    let log = log_of_o1(&app, 2).await;
    assert_eq!(
        log[0]["ignored_params"],
        json!(["CampaignId", "EventDate", "Items"]),
        "{}",
        log[0]
    );
}

// AppsFlyer

#[tokio::test]
async fn appsflyer_in_app_events_on_one_click_are_two_conversions_and_an_unfilled_revenue_is_absent(
) {
    // Arrange: https://support.appsflyer.com/hc/en-us/articles/360016751637-Postback-macros-for-analytics-partners
    // (`event_name`, `event_revenue`, `event_revenue_currency`; a macro
    // without a value can arrive unreplaced, as `(event_revenue)`).
    let (app, click_id) = percent_offer_with(json!({"amount": {"unfilled_as_absent": true}})).await;
    app.create_offer(
        "fixed",
        json!({"postback_mapping": {"amount": {"unfilled_as_absent": true}}}),
    )
    .await;
    let fixed_click = app.click_id("fixed", "a1").await;

    // Act
    let registration = get_ok(
        &app,
        &format!("/postback?clickid={fixed_click}&event_name=af_complete_registration&event_revenue=(event_revenue)&event_revenue_currency=(event_revenue_currency)&token={OFFER_TOKEN}"),
    )
    .await;
    let purchase = get_ok(
        &app,
        &format!("/postback?clickid={click_id}&event_name=af_purchase&event_revenue=9.99&event_revenue_currency=EUR&token={OFFER_TOKEN}"),
    )
    .await;
    let second_event = get_ok(
        &app,
        &format!("/postback?clickid={click_id}&event_name=af_subscribe&event_revenue=20&event_revenue_currency=EUR&token={OFFER_TOKEN}"),
    )
    .await;

    // Assert
    assert_eq!(registration["status"], "credited", "{registration}");
    assert_eq!(registration["payout"], "2.5", "{registration}");
    assert_eq!(purchase["status"], "credited", "{purchase}");
    assert_eq!(purchase["payout"], "0.999", "{purchase}");
    assert_eq!(second_event["status"], "credited", "{second_event}");
    assert_eq!(second_event["payout"], "2", "{second_event}");
}

// Adjust

#[tokio::test]
async fn an_adjust_callback_with_revenue_in_cents_credits_the_amount_in_units() {
    // Arrange: https://help.adjust.com/en/article/event-callbacks (`{event_name}`;
    // `{revenue}` is in cents, `{currency}` its currency).
    let (app, click_id) = percent_offer_with(json!({"amount": {"scale": "cents"}})).await;

    // Act
    let purchase = get_ok(
        &app,
        &format!("/postback?click_id={click_id}&event_name=purchase&revenue=1299&currency=EUR&activity_kind=event&token={OFFER_TOKEN}"),
    )
    .await;

    // Assert
    assert_eq!(purchase["status"], "credited", "{purchase}");
    assert_eq!(purchase["payout"], "1.299", "{purchase}");
    let log = log_of_o1(&app, 1).await;
    assert_eq!(log[0]["amount"], "12.99", "{}", log[0]);
    assert_eq!(log[0]["goal"], "purchase", "{}", log[0]);
    assert_eq!(
        log[0]["ignored_params"],
        json!(["activity_kind"]),
        "{}",
        log[0]
    );
}

#[tokio::test]
async fn amounts_with_more_than_six_fraction_digits_are_rounded_half_up_when_the_offer_says_so() {
    // Arrange
    let (app, click_id) = percent_offer_with(json!({"amount": {"round_half_up": true}})).await;

    // Act
    let body = postback_ok(&app, &click_id, "amount=100.0000005&txid=r").await;

    // Assert: 10 % of 100.000001 is 10.0000001, paid as 10.
    assert_eq!(body["payout"], "10", "{body}");
    let log = log_of_o1(&app, 1).await;
    assert_eq!(log[0]["amount"], "100.000001", "{}", log[0]);
}

// Aliases and mappings

#[tokio::test]
async fn two_aliases_of_the_click_id_with_different_values_answer_400() {
    // Arrange
    let (app, click_id) = percent_offer_with(Value::Null).await;
    let other = app.click_id("o1", "a1").await;

    // Act
    let response = app
        .get(&format!(
            "/postback?cnv_id={click_id}&clickid={other}&token={OFFER_TOKEN}"
        ))
        .await;

    // Assert
    let body = assert_rejected(response, 400, "invalid_request").await;
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("cnv_id") && detail.contains("clickid"),
        "{body}"
    );
    assert!(app.conversion_keys().is_empty());
}

#[tokio::test]
async fn a_postback_mapping_is_shown_by_the_admin_api_and_an_ambiguous_one_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let mapping = json!({"params": {"r": "click_id", "adv_sub": "txid"},
                         "status_values": {"1": "approved"},
                         "amount": {"scale": "cents", "decimal_comma": false,
                                    "round_half_up": false, "unfilled_as_absent": true}});
    app.create_offer("o1", json!({"postback_mapping": mapping}))
        .await;

    // Act
    let shown = ok_json(app.admin_get("/api/v1/offers/o1").await).await;
    let mut ambiguous = offer_body();
    ambiguous["postback_mapping"] = json!({"params": {"cid": "txid"}});
    let refused = app.put_offer("o1", &ambiguous).await;
    let mut twice = offer_body();
    twice["postback_mapping"] = json!({"status_values": {"ok": "approved", "OK": "rejected"}});
    let refused_twice = app.put_offer("o1", &twice).await;

    // Assert
    assert_eq!(shown["postback_mapping"], mapping, "{shown}");
    let body = assert_rejected(refused, 400, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("ambiguous"),
        "{body}"
    );
    assert_rejected(refused_twice, 400, "invalid_request").await;
    let after = ok_json(app.admin_get("/api/v1/offers/o1").await).await;
    assert_eq!(
        after["postback_mapping"], mapping,
        "a refused PUT changes nothing"
    );
}
