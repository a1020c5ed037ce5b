//! `/healthz`, `/readyz` and `/metrics` (API.md §4).

use serde_json::Value;

use crate::helpers::*;

const TRACKED: &str = r#"clickback_clicks_total{offer="o1",result="tracked"}"#;
const CREDITED: &str = r#"clickback_postbacks_total{result="credited"}"#;
const DUPLICATE: &str = r#"clickback_postbacks_total{result="duplicate"}"#;
const CONVERSIONS: &str = r#"clickback_conversions_total{offer="o1"}"#;
const PAYOUT: &str = r#"clickback_payout_total{currency="EUR",offer="o1"}"#;

/// The sum of every sample of `name` (any labels).
fn metric_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn healthz_answers_200() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.get("/healthz").await;

    // Assert
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn readyz_answers_200_while_redis_answers() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app.get("/readyz").await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("readyz json");
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn metrics_is_prometheus_text_with_every_documented_family() {
    // Arrange: one click and one postback, so that every family has a sample
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let fresh = app.metrics().await;
    let click_id = app.click_id("o1", "a1").await;
    app.postback(&format!("click_id={click_id}&token={OFFER_TOKEN}&txid=t1"))
        .await;

    // Act
    let response = app.get("/metrics").await;

    // Assert
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("metrics text");
    for (family, kind) in [
        ("clickback_clicks_total", "counter"),
        ("clickback_postbacks_total", "counter"),
        ("clickback_conversions_total", "counter"),
        ("clickback_payout_total", "counter"),
        ("clickback_http_request_duration_seconds", "histogram"),
        ("clickback_store_errors_total", "counter"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}")),
            "{family} is a {kind}:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has help:\n{text}"
        );
    }
    assert!(
        fresh.contains("# TYPE clickback_store_errors_total counter"),
        "store errors are exported before the first error, so alerts can use them:\n{fresh}"
    );
    assert_eq!(
        metric_sum(&text, "clickback_store_errors_total"),
        0.0,
        "no store errors while Redis is healthy"
    );
}

#[tokio::test]
async fn clicks_total_moves_by_exactly_the_number_of_tracked_clicks() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let before = metric_value(&app.metrics().await, TRACKED);

    // Act
    for _ in 0..5 {
        app.click_id("o1", "a1").await;
    }
    let text = app.metrics().await;

    // Assert
    assert_eq!(metric_value(&text, TRACKED) - before, 5.0, "{text}");
}

#[tokio::test]
async fn postbacks_conversions_and_payout_are_counted_by_result_offer_and_currency() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let first = app.click_id("o1", "a1").await;
    let second = app.click_id("o1", "a1").await;
    let before = app.metrics().await;

    // Act: two credits and one duplicate
    for (click_id, txid) in [(&first, "t1"), (&second, "t2"), (&first, "t1")] {
        let response = app
            .postback(&format!(
                "click_id={click_id}&token={OFFER_TOKEN}&txid={txid}"
            ))
            .await;
        assert_eq!(response.status(), 200);
    }
    let after = app.metrics().await;

    // Assert
    let moved = |series: &str| metric_value(&after, series) - metric_value(&before, series);
    assert_eq!(moved(CREDITED), 2.0, "{after}");
    assert_eq!(moved(DUPLICATE), 1.0, "{after}");
    assert_eq!(moved(CONVERSIONS), 2.0, "{after}");
    assert!((moved(PAYOUT) - 5.0).abs() < 1e-9, "{after}");
}

#[tokio::test]
async fn request_latency_is_labelled_by_route_template_never_by_raw_path() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let click_id = app.click_id("o1", "a1").await;
    app.postback(&format!("click_id={click_id}&token={OFFER_TOKEN}&txid=t1"))
        .await;
    app.get(&format!("/c/{click_id}?aff_id=a1")).await;
    app.get(&format!("/no/such/{click_id}")).await;
    let text = app.metrics().await;

    // Assert
    let count_line = text
        .lines()
        .find(|l| {
            l.starts_with("clickback_http_request_duration_seconds_count{")
                && l.contains(r#"route="/c/{offer_id}""#)
                && l.contains(r#"status="302""#)
        })
        .unwrap_or_else(|| panic!("no latency sample for the click route:\n{text}"));
    assert!(count_line.ends_with(" 1"), "{count_line}");
    assert!(text.contains(r#"clickback_http_request_duration_seconds_bucket{"#));
    assert!(text.contains(r#"route="/postback""#), "{text}");
    assert_not_a_label(&text, &click_id, "a click id");
    assert_not_a_label(&text, "/c/o1", "a raw path");
    assert_not_a_label(&text, "/no/such", "a raw path");
}

#[tokio::test]
async fn unknown_offer_ids_do_not_become_metric_labels() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let invented = "invented-offer-4711";

    // Act
    let response = app.click(invented, "aff_id=a1").await;
    let text = app.metrics().await;

    // Assert
    assert_eq!(response.status(), 404);
    assert!(!text.contains(invented), "{text}");
    assert_eq!(
        metric_value(
            &text,
            r#"clickback_clicks_total{offer="",result="unknown_offer"}"#
        ),
        1.0,
        "{text}"
    );
}

#[tokio::test]
async fn latency_is_labelled_by_route_template_and_known_methods_only() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let invented = reqwest::Method::from_bytes(b"BREW").expect("a method token");

    // Act: a wrong method on a known route, an invented method, a junk path
    // (the router answers the first two with a 4xx; which one is its business)
    let wrong_method = app
        .client
        .delete(format!("{}/c/o1?aff_id=a1", app.address))
        .send()
        .await
        .expect("DELETE answered");
    let invented_method = app
        .client
        .request(invented, format!("{}/postback", app.address))
        .send()
        .await
        .expect("BREW answered");
    let junk = app.get("/wp-login.php").await;
    let text = app.metrics().await;

    // Assert
    assert!(wrong_method.status().is_client_error());
    assert!(invented_method.status().is_client_error());
    assert_eq!(junk.status(), 404);
    let count = |labels: &str| {
        metric_value(
            &text,
            &format!("clickback_http_request_duration_seconds_count{{{labels}}}"),
        )
    };
    assert_eq!(
        count(&format!(
            r#"method="DELETE",route="/c/{{offer_id}}",status="{}""#,
            wrong_method.status().as_u16()
        )),
        1.0,
        "{text}"
    );
    assert_eq!(
        count(&format!(
            r#"method="other",route="/postback",status="{}""#,
            invented_method.status().as_u16()
        )),
        1.0,
        "{text}"
    );
    assert_eq!(
        count(r#"method="GET",route="unmatched",status="404""#),
        1.0,
        "{text}"
    );
    assert_not_a_label(&text, "BREW", "an invented method");
    assert_not_a_label(&text, "wp-login", "a raw path");
}

/// Asserts that `value` (an id, a raw path, a method) appears nowhere in the
/// metrics text: each distinct value would be a time series of its own.
fn assert_not_a_label(text: &str, value: &str, what: &str) {
    assert!(!text.contains(value), "{what} became a label:\n{text}");
}
