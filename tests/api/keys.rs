//! API keys and the scoped `/api/v1/me` views: each party sees its own
//! rows and nothing else, a revoked key stops working on every instance,
//! failed authentication is rate-limited (API.md §8).

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// `POST /api/v1/keys` with the admin token; answers (key id, secret).
pub async fn create_key(app: &TestApp, body: Value) -> (String, String) {
    let response = app
        .client
        .post(format!("{}/api/v1/keys", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 201, "key created");
    let created: Value = response.json().await.expect("json");
    (
        created["id"].as_str().expect("id").to_owned(),
        created["secret"].as_str().expect("secret").to_owned(),
    )
}

/// `GET <path>` with `secret` as the bearer.
pub async fn get_as(app: &TestApp, secret: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .bearer_auth(secret)
        .send()
        .await
        .expect("request sent")
}

/// Creates advertiser `id` with `show_payouts`.
pub async fn create_advertiser(app: &TestApp, id: &str, show_payouts: bool) {
    let response = app
        .admin_put(
            &format!("/api/v1/advertisers/{id}"),
            &json!({"name": id, "show_payouts": show_payouts}),
        )
        .await;
    assert_eq!(response.status(), 200, "advertiser {id} created");
}

/// Two advertisers with an offer each (`o1` of `adv1`, `o2` of `adv2`), two
/// affiliates, and one approved conversion for each affiliate on each offer.
pub async fn two_of_everything(app: &TestApp) {
    create_advertiser(app, "adv1", false).await;
    create_advertiser(app, "adv2", false).await;
    app.create_offer("o1", json!({"advertiser_id": "adv1"}))
        .await;
    app.create_offer("o2", json!({"advertiser_id": "adv2"}))
        .await;
    app.create_affiliate("a1").await;
    app.create_affiliate("a2").await;
    for offer in ["o1", "o2"] {
        for aff in ["a1", "a2"] {
            let click = app.click_id(offer, aff).await;
            postback_ok(app, &click, "amount=10").await;
        }
    }
}

fn field_values(rows: &[Value], field: &str) -> Vec<String> {
    let mut values: Vec<String> = rows
        .iter()
        .map(|r| r[field].as_str().unwrap_or("").to_owned())
        .collect();
    values.sort();
    values.dedup();
    values
}

#[tokio::test]
async fn an_affiliate_key_reads_only_its_own_rows_and_never_revenue() {
    // Arrange
    let app = spawn_app().await;
    two_of_everything(&app).await;
    let (_, secret) = create_key(&app, json!({"role": "affiliate", "aff_id": "a1"})).await;

    // Act
    let stats =
        ok_json(get_as(&app, &secret, "/api/v1/me/stats?group_by=offer,affiliate").await).await;
    let conversions = ok_json(get_as(&app, &secret, "/api/v1/me/conversions").await).await;
    let offers = ok_json(get_as(&app, &secret, "/api/v1/me/offers").await).await;

    // Assert
    let rows = stats["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "one row per offer, a1's only: {rows:?}");
    assert_eq!(field_values(rows, "aff_id"), vec!["a1"]);
    assert!(rows
        .iter()
        .all(|r| r.get("revenue").is_none() && r["payout"] == "2.5"));
    let listed = conversions["conversions"].as_array().expect("conversions");
    assert_eq!(listed.len(), 2);
    assert_eq!(field_values(listed, "aff_id"), vec!["a1"]);
    assert!(listed.iter().all(|c| c.get("revenue").is_none()));
    assert!(!conversions.to_string().contains("\"revenue\""));
    let offers = offers["offers"].as_array().expect("offers");
    assert_eq!(offers.len(), 2);
    let link = offers[0]["tracking_link"].as_str().expect("a link");
    assert!(link.ends_with("/c/o1?aff_id=a1"), "{link}");
    assert!(
        !offers[0].to_string().contains(OFFER_TOKEN),
        "no postback token"
    );
    let followed = app
        .get(
            link.split_once("/c/")
                .map(|(_, rest)| format!("/c/{rest}"))
                .as_deref()
                .expect("path"),
        )
        .await;
    assert_eq!(followed.status(), 302, "the tracking link works");
}

#[tokio::test]
async fn a_scoped_key_outside_its_scope_gets_404_and_no_key_gets_401() {
    // Arrange
    let app = spawn_app().await;
    two_of_everything(&app).await;
    let (_, affiliate) = create_key(&app, json!({"role": "affiliate", "aff_id": "a1"})).await;
    let (_, advertiser) =
        create_key(&app, json!({"role": "advertiser", "advertiser_id": "adv1"})).await;

    for (secret, path) in [
        (&affiliate, "/api/v1/me/stats?aff_id=a2"),
        (&affiliate, "/api/v1/me/conversions?aff_id=a2"),
        (&affiliate, "/api/v1/me/postbacks"),
        (&affiliate, "/api/v1/me/postbacks?offer_id=o1"),
        (&affiliate, "/api/v1/offers"),
        (&affiliate, "/api/v1/stats"),
        (&affiliate, "/api/v1/conversions"),
        (&affiliate, "/api/v1/keys"),
        (&affiliate, "/api/v1/audit"),
        (&affiliate, "/api/v1/affiliates/a2/deliveries"),
        (&advertiser, "/api/v1/me/postbacks?offer_id=o2"),
        (&advertiser, "/api/v1/me/stats?offer_id=o2"),
        (&advertiser, "/api/v1/me/conversions?offer_id=o2"),
        (&advertiser, "/api/v1/me/conversions?advertiser_id=adv2"),
        (&advertiser, "/api/v1/me/deliveries"),
        (&advertiser, "/api/v1/advertisers/adv1"),
    ] {
        // Act
        let response = get_as(&app, secret, path).await;

        // Assert
        let body = assert_rejected(response, 404, "not_found").await;
        assert!(
            !body.to_string().contains("a2") && !body.to_string().contains("o2"),
            "{path}: {body}"
        );
    }
    let anonymous = app.get("/api/v1/me").await;
    assert_rejected(anonymous, 401, "unauthorized").await;
}

#[tokio::test]
async fn an_advertiser_key_sees_its_offers_log_without_payouts_unless_the_network_allows() {
    // Arrange
    let app = spawn_app().await;
    two_of_everything(&app).await;
    let (_, secret) =
        create_key(&app, json!({"role": "advertiser", "advertiser_id": "adv1"})).await;

    // Act
    let hidden = ok_json(get_as(&app, &secret, "/api/v1/me/conversions").await).await;
    let log = eventually(Duration::from_secs(5), || async {
        let log = ok_json(get_as(&app, &secret, "/api/v1/me/postbacks").await).await;
        log["postbacks"].as_array().is_some_and(|p| p.len() == 2)
    })
    .await;
    let postbacks = ok_json(get_as(&app, &secret, "/api/v1/me/postbacks").await).await;
    let stats = ok_json(get_as(&app, &secret, "/api/v1/me/stats?group_by=offer").await).await;
    create_advertiser(&app, "adv1", true).await;
    let shown = ok_json(get_as(&app, &secret, "/api/v1/me/conversions").await).await;

    // Assert
    let listed = hidden["conversions"].as_array().expect("conversions");
    assert_eq!(listed.len(), 2);
    assert_eq!(field_values(listed, "offer_id"), vec!["o1"]);
    assert!(listed
        .iter()
        .all(|c| c.get("payout").is_none() && c["revenue"] == "4"));
    assert!(log.is_some(), "the log of o1 filled");
    let entries = postbacks["postbacks"].as_array().expect("entries");
    assert!(
        entries.iter().all(|e| e.get("payout").is_none()),
        "{entries:?}"
    );
    let rows = stats["rows"].as_array().expect("rows");
    assert_eq!(field_values(rows, "offer_id"), vec!["o1"]);
    assert!(rows
        .iter()
        .all(|r| r.get("payout").is_none() && r.get("pending_payout").is_none()));
    let listed = shown["conversions"].as_array().expect("conversions");
    assert!(listed.iter().all(|c| c["payout"] == "2.5"), "{listed:?}");
}

#[tokio::test]
async fn a_revoked_key_fails_on_another_instance_within_the_refresh_period() {
    // Arrange
    let app = spawn_app().await;
    let sibling = spawn_sibling(&app, |_| {}).await;
    app.create_affiliate("a1").await;
    let (id, secret) = create_key(&app, json!({"role": "affiliate", "aff_id": "a1"})).await;
    let known = eventually(Duration::from_secs(5), || async {
        get_as(&sibling, &secret, "/api/v1/me").await.status() == 200
    })
    .await;
    assert!(known.is_some(), "the other instance learns the key");

    // Act
    let revoked = app
        .client
        .delete(format!("{}/api/v1/keys/{id}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request sent");

    // Assert
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        get_as(&app, &secret, "/api/v1/me").await.status(),
        401,
        "at once here"
    );
    let refresh = test_settings(None, "").config_refresh;
    let gone = eventually(refresh * 5, || async {
        get_as(&sibling, &secret, "/api/v1/me").await.status() == 401
    })
    .await;
    assert!(
        gone.is_some(),
        "refused on the other instance within the refresh period"
    );
}

#[tokio::test]
async fn a_keys_secret_is_answered_once_stored_only_as_a_hash_and_listed_with_last_use() {
    // Arrange
    let app = spawn_app().await;
    let (id, secret) = create_key(&app, json!({"role": "admin", "name": "ci"})).await;

    // Act
    let me = ok_json(get_as(&app, &secret, "/api/v1/me").await).await;
    let used = eventually(Duration::from_secs(5), || async {
        let keys = ok_json(app.admin_get("/api/v1/keys").await).await;
        keys["keys"][0]["last_used_at"].as_u64().is_some()
    })
    .await;
    let keys = ok_json(app.admin_get("/api/v1/keys").await).await;

    // Assert
    assert_eq!(me, json!({"role": "admin", "key_id": id}));
    assert!(used.is_some(), "the use is recorded");
    assert_eq!(keys["keys"][0]["id"], id.as_str());
    assert_eq!(keys["keys"][0]["name"], "ci");
    assert_eq!(keys["keys"][0]["last_used_at"], app.clock.now());
    let listed = keys.to_string();
    assert!(
        !listed.contains(&secret) && !listed.contains("secret"),
        "{listed}"
    );
    assert!(
        app.stored_text().iter().all(|text| !text.contains(&secret)),
        "the secret is stored nowhere"
    );
}

#[tokio::test]
async fn an_admin_key_does_what_the_admin_token_does_and_is_audited_by_its_id() {
    // Arrange
    let app = spawn_app().await;
    let (id, secret) = create_key(&app, json!({"role": "admin"})).await;
    let mut body = offer_body();
    body["name"] = json!("by key");

    // Act
    let put = app
        .client
        .put(format!("{}/api/v1/offers/k1", app.address))
        .bearer_auth(&secret)
        .json(&body)
        .send()
        .await
        .expect("request sent");
    let listed = ok_json(get_as(&app, &secret, "/api/v1/keys").await).await;
    let audit = ok_json(app.admin_get("/api/v1/audit").await).await;

    // Assert
    assert_eq!(put.status(), 200);
    assert_eq!(listed["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(audit["entries"][0]["actor"], id.as_str());
    assert_eq!(audit["entries"][0]["action"], "offer.put");
}

#[tokio::test]
async fn keys_for_unknown_parties_or_with_mixed_up_roles_are_refused() {
    // Arrange
    let app = spawn_app().await;
    app.create_affiliate("a1").await;

    for body in [
        json!({"role": "affiliate", "aff_id": "nobody"}),
        json!({"role": "advertiser", "advertiser_id": "nobody"}),
        json!({"role": "advertiser", "aff_id": "a1"}),
        json!({"role": "root"}),
        json!({"role": "admin", "extra": true}),
    ] {
        // Act
        let response = app
            .client
            .post(format!("{}/api/v1/keys", app.address))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request sent");

        // Assert
        assert_rejected(response, 400, "invalid_request").await;
    }
    let keys = ok_json(app.admin_get("/api/v1/keys").await).await;
    assert_eq!(keys["keys"], json!([]));
}

#[tokio::test]
async fn failed_authentication_is_rate_limited_per_address_and_counted() {
    // Arrange
    let app = spawn_app().await;
    let burst = clickback::access::limit::BURST;
    for _ in 0..burst {
        let wrong = get_as(&app, "wrong-token", "/api/v1/me").await;
        assert_eq!(wrong.status(), 401);
    }

    // Act
    let limited = get_as(&app, "wrong-token", "/api/v1/me").await;
    let even_the_right_token = get_as(&app, ADMIN_TOKEN, "/api/v1/me").await;

    // Assert
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1);
    assert_rejected(limited, 429, "too_many_failures").await;
    assert_eq!(even_the_right_token.status(), 429, "the address waits");
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "clickback_auth_failures_total{result=\"invalid\"}"
        ),
        f64::from(burst)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "clickback_auth_failures_total{result=\"limited\"}"
        ),
        2.0
    );
    app.clock
        .advance(clickback::access::limit::REFILL_MS / 1000);
    assert_eq!(
        get_as(&app, ADMIN_TOKEN, "/api/v1/me").await.status(),
        200,
        "a token grew back"
    );
}
