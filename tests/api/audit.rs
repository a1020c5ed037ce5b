//! `GET /api/v1/audit` (API.md §8): every change made through the API, with
//! who made it, when, and what it was before and after — secrets redacted.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::keys::{create_advertiser, create_key};

#[tokio::test]
async fn the_audit_trail_of_a_change_names_who_when_and_what_changed() {
    // Arrange
    let app = spawn_app().await;
    app.create_offer("o1", json!({})).await;
    let (key, secret) = create_key(&app, json!({"role": "admin", "name": "ops"})).await;
    let mut body = offer_body();
    body["payout"] = json!("3");

    // Act
    let changed = app
        .client
        .put(format!("{}/api/v1/offers/o1", app.address))
        .bearer_auth(&secret)
        .json(&body)
        .send()
        .await
        .expect("request sent");
    let audit = ok_json(app.admin_get("/api/v1/audit").await).await;

    // Assert
    assert_eq!(changed.status(), 200);
    let entries = audit["entries"].as_array().expect("entries");
    let trail: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().expect("action"),
                e["actor"].as_str().expect("actor"),
                e["target"].as_str().expect("target"),
            )
        })
        .collect();
    assert_eq!(
        trail,
        vec![
            ("offer.put", key.as_str(), "o1"),
            ("key.create", "bootstrap", key.as_str()),
            ("offer.put", "bootstrap", "o1"),
        ]
    );
    let change = &entries[0];
    assert_eq!(change["at"], app.clock.now());
    assert_eq!(change["before"]["payout"], "2.5");
    assert_eq!(change["after"]["payout"], "3");
    assert_eq!(change["after"]["postback_token"], "[redacted]");
    assert_eq!(entries[2]["before"], Value::Null, "it did not exist");
    assert_eq!(entries[1]["after"]["role"], "admin");
    let text = audit.to_string();
    assert!(
        !text.contains(OFFER_TOKEN) && !text.contains(&secret),
        "{text}"
    );
    assert_eq!(audit["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_audit_log_pages_with_a_cursor_and_revocations_are_in_it() {
    // Arrange
    let app = spawn_app().await;
    for i in 0..5 {
        create_advertiser(&app, &format!("adv{i}"), false).await;
    }
    let (key, _) = create_key(&app, json!({"role": "admin"})).await;
    let revoked = app
        .client
        .delete(format!("{}/api/v1/keys/{key}", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request sent");
    assert_eq!(revoked.status(), 200);

    // Act
    let mut actions = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?limit=2&cursor={c}"),
            None => "/api/v1/audit?limit=2".to_owned(),
        };
        let page = ok_json(app.admin_get(&path).await).await;
        for entry in page["entries"].as_array().expect("entries") {
            actions.push(format!(
                "{} {}",
                entry["action"].as_str().unwrap_or(""),
                entry["target"].as_str().unwrap_or("")
            ));
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }

    // Assert
    assert_eq!(
        actions,
        vec![
            format!("key.revoke {key}"),
            format!("key.create {key}"),
            "advertiser.put adv4".to_owned(),
            "advertiser.put adv3".to_owned(),
            "advertiser.put adv2".to_owned(),
            "advertiser.put adv1".to_owned(),
            "advertiser.put adv0".to_owned(),
        ]
    );
}
