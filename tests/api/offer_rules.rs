//! Offer rules and traffic quality (docs/API.md, "Where clickback goes beyond
//! this contract"): minimum click-to-conversion time, caps and capped clicks,
//! postback IP allow-lists, signed postbacks, bots and link previews,
//! duplicate clicks, and the troubleshooting postback log.

use std::time::Duration;

use clickback::domain::signature::{canonical, sign};
use serde_json::{json, Value};

use crate::helpers::*;

/// The signing secret of the signed-postback offers below.
const SECRET: &str = "0123456789abcdef-secret";
/// The landing page of offers made by [`TestApp::create_offer`].
const OFFER_URL: &str = "https://shop.example/landing";
/// An offer's own landing page for capped traffic.
const OFFER_FALLBACK: &str = "https://fallback.example/other-offer?src=cap";
/// The network-wide landing page for capped traffic.
const GLOBAL_FALLBACK: &str = "https://network.example/more-offers";
/// A desktop Chrome.
const BROWSER_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
/// How long the cap watcher (refreshing every 100 ms in tests) may take.
const WATCH: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Offer `o1` (2.50 EUR, from [`offer_body`]) with `overrides`, and affiliate `a1`.
async fn app_with_offer(overrides: Value) -> TestApp {
    let app = spawn_app().await;
    app.create_offer("o1", overrides).await;
    app.create_affiliate("a1").await;
    app
}

/// Asserts a `200 {"status":"rejected","reason":<reason>,"detail":..}` answer.
fn assert_rule_rejected(body: &Value, reason: &str) {
    assert_eq!(body["status"], "rejected", "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "a human detail in {body}"
    );
}

/// One cap as the admin API takes it.
fn cap(scope: &str, metric: &str, limit: &str) -> Value {
    json!({"scope": scope, "period": "day", "metric": metric, "limit": limit})
}

/// `GET /c/{offer}?{query}` with a `User-Agent`.
async fn click_as(app: &TestApp, offer: &str, query: &str, user_agent: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/c/{offer}?{query}", app.address))
        .header("user-agent", user_agent)
        .send()
        .await
        .expect("request sent")
}

/// Clicks with a `User-Agent` and returns the click id of the redirect.
async fn click_id_as(app: &TestApp, offer: &str, aff: &str, user_agent: &str) -> String {
    let response = click_as(app, offer, &format!("aff_id={aff}"), user_agent).await;
    assert_eq!(response.status(), 302);
    let location = location(&response);
    click_id_from(&location).unwrap_or_else(|| panic!("no click id in {location}"))
}

/// `n` fresh clicks of `aff` on `offer`.
async fn click_ids(app: &TestApp, offer: &str, aff: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(app.click_id(offer, aff).await);
    }
    ids
}

/// Today's stats row of one affiliate.
async fn affiliate_row(app: &TestApp, aff: &str) -> Value {
    app.stats("group_by=affiliate")
        .await
        .into_iter()
        .find(|row| row["aff_id"] == aff)
        .unwrap_or_else(|| panic!("no stats row for {aff}"))
}

/// A sample of `clickback_clicks_total` for offer `o1`.
fn clicks_series(result: &str) -> String {
    format!(r#"clickback_clicks_total{{offer="o1",result="{result}"}}"#)
}

/// Waits until a click of `aff` on `o1` is sent to `target` (the cap watcher
/// has seen the full cap); panics if that never happens.
async fn wait_until_clicks_go_to(app: &TestApp, aff: &str, target: &str) {
    let query = format!("aff_id={aff}");
    let seen = eventually(WATCH, || async {
        location(&app.click("o1", &query).await) == target
    })
    .await;
    assert!(seen.is_some(), "clicks of {aff} never went to {target}");
}

/// RFC 3986 percent-encoding, unreserved characters kept: the test's own,
/// written apart from clickback's.
fn rfc3986(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A query string of `pairs`, every name and value encoded.
fn query_of(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", rfc3986(n), rfc3986(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The signature documented in `src/domain/signature.rs`, computed with
/// clickback's own canonicaliser.
fn library_sig(pairs: &[(&str, &str)]) -> String {
    sign(SECRET, &canonical(pairs.iter().copied()))
}

/// The canonical string as the documentation describes it, written
/// independently: every parameter but `sig`, name and value encoded, sorted
/// by name then value, `name=value` joined with `&`.
fn independent_canonical(pairs: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .filter(|(name, _)| *name != "sig")
        .map(|(name, value)| (rfc3986(name), rfc3986(value)))
        .collect();
    encoded.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    encoded
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lowercase hex HMAC-SHA256, written independently of clickback's `sign`.
fn independent_hmac(secret: &str, message: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(message.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The query of a postback signed over `pairs` (which carry `ts`).
fn signed_query(pairs: &[(&str, &str)]) -> String {
    let sig = library_sig(pairs);
    format!("{}&sig={sig}", query_of(pairs))
}

/// Offer `o1` requiring signed postbacks, affiliate `a1` and one click.
async fn signing_app_with_click() -> (TestApp, String) {
    let app = app_with_offer(json!({"postback_signing_secret": SECRET})).await;
    let click_id = app.click_id("o1", "a1").await;
    (app, click_id)
}

/// `GET /api/v1/postbacks?{query}` with the admin token: the raw body and its entries.
async fn postback_log(app: &TestApp, query: &str) -> (String, Vec<Value>) {
    let response = app.admin_get(&format!("/api/v1/postbacks?{query}")).await;
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let entries = body["postbacks"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("a postbacks array in {text}"));
    (text, entries)
}

/// Waits until the log at `query` holds at least `n` entries (it is written
/// in the background) and returns them.
async fn log_with(app: &TestApp, query: &str, n: usize) -> Vec<Value> {
    let grown = eventually(Duration::from_secs(5), || async {
        postback_log(app, query).await.1.len() >= n
    })
    .await;
    assert!(
        grown.is_some(),
        "the postback log never reached {n} entries"
    );
    postback_log(app, query).await.1
}

// ---------------------------------------------------------------------------
// Minimum click-to-conversion time
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_conversion_sooner_than_min_ctc_secs_is_rejected_too_fast_and_not_credited() {
    // Arrange
    let app = app_with_offer(json!({"min_ctc_secs": 60})).await;
    let click_id = app.click_id("o1", "a1").await;

    // Act
    let body = postback_ok(&app, &click_id, "txid=order-1").await;

    // Assert
    assert_rule_rejected(&body, "too_fast");
    let totals = app.totals().await;
    assert_eq!(totals["rejected_conversions"], 1, "{totals}");
    assert_eq!(totals["conversions"], 0, "{totals}");
    assert_eq!(totals["payout"], "0", "{totals}");
}

#[tokio::test]
async fn a_retry_of_a_too_fast_conversion_answers_duplicate_and_still_credits_nothing() {
    // Arrange
    let app = app_with_offer(json!({"min_ctc_secs": 60})).await;
    let click_id = app.click_id("o1", "a1").await;
    let first = postback_ok(&app, &click_id, "txid=order-1").await;
    assert_rule_rejected(&first, "too_fast");

    // Act
    let retry = postback_ok(&app, &click_id, "txid=order-1&status=approved").await;

    // Assert
    assert_eq!(retry["status"], "duplicate", "{retry}");
    assert_eq!(retry["conversion_id"], first["conversion_id"]);
    assert_eq!(retry["conversion_status"], "rejected", "{retry}");
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 0, "{totals}");
    assert_eq!(totals["rejected_conversions"], 1, "{totals}");
}

#[tokio::test]
async fn a_conversion_after_min_ctc_secs_is_credited() {
    // Arrange
    let app = app_with_offer(json!({"min_ctc_secs": 60})).await;
    let click_id = app.click_id("o1", "a1").await;
    app.clock.advance(60);

    // Act
    let body = postback_ok(&app, &click_id, "txid=order-1").await;

    // Assert
    assert_eq!(body["status"], "credited", "{body}");
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 1, "{totals}");
    assert_eq!(totals["rejected_conversions"], 0, "{totals}");
}

// ---------------------------------------------------------------------------
// Caps on conversions
// ---------------------------------------------------------------------------

/// Three clicks of `o1` (2.50 a conversion) converted in turn against an
/// offer `cap` with room for two: two credited, the third rejected
/// `cap_reached`, and the stats agree.
async fn assert_cap_takes_two_of_three(cap: Value) {
    // Arrange
    let app = app_with_offer(json!({ "caps": [cap] })).await;
    let clicks = click_ids(&app, "o1", "a1", 3).await;

    // Act
    let mut answers = Vec::new();
    for click_id in &clicks {
        answers.push(postback_ok(&app, click_id, "txid=order").await);
    }

    // Assert
    assert_eq!(answers[0]["status"], "credited", "{}", answers[0]);
    assert_eq!(answers[1]["status"], "credited", "{}", answers[1]);
    assert_rule_rejected(&answers[2], "cap_reached");
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 2, "{totals}");
    assert_eq!(totals["payout"], "5", "{totals}");
    assert_eq!(totals["rejected_conversions"], 1, "{totals}");
}

#[tokio::test]
async fn an_offer_cap_credits_up_to_its_limit_then_rejects_cap_reached() {
    assert_cap_takes_two_of_three(cap("offer", "conversions", "2")).await;
}

#[tokio::test]
async fn an_affiliate_cap_limits_each_affiliate_on_its_own() {
    // Arrange
    let app = app_with_offer(json!({"caps": [cap("affiliate", "conversions", "1")]})).await;
    app.create_affiliate("a2").await;
    let a1 = click_ids(&app, "o1", "a1", 2).await;
    let a2 = app.click_id("o1", "a2").await;

    // Act
    let a1_first = postback_ok(&app, &a1[0], "txid=t").await;
    let a1_second = postback_ok(&app, &a1[1], "txid=t").await;
    let a2_first = postback_ok(&app, &a2, "txid=t").await;

    // Assert
    assert_eq!(a1_first["status"], "credited", "{a1_first}");
    assert_rule_rejected(&a1_second, "cap_reached");
    assert_eq!(a2_first["status"], "credited", "{a2_first}");
    let row = affiliate_row(&app, "a1").await;
    assert_eq!(
        (&row["conversions"], &row["rejected_conversions"]),
        (&json!(1), &json!(1)),
        "{row}"
    );
    let row = affiliate_row(&app, "a2").await;
    assert_eq!(
        (&row["conversions"], &row["rejected_conversions"]),
        (&json!(1), &json!(0)),
        "{row}"
    );
}

#[tokio::test]
async fn a_payout_cap_credits_while_the_payout_fits_then_rejects_cap_reached() {
    // 2.50 per conversion against 5.00
    assert_cap_takes_two_of_three(cap("offer", "payout", "5")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_conversions_against_a_cap_of_five_credit_exactly_five() {
    // Arrange
    let app = app_with_offer(json!({"caps": [cap("offer", "conversions", "5")]})).await;
    let clicks = click_ids(&app, "o1", "a1", 20).await;

    // Act
    let answers = app
        .postbacks_at_once(
            clicks
                .iter()
                .map(|click_id| format!("click_id={click_id}&token={OFFER_TOKEN}&txid=race"))
                .collect(),
        )
        .await;

    // Assert
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let credited = answers
        .iter()
        .filter(|(_, b)| b["status"] == "credited")
        .count();
    let capped = answers
        .iter()
        .filter(|(_, b)| b["status"] == "rejected" && b["reason"] == "cap_reached")
        .count();
    assert_eq!((credited, capped), (5, 15), "{answers:?}");
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 5, "{totals}");
    assert_eq!(totals["payout"], "12.5", "{totals}");
    assert_eq!(totals["rejected_conversions"], 15, "{totals}");
}

#[tokio::test]
async fn duplicate_postbacks_use_no_cap_room_and_still_answer_duplicate_once_the_cap_is_full() {
    // Arrange
    let app = app_with_offer(json!({"caps": [cap("offer", "conversions", "2")]})).await;
    let clicks = click_ids(&app, "o1", "a1", 3).await;
    let first = postback_ok(&app, &clicks[0], "txid=t").await;
    assert_eq!(first["status"], "credited", "{first}");

    // Act
    let mut retries = Vec::new();
    for _ in 0..3 {
        retries.push(postback_ok(&app, &clicks[0], "txid=t").await);
    }
    let second = postback_ok(&app, &clicks[1], "txid=t").await;
    let third = postback_ok(&app, &clicks[2], "txid=t").await;
    let after_full: Vec<Value> = [
        postback_ok(&app, &clicks[0], "txid=t").await,
        postback_ok(&app, &clicks[1], "txid=t").await,
        postback_ok(&app, &clicks[2], "txid=t").await,
    ]
    .into();

    // Assert
    assert!(
        retries.iter().all(|r| r["status"] == "duplicate"),
        "{retries:?}"
    );
    assert_eq!(
        second["status"], "credited",
        "retries took cap room: {second}"
    );
    assert_rule_rejected(&third, "cap_reached");
    assert!(
        after_full.iter().all(|r| r["status"] == "duplicate"),
        "{after_full:?}"
    );
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 2, "{totals}");
    assert_eq!(totals["rejected_conversions"], 1, "{totals}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_identical_postbacks_take_one_unit_of_a_cap() {
    // Arrange
    let app = app_with_offer(json!({"caps": [cap("offer", "conversions", "2")]})).await;
    let clicks = click_ids(&app, "o1", "a1", 3).await;
    let query = format!("click_id={}&token={OFFER_TOKEN}&txid=race", clicks[0]);

    // Act
    let answers: Vec<Value> = app
        .postbacks_at_once(vec![query; 16])
        .await
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    let second = postback_ok(&app, &clicks[1], "txid=t").await;
    let third = postback_ok(&app, &clicks[2], "txid=t").await;

    // Assert
    let credited = answers.iter().filter(|b| b["status"] == "credited").count();
    let duplicate = answers
        .iter()
        .filter(|b| b["status"] == "duplicate")
        .count();
    assert_eq!((credited, duplicate), (1, 15), "{answers:?}");
    assert_eq!(
        second["status"], "credited",
        "the race leaked cap room: {second}"
    );
    assert_rule_rejected(&third, "cap_reached");
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 2, "{totals}");
}

// ---------------------------------------------------------------------------
// Capped clicks
// ---------------------------------------------------------------------------

#[tokio::test]
async fn once_the_offer_cap_is_full_clicks_go_to_the_offers_fallback_url_without_a_click_id() {
    // Arrange
    let app = app_with_offer(json!({
        "caps": [cap("offer", "conversions", "1")],
        "fallback_url": OFFER_FALLBACK,
    }))
    .await;
    let click_id = app.click_id("o1", "a1").await;
    assert_eq!(
        postback_ok(&app, &click_id, "txid=t").await["status"],
        "credited"
    );
    wait_until_clicks_go_to(&app, "a1", OFFER_FALLBACK).await;
    let capped_before = app.totals().await["capped_clicks"].as_i64().unwrap_or(0);
    let metric_before = metric_value(&app.metrics().await, &clicks_series("capped"));
    let stored_before = app.stored_click_ids().len();

    // Act
    let response = app.click("o1", "aff_id=a1").await;

    // Assert
    assert_eq!(response.status(), 302);
    let target = location(&response);
    assert_eq!(target, OFFER_FALLBACK);
    assert_eq!(click_id_from(&target), None);
    assert_eq!(
        app.stored_click_ids().len(),
        stored_before,
        "a capped click is stored"
    );
    let totals = app.totals().await;
    assert_eq!(totals["capped_clicks"], capped_before + 1, "{totals}");
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(&metrics, &clicks_series("capped")) - metric_before,
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_capped_offer_without_its_own_fallback_sends_clicks_to_the_global_fallback_url() {
    // Arrange
    let app = spawn_app_tweaked(|s| s.fallback_url = Some(GLOBAL_FALLBACK.into())).await;
    app.create_offer("o1", json!({"caps": [cap("offer", "conversions", "1")]}))
        .await;
    app.create_affiliate("a1").await;
    let click_id = app.click_id("o1", "a1").await;
    assert_eq!(
        postback_ok(&app, &click_id, "txid=t").await["status"],
        "credited"
    );

    // Act
    let seen = eventually(WATCH, || async {
        location(&app.click("o1", "aff_id=a1").await) == GLOBAL_FALLBACK
    })
    .await;

    // Assert
    assert!(
        seen.is_some(),
        "capped clicks never reached the global fallback"
    );
    assert_eq!(app.totals().await["capped_clicks"], 1);
}

#[tokio::test]
async fn a_capped_offer_with_no_fallback_anywhere_keeps_redirecting_to_the_offer() {
    // Arrange
    let app = app_with_offer(json!({"caps": [cap("offer", "conversions", "1")]})).await;
    let click_id = app.click_id("o1", "a1").await;
    assert_eq!(
        postback_ok(&app, &click_id, "txid=t").await["status"],
        "credited"
    );
    let (offer, aff) = (
        clickback::domain::OfferId::parse("o1").expect("id"),
        clickback::domain::AffiliateId::parse("a1").expect("id"),
    );
    let watched = eventually(WATCH, || async {
        app.state.clicks.caps.is_full(&offer, &aff)
    })
    .await;
    assert!(
        watched.is_some(),
        "precondition: the cap watcher sees the full cap"
    );

    // Act
    let response = app.click("o1", "aff_id=a1").await;

    // Assert
    assert_eq!(response.status(), 302);
    let target = location(&response);
    assert!(target.starts_with(OFFER_URL), "{target}");
    assert!(click_id_from(&target).is_some(), "{target}");
    assert_eq!(app.totals().await["capped_clicks"], 0);
}

#[tokio::test]
async fn while_one_affiliates_cap_is_full_only_that_affiliates_clicks_go_to_the_fallback() {
    // Arrange
    let app = app_with_offer(json!({
        "caps": [cap("affiliate", "conversions", "1")],
        "fallback_url": OFFER_FALLBACK,
    }))
    .await;
    app.create_affiliate("a2").await;
    let click_id = app.click_id("o1", "a1").await;
    assert_eq!(
        postback_ok(&app, &click_id, "txid=t").await["status"],
        "credited"
    );
    wait_until_clicks_go_to(&app, "a1", OFFER_FALLBACK).await;

    // Act
    let other = app.click("o1", "aff_id=a2").await;

    // Assert
    assert_eq!(other.status(), 302);
    let target = location(&other);
    assert!(target.starts_with(OFFER_URL), "{target}");
    assert!(click_id_from(&target).is_some(), "{target}");
}

// ---------------------------------------------------------------------------
// Postback IP allow-lists
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_postback_from_outside_the_allow_list_is_refused_403_ip_not_allowed_and_writes_nothing() {
    // Arrange
    let app = app_with_offer(json!({"postback_ips": ["10.9.9.9"]})).await;
    let click_id = app.click_id("o1", "a1").await;

    // Act
    let response = app
        .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}&txid=t"))
        .await;

    // Assert
    assert_rejected(response, 403, "ip_not_allowed").await;
    assert!(
        app.conversion_keys().is_empty(),
        "{:?}",
        app.conversion_keys()
    );
    let totals = app.totals().await;
    assert_eq!(totals["conversions"], 0, "{totals}");
    assert_eq!(totals["rejected_conversions"], 0, "{totals}");
}

#[tokio::test]
async fn a_postback_from_inside_an_allow_listed_cidr_is_credited() {
    // Arrange
    let app = app_with_offer(json!({"postback_ips": ["192.0.2.0/24", "127.0.0.0/8"]})).await;
    let click_id = app.click_id("o1", "a1").await;

    // Act
    let body = postback_ok(&app, &click_id, "txid=t").await;

    // Assert
    assert_eq!(body["status"], "credited", "{body}");
    assert_eq!(app.totals().await["conversions"], 1);
}

#[tokio::test]
async fn ipv6_allow_list_entries_are_accepted_and_do_not_admit_an_ipv4_sender() {
    // Arrange
    let app = spawn_app().await;
    app.create_affiliate("a1").await;

    // Act
    let offer = app
        .create_offer("o1", json!({"postback_ips": ["::1/128", "2001:db8::/32"]}))
        .await;
    let click_id = app.click_id("o1", "a1").await;
    let response = app
        .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}&txid=t"))
        .await;

    // Assert
    assert_eq!(
        offer["postback_ips"],
        json!(["::1", "2001:db8::/32"]),
        "{offer}"
    );
    assert_rejected(response, 403, "ip_not_allowed").await;
}

#[tokio::test]
async fn a_spoofed_x_forwarded_for_does_not_pass_the_allow_list_without_trusted_proxies() {
    // Arrange
    let app = app_with_offer(json!({"postback_ips": ["10.9.9.9"]})).await;
    let click_id = app.click_id("o1", "a1").await;

    // Act
    let response = app
        .client
        .get(format!(
            "{}/postback?click_id={click_id}&token={OFFER_TOKEN}&txid=t",
            app.address
        ))
        .header("x-forwarded-for", "10.9.9.9")
        .send()
        .await
        .expect("request sent");

    // Assert
    assert_rejected(response, 403, "ip_not_allowed").await;
    assert!(app.conversion_keys().is_empty());
}

#[tokio::test]
async fn x_forwarded_for_from_a_trusted_proxy_names_the_sender_for_the_allow_list() {
    // Arrange: clickback behind a proxy on 127.0.0.1
    let app = spawn_app_tweaked(|s| {
        s.trusted_proxies = vec!["127.0.0.1".parse().expect("an IP")];
    })
    .await;
    app.create_offer("o1", json!({"postback_ips": ["10.9.9.9"]}))
        .await;
    app.create_affiliate("a1").await;
    let click_id = app.click_id("o1", "a1").await;
    let url = format!(
        "{}/postback?click_id={click_id}&token={OFFER_TOKEN}&txid=t",
        app.address
    );

    // Act
    let forwarded = app
        .client
        .get(&url)
        .header("x-forwarded-for", "10.9.9.9")
        .send()
        .await
        .expect("request sent");
    let direct = app.client.get(&url).send().await.expect("request sent");

    // Assert
    assert_eq!(ok_json(forwarded).await["status"], "credited");
    assert_rejected(direct, 403, "ip_not_allowed").await;
}

// ---------------------------------------------------------------------------
// Signed postbacks
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_correctly_signed_postback_is_credited() {
    // Arrange
    let (app, click_id) = signing_app_with_click().await;
    let ts = app.clock.now().to_string();
    let query = signed_query(&[
        ("click_id", &click_id),
        ("token", OFFER_TOKEN),
        ("txid", "order-1"),
        ("amount", "10"),
        ("ts", &ts),
    ]);

    // Act
    let body = ok_json(app.postback(&query).await).await;

    // Assert
    assert_eq!(body["status"], "credited", "{body}");
    assert_eq!(app.totals().await["conversions"], 1);
}

#[tokio::test]
async fn a_postback_signed_by_an_independent_implementation_of_the_documented_rules_is_credited() {
    // Arrange: the test's own canonicaliser agrees with a hand-made example ...
    assert_eq!(
        independent_canonical(&[
            ("txid", "a b/ü"),
            ("amount", "1.5"),
            ("sig", "ignored"),
            ("goal", "z"),
            ("goal", "a~"),
        ]),
        "amount=1.5&goal=a~&goal=z&txid=a%20b%2F%C3%BC"
    );
    // ... and a known vector (signature.rs's, computed with Python's hmac).
    assert_eq!(
        independent_hmac(SECRET, "click_id=abc&ts=1700000000&txid=o-1"),
        "1612fd5f13fb419622ce92fa90767a3a9c9521c6e05f49494b1adec33b17baf8"
    );
    let (app, click_id) = signing_app_with_click().await;
    let ts = app.clock.now().to_string();
    let pairs = [
        ("ts", ts.as_str()),
        ("txid", "order 7/ü+x&y=z"),
        ("token", OFFER_TOKEN),
        ("amount", "19.99"),
        ("click_id", click_id.as_str()),
        ("currency", "EUR"),
    ];
    let sig = independent_hmac(SECRET, &independent_canonical(&pairs));

    // Act
    let body = ok_json(
        app.postback(&format!("{}&sig={sig}", query_of(&pairs)))
            .await,
    )
    .await;

    // Assert
    assert_eq!(body["status"], "credited", "{body}");
    assert_eq!(app.totals().await["conversions"], 1);
}

#[tokio::test]
async fn an_unsigned_postback_to_a_signing_offer_is_refused_403_invalid_signature() {
    // Arrange
    let (app, click_id) = signing_app_with_click().await;

    // Act
    let response = app
        .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}&txid=t"))
        .await;

    // Assert
    assert_rejected(response, 403, "invalid_signature").await;
    assert!(app.conversion_keys().is_empty());
    assert_eq!(app.totals().await["conversions"], 0);
}

#[tokio::test]
async fn a_postback_signed_ten_minutes_ago_is_refused_403_invalid_signature() {
    // Arrange
    let (app, click_id) = signing_app_with_click().await;
    let ts = (app.clock.now() - 600).to_string();
    let query = signed_query(&[
        ("click_id", &click_id),
        ("token", OFFER_TOKEN),
        ("txid", "t"),
        ("ts", &ts),
    ]);

    // Act
    let response = app.postback(&query).await;

    // Assert
    assert_rejected(response, 403, "invalid_signature").await;
    assert!(app.conversion_keys().is_empty());
}

#[tokio::test]
async fn a_postback_whose_amount_was_changed_after_signing_is_refused_403_invalid_signature() {
    // Arrange
    let (app, click_id) = signing_app_with_click().await;
    let ts = app.clock.now().to_string();
    let signed = [
        ("click_id", click_id.as_str()),
        ("token", OFFER_TOKEN),
        ("txid", "t"),
        ("amount", "10"),
        ("ts", ts.as_str()),
    ];
    let sig = library_sig(&signed);
    let mut tampered = signed;
    tampered[3].1 = "1000";

    // Act
    let response = app
        .postback(&format!("{}&sig={sig}", query_of(&tampered)))
        .await;

    // Assert
    assert_rejected(response, 403, "invalid_signature").await;
    assert!(app.conversion_keys().is_empty());
}

#[tokio::test]
async fn the_same_signed_request_sent_twice_is_refused_403_replayed_the_second_time() {
    // Arrange
    let (app, click_id) = signing_app_with_click().await;
    let ts = app.clock.now().to_string();
    let query = signed_query(&[
        ("click_id", &click_id),
        ("token", OFFER_TOKEN),
        ("txid", "t"),
        ("ts", &ts),
    ]);
    let first = ok_json(app.postback(&query).await).await;

    // Act
    let replay = app.postback(&query).await;

    // Assert
    assert_eq!(first["status"], "credited", "{first}");
    assert_rejected(replay, 403, "replayed").await;
    assert_eq!(app.totals().await["conversions"], 1);
}

#[tokio::test]
async fn a_freshly_signed_retry_of_a_credited_conversion_answers_duplicate() {
    // Arrange
    let (app, click_id) = signing_app_with_click().await;
    let now = app.clock.now();
    let signed_at = |ts: &str| {
        signed_query(&[
            ("click_id", &click_id),
            ("token", OFFER_TOKEN),
            ("txid", "t"),
            ("ts", ts),
        ])
    };
    let first = ok_json(app.postback(&signed_at(&now.to_string())).await).await;

    // Act
    let retry = ok_json(app.postback(&signed_at(&(now - 1).to_string())).await).await;

    // Assert
    assert_eq!(first["status"], "credited", "{first}");
    assert_eq!(retry["status"], "duplicate", "{retry}");
    assert_eq!(retry["conversion_id"], first["conversion_id"]);
    assert_eq!(app.totals().await["conversions"], 1);
}

#[tokio::test]
async fn signed_postbacks_sent_as_a_form_or_a_json_body_are_credited() {
    // Arrange
    let (app, form_click) = signing_app_with_click().await;
    let json_click = app.click_id("o1", "a1").await;
    let ts = app.clock.now().to_string();
    let form = signed_query(&[
        ("click_id", &form_click),
        ("token", OFFER_TOKEN),
        ("txid", "form 1"),
        ("ts", &ts),
    ]);
    // JSON numbers are signed as the text the sender wrote.
    let json_sig = library_sig(&[
        ("click_id", &json_click),
        ("token", OFFER_TOKEN),
        ("txid", "json-1"),
        ("amount", "19.99"),
        ("ts", &ts),
    ]);
    let json_body = format!(
        r#"{{"click_id":"{json_click}","token":"{OFFER_TOKEN}","txid":"json-1","amount":19.99,"ts":{ts},"sig":"{json_sig}"}}"#
    );

    // Act
    let by_form = ok_json(
        app.postback_post("application/x-www-form-urlencoded", form)
            .await,
    )
    .await;
    let by_json = ok_json(app.postback_post("application/json", json_body).await).await;

    // Assert
    assert_eq!(by_form["status"], "credited", "{by_form}");
    assert_eq!(by_json["status"], "credited", "{by_json}");
    assert_eq!(app.totals().await["conversions"], 2);
}

#[tokio::test]
async fn a_correctly_signed_postback_without_the_offers_token_is_refused_403_invalid_token() {
    // Arrange
    let (app, click_id) = signing_app_with_click().await;
    let ts = app.clock.now().to_string();
    let without_token = signed_query(&[("click_id", &click_id), ("txid", "t"), ("ts", &ts)]);
    let wrong_token = signed_query(&[
        ("click_id", &click_id),
        ("token", "not-the-offer-token"),
        ("txid", "t"),
        ("ts", &ts),
    ]);

    // Act
    let missing = app.postback(&without_token).await;
    let wrong = app.postback(&wrong_token).await;

    // Assert
    assert_rejected(missing, 403, "invalid_token").await;
    assert_rejected(wrong, 403, "invalid_token").await;
    assert!(app.conversion_keys().is_empty());
}

// ---------------------------------------------------------------------------
// Bots and link previews
// ---------------------------------------------------------------------------

#[tokio::test]
async fn link_previews_and_crawlers_get_the_redirect_but_are_not_recorded() {
    // Arrange
    let app = app_with_offer(json!({})).await;
    let bots = [
        "Slackbot-LinkExpanding 1.0",
        "facebookexternalhit/1.1",
        "Twitterbot/1.0",
        "Mozilla/5.0 (compatible; Discordbot/2.0)",
        "TelegramBot",
        "WhatsApp/2.23",
        "Googlebot/2.1",
    ];

    // Act
    let mut targets = Vec::new();
    for ua in bots {
        let response = click_as(&app, "o1", "aff_id=a1", ua).await;
        let status = response.status();
        let target = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 302, "{ua}: {body}");
        targets.push((ua, target));
    }

    // Assert
    for (ua, target) in &targets {
        assert!(target.starts_with(OFFER_URL), "{ua}: {target}");
        assert_eq!(click_id_from(target), None, "{ua}: {target}");
    }
    assert!(
        app.stored_click_ids().is_empty(),
        "{:?}",
        app.stored_click_ids()
    );
    let totals = app.totals().await;
    assert_eq!(totals["clicks"], 0, "{totals}");
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(&metrics, &clicks_series("bot")),
        7.0,
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, &clicks_series("tracked")),
        0.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_head_probe_gets_the_redirect_but_is_not_recorded() {
    // Arrange
    let app = app_with_offer(json!({})).await;

    // Act
    let response = app
        .client
        .head(format!("{}/c/o1?aff_id=a1", app.address))
        .header("user-agent", BROWSER_UA)
        .send()
        .await
        .expect("request sent");

    // Assert
    assert_eq!(response.status(), 302);
    assert_eq!(click_id_from(&location(&response)), None);
    assert!(app.stored_click_ids().is_empty());
    assert_eq!(
        metric_value(&app.metrics().await, &clicks_series("bot")),
        1.0
    );
}

#[tokio::test]
async fn a_normal_browser_is_tracked() {
    // Arrange
    let app = app_with_offer(json!({})).await;

    // Act
    let click_id = click_id_as(&app, "o1", "a1", BROWSER_UA).await;

    // Assert
    assert_eq!(app.stored_click_ids().len(), 1);
    assert!(app.stored_click_ids()[0].ends_with(&click_id));
    assert_eq!(app.totals().await["clicks"], 1);
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(&metrics, &clicks_series("tracked")),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, &clicks_series("bot")),
        0.0,
        "{metrics}"
    );
}

// ---------------------------------------------------------------------------
// Duplicate clicks
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_same_visitor_clicking_twice_makes_two_clicks_but_one_unique_click() {
    // Arrange
    let app = app_with_offer(json!({})).await;

    // Act
    let first = click_id_as(&app, "o1", "a1", BROWSER_UA).await;
    let second = click_id_as(&app, "o1", "a1", BROWSER_UA).await;

    // Assert
    assert_ne!(first, second);
    let totals = app.totals().await;
    assert_eq!(totals["clicks"], 2, "{totals}");
    assert_eq!(totals["unique_clicks"], 1, "{totals}");
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"clickback_duplicate_clicks_total{offer="o1"}"#),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn another_user_agent_on_the_same_ip_is_a_unique_click() {
    // Arrange
    let app = app_with_offer(json!({})).await;
    click_id_as(&app, "o1", "a1", BROWSER_UA).await;

    // Act
    click_id_as(&app, "o1", "a1", "Mozilla/5.0 (iPhone) Safari/604.1").await;

    // Assert
    let totals = app.totals().await;
    assert_eq!(totals["clicks"], 2, "{totals}");
    assert_eq!(totals["unique_clicks"], 2, "{totals}");
}

#[tokio::test]
async fn the_same_visitor_through_another_affiliate_is_a_unique_click() {
    // Arrange
    let app = app_with_offer(json!({})).await;
    app.create_affiliate("a2").await;
    click_id_as(&app, "o1", "a1", BROWSER_UA).await;

    // Act
    click_id_as(&app, "o1", "a2", BROWSER_UA).await;

    // Assert
    let totals = app.totals().await;
    assert_eq!(totals["clicks"], 2, "{totals}");
    assert_eq!(totals["unique_clicks"], 2, "{totals}");
    assert_eq!(
        metric_value(
            &app.metrics().await,
            r#"clickback_duplicate_clicks_total{offer="o1"}"#
        ),
        0.0
    );
}

#[tokio::test]
async fn with_the_unique_click_window_at_zero_every_click_is_unique() {
    // Arrange
    let app = spawn_app_tweaked(|s| s.unique_click_window_secs = 0).await;
    app.with_offer_and_affiliate().await;

    // Act
    for _ in 0..3 {
        click_id_as(&app, "o1", "a1", BROWSER_UA).await;
    }

    // Assert
    let totals = app.totals().await;
    assert_eq!(totals["clicks"], 3, "{totals}");
    assert_eq!(totals["unique_clicks"], 3, "{totals}");
    assert_eq!(
        metric_value(
            &app.metrics().await,
            r#"clickback_duplicate_clicks_total{offer="o1"}"#
        ),
        0.0
    );
}

#[tokio::test]
async fn both_clicks_of_a_repeating_visitor_can_be_credited() {
    // Arrange
    let app = app_with_offer(json!({})).await;
    let first = click_id_as(&app, "o1", "a1", BROWSER_UA).await;
    let second = click_id_as(&app, "o1", "a1", BROWSER_UA).await;

    // Act
    let a = postback_ok(&app, &first, "txid=t").await;
    let b = postback_ok(&app, &second, "txid=t").await;

    // Assert
    assert_eq!(a["status"], "credited", "{a}");
    assert_eq!(b["status"], "credited", "{b}");
    assert_eq!(app.totals().await["conversions"], 2);
}

// ---------------------------------------------------------------------------
// Postback log
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_postback_log_lists_an_offers_postbacks_newest_first_with_outcome_and_reason_and_no_token(
) {
    // Arrange
    let app = app_with_offer(json!({})).await;
    let click = app.click_id("o1", "a1").await;
    let wrong_token = "wrong-token-4711";
    let postbacks = [
        format!("click_id={click}&token={OFFER_TOKEN}&txid=t1"),
        format!("click_id={click}&token={OFFER_TOKEN}&txid=t1"),
        format!("click_id={click}&token={wrong_token}&txid=t1"),
    ];

    // Act: one at a time, each filed before the next is sent
    for (i, query) in postbacks.iter().enumerate() {
        app.postback(query).await;
        log_with(&app, "offer_id=o1", i + 1).await;
    }
    app.create_offer("o1", json!({"min_ctc_secs": 60})).await;
    let fresh_click = app.click_id("o1", "a1").await;
    postback_ok(&app, &fresh_click, "txid=t2").await;
    log_with(&app, "offer_id=o1", 4).await;
    let unknown = clickback::domain::ClickId::generate();
    let unknown_answer = app
        .postback(&format!(
            "click_id={}&token={OFFER_TOKEN}",
            unknown.as_str()
        ))
        .await;
    assert_eq!(unknown_answer.status(), 404);
    log_with(&app, "", 1).await;
    let (text, entries) = postback_log(&app, "offer_id=o1").await;

    // Assert
    let seen: Vec<(Value, Value)> = entries
        .iter()
        .map(|e| (e["outcome"].clone(), e["reason"].clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (json!("rejected"), json!("too_fast")),
            (json!("invalid_token"), json!("invalid_token")),
            (json!("duplicate"), Value::Null),
            (json!("credited"), Value::Null),
        ],
        "{text}"
    );
    assert_eq!(entries[0]["click_id"], fresh_click.as_str(), "{text}");
    assert_eq!(entries[1]["http_status"], 403, "{text}");
    assert_eq!(entries[3]["txid"], "t1", "{text}");
    assert!(!text.contains(OFFER_TOKEN), "the token leaks: {text}");
    assert!(!text.contains(wrong_token), "a wrong token leaks: {text}");
    assert!(!text.contains(unknown.as_str()), "{text}");
}

#[tokio::test]
async fn the_postback_log_with_limit_1_answers_only_the_newest_postback() {
    // Arrange
    let app = app_with_offer(json!({})).await;
    let click_id = app.click_id("o1", "a1").await;
    postback_ok(&app, &click_id, "txid=t1").await;
    log_with(&app, "offer_id=o1", 1).await;
    postback_ok(&app, &click_id, "txid=t2").await;
    log_with(&app, "offer_id=o1", 2).await;

    // Act
    let (text, entries) = postback_log(&app, "offer_id=o1&limit=1").await;

    // Assert
    assert_eq!(entries.len(), 1, "{text}");
    assert_eq!(entries[0]["txid"], "t2", "{text}");
}

#[tokio::test]
async fn postbacks_for_unknown_clicks_are_listed_without_an_offer_id() {
    // Arrange
    let app = app_with_offer(json!({})).await;
    let unknown = clickback::domain::ClickId::generate();

    // Act
    let response = app
        .postback(&format!(
            "click_id={}&token={OFFER_TOKEN}&txid=t",
            unknown.as_str()
        ))
        .await;
    assert_rejected(response, 404, "unknown_click").await;
    let entries = log_with(&app, "", 1).await;

    // Assert
    assert_eq!(entries[0]["outcome"], "unknown_click", "{entries:?}");
    assert_eq!(entries[0]["click_id"], unknown.as_str(), "{entries:?}");
    assert_eq!(entries[0]["http_status"], 404, "{entries:?}");
    let (_, offer_log) = postback_log(&app, "offer_id=o1").await;
    assert!(offer_log.is_empty(), "{offer_log:?}");
}

#[tokio::test]
async fn the_postback_log_requires_the_admin_token() {
    // Arrange
    let app = app_with_offer(json!({})).await;
    let url = format!("{}/api/v1/postbacks?offer_id=o1", app.address);

    // Act
    let anonymous = app.client.get(&url).send().await.expect("request sent");
    let wrong = app
        .client
        .get(&url)
        .bearer_auth("not-the-admin-token")
        .send()
        .await
        .expect("request sent");

    // Assert
    assert_eq!(anonymous.status(), 401);
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn the_postback_log_keeps_only_the_configured_number_of_entries_per_offer() {
    // Arrange
    let app = spawn_app_tweaked(|s| s.postback_log_size = 3).await;
    app.with_offer_and_affiliate().await;
    let click_id = app.click_id("o1", "a1").await;

    // Act
    for i in 1..=5 {
        let txid = format!("t{i}");
        postback_ok(&app, &click_id, &format!("txid={txid}")).await;
        let filed = eventually(Duration::from_secs(5), || async {
            postback_log(&app, "offer_id=o1&limit=1")
                .await
                .1
                .first()
                .is_some_and(|e| e["txid"] == txid.as_str())
        })
        .await;
        assert!(filed.is_some(), "postback {txid} never reached the log");
    }
    let (text, entries) = postback_log(&app, "offer_id=o1").await;

    // Assert
    let txids: Vec<&Value> = entries.iter().map(|e| &e["txid"]).collect();
    assert_eq!(txids, [&json!("t5"), &json!("t4"), &json!("t3")], "{text}");
}
