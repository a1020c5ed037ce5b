//! `/api/v1/offers` and `/api/v1/affiliates` (API.md §3, §7).

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// Every admin endpoint, as (method, path, JSON body).
fn admin_endpoints() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/offers", None),
        (Method::GET, "/api/v1/offers/o1", None),
        (Method::PUT, "/api/v1/offers/o2", Some(offer_body())),
        (Method::GET, "/api/v1/affiliates", None),
        (Method::GET, "/api/v1/affiliates/a1", None),
        (
            Method::PUT,
            "/api/v1/affiliates/a2",
            Some(json!({"name": "intruder", "status": "active"})),
        ),
        (Method::GET, "/api/v1/stats", None),
    ]
}

/// A request with any `Authorization` header (or none) and any raw body.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    body: Option<String>,
) -> reqwest::Response {
    let mut request = app.client.request(method, format!("{}{path}", app.address));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    request.send().await.expect("request sent")
}

/// `PUT` of a raw (possibly malformed) body with the right token.
async fn put_raw(app: &TestApp, path: &str, body: &str) -> reqwest::Response {
    send(
        app,
        Method::PUT,
        path,
        Some(&format!("Bearer {ADMIN_TOKEN}")),
        Some(body.to_owned()),
    )
    .await
}

/// [`offer_body`] with `changes` merged in.
fn offer_with(changes: Value) -> Value {
    let mut body = offer_body();
    for (k, v) in changes.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

async fn json_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200, "expected 200");
    response.json().await.expect("JSON body")
}

#[tokio::test]
async fn every_admin_endpoint_answers_401_without_a_bearer_token_and_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    for (method, path, body) in admin_endpoints() {
        // Act
        let response = send(
            &app,
            method.clone(),
            path,
            None,
            body.map(|b| b.to_string()),
        )
        .await;

        // Assert
        let body = assert_rejected(response, 401, "unauthorized").await;
        assert!(body.get("offers").is_none() && body.get("rows").is_none());
    }
    assert_eq!(
        app.admin_get("/api/v1/offers/o2").await.status(),
        404,
        "the unauthorized PUT created nothing"
    );
    assert_eq!(app.admin_get("/api/v1/affiliates/a2").await.status(), 404);
}

#[tokio::test]
async fn every_admin_endpoint_answers_401_to_a_wrong_token() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let wrong_headers = [
        "Bearer wrong-token".to_owned(),
        format!("Bearer {ADMIN_TOKEN}x"),
        format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]),
        "Bearer ".to_owned(),
        format!("Basic {ADMIN_TOKEN}"),
        ADMIN_TOKEN.to_owned(),
    ];

    for header in &wrong_headers {
        for (method, path, body) in admin_endpoints() {
            // Act
            let response = send(
                &app,
                method.clone(),
                path,
                Some(header),
                body.map(|b| b.to_string()),
            )
            .await;

            // Assert
            assert_eq!(
                response.status(),
                401,
                "{method} {path} with Authorization: {header}"
            );
            assert_rejected(response, 401, "unauthorized").await;
        }
    }
    assert_eq!(app.admin_get("/api/v1/offers/o2").await.status(), 404);
    assert_eq!(app.admin_get("/api/v1/affiliates/a2").await.status(), 404);
}

#[tokio::test]
async fn without_a_configured_admin_token_the_admin_api_refuses_everything() {
    // Arrange
    let app = spawn_app_tweaked(|settings| settings.admin_token = None).await;
    assert!(app.state.admin_token.is_none(), "precondition: no token");

    for authorization in [
        None,
        Some(format!("Bearer {ADMIN_TOKEN}")),
        Some("Bearer ".to_owned()),
        Some("Bearer anything".to_owned()),
    ] {
        for (method, path, body) in admin_endpoints() {
            // Act
            let response = send(
                &app,
                method.clone(),
                path,
                authorization.as_deref(),
                body.map(|b| b.to_string()),
            )
            .await;

            // Assert
            assert_eq!(
                response.status(),
                401,
                "{method} {path} with {authorization:?}"
            );
            assert_rejected(response, 401, "unauthorized").await;
        }
    }
    let click = app.click("o2", "aff_id=a2").await;
    assert_rejected(click, 404, "unknown_offer").await;
}

#[tokio::test]
async fn putting_the_api_md_example_offer_answers_the_stored_offer() {
    // Arrange
    let app = spawn_app().await;
    let body = json!({
        "name": "Shop", "url": "https://shop.example/", "click_id_param": "click_id",
        "payout": "2.50", "payout_percent": null, "revenue": null, "currency": "EUR",
        "attribution_window_secs": 2592000, "postback_token": "s3cr3t-token",
        "status": "active"
    });
    let expected = json!({
        "id": "shop1", "name": "Shop", "url": "https://shop.example/",
        "click_id_param": "click_id", "payout": "2.5", "payout_percent": null,
        "revenue": null, "currency": "EUR", "attribution_window_secs": 2592000,
        "postback_token": "s3cr3t-token", "status": "active",
        "min_ctc_secs": 0, "postback_ips": [], "postback_signing_secret": null,
        "fallback_url": null, "caps": []
    });

    // Act
    let answered = json_of(app.put_offer("shop1", &body).await).await;
    let fetched = json_of(app.admin_get("/api/v1/offers/shop1").await).await;

    // Assert
    assert_eq!(answered, expected);
    assert_eq!(fetched, expected, "GET answers what PUT stored");
}

#[tokio::test]
async fn a_fetched_offer_can_be_put_back_unchanged() {
    // Arrange
    let app = spawn_app().await;
    let created = app.create_offer("o1", json!({})).await;

    // Act
    let again = json_of(app.put_offer("o1", &created).await).await;

    // Assert
    assert_eq!(again, created);
}

#[tokio::test]
async fn offers_are_listed_by_id_and_fetched_one_by_one() {
    // Arrange
    let app = spawn_app().await;
    let empty = json_of(app.admin_get("/api/v1/offers").await).await;
    app.create_offer("o2", json!({"name": "Second"})).await;
    app.create_offer("o1", json!({"name": "First"})).await;

    // Act
    let list = json_of(app.admin_get("/api/v1/offers").await).await;
    let one = json_of(app.admin_get("/api/v1/offers/o2").await).await;

    // Assert
    assert_eq!(empty, json!({"offers": []}));
    let offers = list["offers"].as_array().expect("offers array");
    let ids: Vec<&str> = offers.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["o1", "o2"]);
    assert_eq!(offers[0]["name"], "First");
    assert_eq!(offers[0]["payout"], "2.5");
    assert_eq!(offers[0]["currency"], "EUR");
    assert_eq!(one["id"], "o2");
    assert_eq!(one["name"], "Second");
    assert_eq!(one, offers[1], "GET one answers what the list shows");
}

#[tokio::test]
async fn unknown_offers_and_affiliates_are_404() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let offer = app.admin_get("/api/v1/offers/nope").await;
    let affiliate = app.admin_get("/api/v1/affiliates/nope").await;

    // Assert
    assert_rejected(offer, 404, "unknown_offer").await;
    assert_rejected(affiliate, 404, "unknown_affiliate").await;
}

#[tokio::test]
async fn putting_an_offer_again_replaces_it_and_clicks_follow_immediately() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act: a new payout
    let replaced = json_of(
        app.put_offer("o1", &offer_with(json!({"payout": "3.75"})))
            .await,
    )
    .await;
    let click_id = app.click_id("o1", "a1").await;
    let credit: Value = app
        .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}&txid=t1"))
        .await
        .json()
        .await
        .expect("postback json");

    // Assert
    assert_eq!(replaced["payout"], "3.75");
    assert_eq!(
        json_of(app.admin_get("/api/v1/offers/o1").await).await["payout"],
        "3.75"
    );
    assert_eq!(credit["status"], "credited");
    assert_eq!(credit["payout"], "3.75", "the new payout applies at once");

    // Act: paused
    let paused = json_of(
        app.put_offer("o1", &offer_with(json!({"status": "paused"})))
            .await,
    )
    .await;
    let while_paused = app.click("o1", "aff_id=a1").await;

    // Assert
    assert_eq!(paused["status"], "paused");
    assert_rejected(while_paused, 404, "unknown_offer").await;
    let listed = json_of(app.admin_get("/api/v1/offers").await).await;
    assert_eq!(listed["offers"][0]["status"], "paused", "still listed");

    // Act: active again
    app.put_offer("o1", &offer_body()).await;
    let resumed = app.click("o1", "aff_id=a1").await;

    // Assert
    assert_eq!(resumed.status(), 302);
    assert!(click_id_from(&location(&resumed)).is_some());
}

#[tokio::test]
async fn invalid_offer_bodies_are_refused_with_400_and_change_nothing() {
    // Arrange
    let app = spawn_app().await;
    let original = app.create_offer("o1", json!({})).await;
    let bad_bodies = [
        (
            "relative url",
            offer_with(json!({"url": "/landing"})).to_string(),
        ),
        (
            "ftp url",
            offer_with(json!({"url": "ftp://shop.example/"})).to_string(),
        ),
        (
            "macro in host",
            offer_with(json!({"url": "https://{sub1}.x/"})).to_string(),
        ),
        ("no url", json!({"name": "x", "payout": "1"}).to_string()),
        (
            "payout and payout_percent",
            offer_with(json!({"payout": "1", "payout_percent": "5"})).to_string(),
        ),
        (
            "negative payout",
            offer_with(json!({"payout": "-1"})).to_string(),
        ),
        (
            "payout with 7 decimals",
            offer_with(json!({"payout": "0.1234567"})).to_string(),
        ),
        (
            "payout_percent over 100",
            offer_with(json!({"payout": null, "payout_percent": "101"})).to_string(),
        ),
        (
            "unknown field",
            offer_with(json!({"payuot": "9"})).to_string(),
        ),
        (
            "bad status",
            offer_with(json!({"status": "deleted"})).to_string(),
        ),
        (
            "bad currency",
            offer_with(json!({"currency": "EURO"})).to_string(),
        ),
        (
            "zero attribution window",
            offer_with(json!({"attribution_window_secs": 0})).to_string(),
        ),
        (
            "short postback token",
            offer_with(json!({"postback_token": "short"})).to_string(),
        ),
        (
            "body id differs",
            offer_with(json!({"id": "o2"})).to_string(),
        ),
        (
            "malformed JSON",
            r#"{"url": "https://shop.example/""#.to_owned(),
        ),
        ("not an object", r#"["https://shop.example/"]"#.to_owned()),
        ("empty body", String::new()),
    ];

    for (what, body) in bad_bodies {
        // Act
        let response = put_raw(&app, "/api/v1/offers/o1", &body).await;

        // Assert
        assert_eq!(response.status(), 400, "{what}: {body}");
        assert_rejected(response, 400, "invalid_request").await;
    }
    let after = json_of(app.admin_get("/api/v1/offers/o1").await).await;
    assert_eq!(after, original, "no refused body changed the offer");
}

#[tokio::test]
async fn offer_ids_in_the_path_follow_the_identifier_rules() {
    // Arrange
    let app = spawn_app().await;
    let longest = "a".repeat(64);
    let too_long = "a".repeat(65);

    // Act & Assert
    for bad in ["a%20b", "a.b", "%C3%A9t%C3%A9", too_long.as_str()] {
        let response = app.put_offer(bad, &offer_body()).await;
        assert_eq!(response.status(), 400, "offer id {bad:?}");
        assert_rejected(response, 400, "invalid_request").await;
    }
    let ok = json_of(app.put_offer(&longest, &offer_body()).await).await;
    assert_eq!(ok["id"], longest.as_str());
    let listed = json_of(app.admin_get("/api/v1/offers").await).await;
    assert_eq!(
        listed["offers"].as_array().map(Vec::len),
        Some(1),
        "only the valid id was stored: {listed}"
    );
}

#[tokio::test]
async fn affiliates_are_created_listed_fetched_and_replaced() {
    // Arrange
    let app = spawn_app().await;
    app.create_offer("o1", json!({})).await;
    let empty = json_of(app.admin_get("/api/v1/affiliates").await).await;

    // Act
    let created = json_of(
        app.put_affiliate(
            "a2",
            &json!({"name": "Second", "status": "active",
                    "postback_url": "https://aff.example/pb?cid={click_id}&p={payout}"}),
        )
        .await,
    )
    .await;
    app.create_affiliate("a1").await;
    let list = json_of(app.admin_get("/api/v1/affiliates").await).await;
    let one = json_of(app.admin_get("/api/v1/affiliates/a2").await).await;

    // Assert
    assert_eq!(empty, json!({"affiliates": []}));
    assert_eq!(
        created,
        json!({"id": "a2", "name": "Second", "status": "active",
               "postback_url": "https://aff.example/pb?cid={click_id}&p={payout}",
               "offer_postback_urls": {}})
    );
    assert_eq!(one, created);
    let ids: Vec<&str> = list["affiliates"]
        .as_array()
        .expect("affiliates array")
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a1", "a2"]);
    assert_eq!(app.click("o1", "aff_id=a2").await.status(), 302);

    // Act: paused
    let paused = json_of(
        app.put_affiliate("a2", &json!({"name": "Second", "status": "paused"}))
            .await,
    )
    .await;
    let click = app.click("o1", "aff_id=a2").await;

    // Assert
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["postback_url"], Value::Null, "replaced, not merged");
    assert_rejected(click, 404, "unknown_affiliate").await;
    assert_eq!(
        app.click("o1", "aff_id=a1").await.status(),
        302,
        "other affiliates unaffected"
    );
}

#[tokio::test]
async fn invalid_affiliate_bodies_and_ids_are_refused_with_400_and_change_nothing() {
    // Arrange
    let app = spawn_app().await;
    app.create_affiliate("a1").await;
    let original = json_of(app.admin_get("/api/v1/affiliates/a1").await).await;
    let bad_bodies = [
        json!({"name": "x", "postback_url": "/pb?cid={click_id}"}).to_string(),
        json!({"name": "x", "postback_url": "ftp://aff.example/pb"}).to_string(),
        json!({"name": "x", "postback_url": "aff.example/pb"}).to_string(),
        json!({"name": "x", "postback_url": "https://{sub1}.aff.example/"}).to_string(),
        json!({"name": "x", "status": "deleted"}).to_string(),
        json!({"name": "x", "colour": "red"}).to_string(),
        json!({"name": "x", "id": "a2"}).to_string(),
        r#"{"name": "x""#.to_owned(),
        String::new(),
    ];

    for body in &bad_bodies {
        // Act
        let response = put_raw(&app, "/api/v1/affiliates/a1", body).await;

        // Assert
        assert_eq!(response.status(), 400, "{body}");
        assert_rejected(response, 400, "invalid_request").await;
    }
    for bad_id in ["a%20b".to_owned(), "b".repeat(65)] {
        let response = app
            .put_affiliate(&bad_id, &json!({"name": "x", "status": "active"}))
            .await;
        assert_rejected(response, 400, "invalid_request").await;
    }
    assert_eq!(
        json_of(app.admin_get("/api/v1/affiliates/a1").await).await,
        original
    );
    let list = json_of(app.admin_get("/api/v1/affiliates").await).await;
    assert_eq!(list["affiliates"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_offer_created_and_paused_through_one_instance_reaches_another_within_5_seconds() {
    // Arrange: two instances on one Redis and prefix; B polls at the default period.
    let a = spawn_app().await;
    let b = spawn_sibling(&a, |s| {
        s.config_refresh = clickback::config::Settings::default().config_refresh
    })
    .await;
    a.create_affiliate("a1").await;
    assert_eq!(b.click("o1", "aff_id=a1").await.status(), 404);

    // Act: create through A
    a.create_offer("o1", json!({})).await;
    let created_after = eventually(Duration::from_secs(5), || async {
        b.click("o1", "aff_id=a1").await.status() == 302
    })
    .await;

    // Assert
    assert!(created_after.is_some(), "B never saw the new offer");
    let click_id = b.click_id("o1", "a1").await;
    let credit = a
        .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}&txid=t"))
        .await;
    assert_eq!(credit.status(), 200, "a click on B converts through A");

    // Act: pause through A
    a.put_offer("o1", &offer_with(json!({"status": "paused"})))
        .await;
    let paused_after = eventually(Duration::from_secs(5), || async {
        b.click("o1", "aff_id=a1").await.status() == 404
    })
    .await;

    // Assert
    assert!(
        paused_after.is_some(),
        "B kept sending traffic to a paused offer"
    );
    assert_eq!(
        json_of(b.admin_get("/api/v1/offers/o1").await).await["status"],
        "paused"
    );
    drop(b);
}

#[tokio::test]
async fn a_fetched_offer_shows_the_normalised_urls_that_clicks_use() {
    // Arrange
    let app = spawn_app().await;
    let body = offer_with(json!({
        "url": "https://магазин.рф/landing?q=a\u{2028}b&c={click_id}&s={sub1}",
        "fallback_url": "https://Shop.Example:443/вход?x=\u{2028}",
    }));

    // Act
    let answered = json_of(app.put_offer("ru", &body).await).await;
    let fetched = json_of(app.admin_get("/api/v1/offers/ru").await).await;
    let put_back = json_of(app.put_offer("ru", &fetched).await).await;

    // Assert
    assert_eq!(
        fetched["url"],
        "https://xn--80aairftm.xn--p1ai/landing?q=a%E2%80%A8b&c={click_id}&s={sub1}"
    );
    assert_eq!(
        fetched["fallback_url"],
        "https://shop.example/%D0%B2%D1%85%D0%BE%D0%B4?x=%E2%80%A8"
    );
    assert_eq!(answered, fetched, "PUT answers what GET shows");
    assert_eq!(put_back, fetched, "a normalised offer stays as it is");
}

#[tokio::test]
async fn an_offer_url_that_cannot_be_normalised_is_refused_naming_the_field() {
    // Arrange
    let app = spawn_app().await;
    let original = app.create_offer("o1", json!({})).await;
    let bad = [
        ("url", offer_with(json!({"url": "https://xn--a.example/"}))),
        (
            "url",
            offer_with(json!({"url": "https://shop\u{2028}.example/"})),
        ),
        (
            "fallback_url",
            offer_with(json!({"fallback_url": "https://xn--a.example/"})),
        ),
        (
            "fallback_url",
            offer_with(json!({"fallback_url": "https://shop\u{2028}.example/"})),
        ),
    ];

    for (field, body) in bad {
        // Act
        let response = app.put_offer("o1", &body).await;

        // Assert
        let refusal = assert_rejected(response, 400, "invalid_request").await;
        let detail = refusal["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with(&format!("{field} ")),
            "{body}: the detail {detail:?} names {field}"
        );
    }
    let after = json_of(app.admin_get("/api/v1/offers/o1").await).await;
    assert_eq!(after, original, "no refused body changed the offer");
}

#[tokio::test]
async fn an_offer_without_a_payout_or_a_currency_is_refused_naming_every_missing_field() {
    // Arrange
    let app = spawn_app().await;
    let mut no_payout_no_currency = offer_body();
    let fields = no_payout_no_currency.as_object_mut().expect("object");
    fields.remove("payout");
    fields.remove("payout_percent");
    fields.remove("currency");
    let mut no_currency = offer_body();
    no_currency
        .as_object_mut()
        .expect("object")
        .remove("currency");
    let cases = [
        (
            no_payout_no_currency,
            "missing fields: payout or payout_percent, currency",
        ),
        (
            offer_with(json!({"payout": null, "payout_percent": null})),
            "missing field: payout or payout_percent",
        ),
        (no_currency, "missing field: currency"),
        (
            offer_with(json!({"currency": null})),
            "missing field: currency",
        ),
        (
            json!({"name": "nothing else"}),
            "missing fields: url, payout or payout_percent, currency",
        ),
    ];

    for (body, detail) in cases {
        // Act
        let response = app.put_offer("o1", &body).await;

        // Assert
        let refusal = assert_rejected(response, 400, "invalid_request").await;
        assert_eq!(refusal["detail"], detail, "{body}");
    }
    assert_eq!(
        app.admin_get("/api/v1/offers/o1").await.status(),
        404,
        "no offer was saved"
    );
}

#[tokio::test]
async fn an_offer_with_a_payout_percent_and_no_fixed_payout_is_accepted() {
    // Arrange
    let mut body = offer_body();
    body.as_object_mut().expect("object").remove("payout");
    body["payout_percent"] = json!("12.5");
    let app = spawn_app().await;

    // Act
    let saved = json_of(app.put_offer("o1", &body).await).await;

    // Assert
    assert_eq!(saved["payout"], Value::Null);
    assert_eq!(saved["payout_percent"], "12.5");
    assert_eq!(saved["currency"], "EUR");
}
