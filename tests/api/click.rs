//! `GET /c/{offer_id}` (API.md §1).

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_click_redirects_to_the_offer_with_a_click_id_and_stores_it_first() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let response = app.click("o1", "aff_id=a1&sub1=news").await;

    // Assert
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = location(&response);
    let click_id = click_id_from(&location).expect("click id in Location");
    assert_eq!(
        location,
        format!("https://shop.example/landing?utm=x&click_id={click_id}#top")
    );
    let stored = app.stored_clicks();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, click_id);
    assert!(stored[0].1.contains("news"));
}

/// The `Location`'s scheme and host, parsed as a browser would.
fn scheme_and_host(location: &str) -> (String, String) {
    let url = url::Url::parse(location).unwrap_or_else(|e| panic!("{location}: {e}"));
    (
        url.scheme().to_owned(),
        url.host_str().unwrap_or("").to_owned(),
    )
}

/// The stored click `click_id`, decoded, and the TTL of the hash that holds it.
fn stored_click(app: &TestApp, click_id: &str) -> (clickback::domain::Click, i64) {
    let (id, record, ttl) = app
        .stored_clicks()
        .into_iter()
        .find(|(id, _, _)| id == click_id)
        .expect("click stored");
    let id = clickback::domain::ClickId::parse(&id).expect("click id");
    (
        clickback::domain::Click::decode(id, &record).expect("decodes"),
        ttl,
    )
}

#[tokio::test]
async fn a_postback_sent_right_after_the_redirect_credits_the_click() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let click_id = app.click_id("o1", "a1").await;
    let response = app
        .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}"))
        .await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "credited", "{body}");
    assert_eq!(body["click_id"], click_id.as_str());
}

#[tokio::test]
async fn the_click_id_goes_into_the_offers_click_id_param_keeping_query_and_fragment() {
    // Arrange
    let app = spawn_app().await;
    app.create_offer(
        "o2",
        json!({"url": "https://shop.example/p?x=1&y=2#/spa/route", "click_id_param": "aff_click"}),
    )
    .await;
    app.create_affiliate("a1").await;

    // Act
    let response = app.click("o2", "aff_id=a1").await;

    // Assert
    assert_eq!(response.status(), 302);
    let location = location(&response);
    let click_id = location
        .split_once("&aff_click=")
        .and_then(|(_, rest)| rest.split_once('#'))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("no aff_click in {location}"));
    assert_eq!(
        location,
        format!("https://shop.example/p?x=1&y=2&aff_click={click_id}#/spa/route")
    );
    assert!(click_id.len() <= 64 && !click_id.is_empty(), "{click_id}");
    assert!(
        click_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe click id: {click_id}"
    );
    assert!(!location.contains("click_id="), "{location}");
    let credited = app
        .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}"))
        .await;
    assert_eq!(
        credited.status(),
        200,
        "the id in aff_click is the click id"
    );
}

#[tokio::test]
async fn two_clicks_get_two_different_click_ids() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let first = app.click_id("o1", "a1").await;
    let second = app.click_id("o1", "a1").await;

    // Assert
    assert_ne!(first, second);
    assert_eq!(app.stored_click_ids().len(), 2);
}

#[tokio::test]
async fn macros_in_the_offer_url_are_substituted_url_encoded() {
    // Arrange
    let app = spawn_app().await;
    app.create_offer(
        "o2",
        json!({"url": "https://shop.example/l/{offer_id}?c={click_id}&a={aff_id}&s1={sub1}&s2={sub2}&s3={sub3}&s4={sub4}&s5={sub5}&src={source}#f"}),
    )
    .await;
    app.create_affiliate("a1").await;

    // Act
    let response = app
        .click(
            "o2",
            "aff_id=a1&sub1=a%20b%26c%3Dd&sub2=%C3%A9t%C3%A9&sub3=x+y&sub4=%23frag&sub5=50%25&source=fb%2Fads%3F",
        )
        .await;

    // Assert
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = location(&response);
    let click_id = location
        .split_once("?c=")
        .and_then(|(_, rest)| rest.split_once('&'))
        .map(|(id, _)| id.to_owned())
        .expect("click id in c=");
    assert_eq!(
        location,
        format!(
            "https://shop.example/l/o2?c={click_id}&a=a1&s1=a%20b%26c%3Dd&s2=%C3%A9t%C3%A9&s3=x%20y&s4=%23frag&s5=50%25&src=fb%2Fads%3F#f"
        )
    );
    assert_eq!(app.stored_click_ids().len(), 1);
    assert!(
        app.stored_click_ids()[0].ends_with(&click_id),
        "the click is stored"
    );
}

#[tokio::test]
async fn nothing_in_the_request_can_send_the_visitor_to_another_host() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    app.create_offer(
        "macro",
        json!({"url": "https://shop.example/{sub1}{sub2}?next={source}&c={click_id}&s3={sub3}"}),
    )
    .await;
    let attacks = [
        "url=https://evil.example/",
        "redirect=%2F%2Fevil.example",
        "redirect_url=https%3A%2F%2Fevil.example&url=javascript:alert(1)",
        "sub1=%2F%2Fevil.example",
        "sub1=@evil.example",
        "sub1=%40evil.example&sub2=%2F%2Fevil.example",
        "sub1=.evil.example&sub2=%3A443",
        "sub1=%5C%5Cevil.example",
        "sub2=https://evil.example/",
        "sub3=%0D%0ALocation:%20https://evil.example/",
        "source=%2F%2Fevil.example%2F",
    ];

    for offer in ["o1", "macro"] {
        for attack in attacks {
            // Act
            let response = app.click(offer, &format!("aff_id=a1&{attack}")).await;

            // Assert
            assert_eq!(response.status(), 302, "{offer} {attack}");
            let location = location(&response);
            assert_eq!(
                scheme_and_host(&location),
                ("https".to_owned(), "shop.example".to_owned()),
                "{offer} {attack} → {location}"
            );
            assert!(
                location.starts_with("https://shop.example/"),
                "{offer} {attack} → {location}"
            );
            assert!(
                !location.contains('\r') && !location.contains('\n'),
                "{location}"
            );
        }
    }
}

#[tokio::test]
async fn a_visitor_who_declines_with_consent_0_reaches_the_offer_untracked() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let response = app.click("o1", "aff_id=a1&sub1=news&consent=0").await;

    // Assert
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(
        location(&response),
        "https://shop.example/landing?utm=x#top"
    );
    assert!(app.stored_click_ids().is_empty(), "no click stored");
    assert!(
        !app.stored_text().iter().any(|t| t.contains("news")),
        "nothing about the visitor stored"
    );
    let totals = app.totals().await;
    assert_eq!(totals["clicks"], 0, "{totals}");
    assert_eq!(totals["declined_clicks"], 1, "{totals}");
}

#[tokio::test]
async fn a_visitor_sending_global_privacy_control_reaches_the_offer_untracked() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let response = app
        .client
        .get(format!("{}/c/o1?aff_id=a1&sub1=news", app.address))
        .header("Sec-GPC", "1")
        .send()
        .await
        .expect("request sent");

    // Assert
    assert_eq!(response.status(), 302);
    assert_eq!(
        location(&response),
        "https://shop.example/landing?utm=x#top"
    );
    assert!(app.stored_click_ids().is_empty(), "no click stored");
    assert!(
        !app.stored_text().iter().any(|t| t.contains("news")),
        "nothing about the visitor stored"
    );
    let totals = app.totals().await;
    assert_eq!(totals["clicks"], 0, "{totals}");
    assert_eq!(totals["declined_clicks"], 1, "{totals}");
}

#[tokio::test]
async fn a_declined_click_on_a_macro_offer_carries_no_click_id() {
    // Arrange
    let app = spawn_app().await;
    app.create_offer(
        "o2",
        json!({"url": "https://shop.example/l?c={click_id}&a={aff_id}"}),
    )
    .await;
    app.create_affiliate("a1").await;

    // Act
    let response = app.click("o2", "aff_id=a1&consent=0").await;

    // Assert
    assert_eq!(response.status(), 302);
    assert_eq!(location(&response), "https://shop.example/l?c=&a=a1");
    assert!(app.stored_click_ids().is_empty());
}

#[tokio::test]
async fn a_stored_click_lives_as_long_as_the_offers_attribution_window() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    app.create_offer("hour", json!({"attribution_window_secs": 3600}))
        .await;

    // Act
    let month_click = app.click_id("o1", "a1").await;
    let hour_click = app.click_id("hour", "a1").await;

    // Assert: each record carries its own window, and Redis keeps it at
    // least that long (a bucket lives as long as its longest-lived click).
    let (month, month_ttl) = stored_click(&app, &month_click);
    let (hour, hour_ttl) = stored_click(&app, &hour_click);
    assert_eq!(month.expires_at - month.created_at, 2_592_000);
    assert_eq!(hour.expires_at - hour.created_at, 3_600);
    assert!(
        (2_592_000 - 5..=2_592_000).contains(&month_ttl),
        "TTL {month_ttl}"
    );
    assert!((3600 - 5..=2_592_000).contains(&hour_ttl), "TTL {hour_ttl}");
}

#[tokio::test]
async fn a_bucket_is_lengthened_for_a_longer_window_and_never_shortened() {
    // Arrange: one bucket per shard and hour, and one visitor (one shard),
    // so every click below lands in the same bucket.
    let app = spawn_app_tweaked(|settings| settings.click_buckets = 1).await;
    app.with_offer_and_affiliate().await;
    app.create_offer("hour", json!({"attribution_window_secs": 3600}))
        .await;

    // Act
    let first_hour_click = app.click_id("hour", "a1").await;
    let (_, ttl_after_hour_click) = stored_click(&app, &first_hour_click);
    let month_click = app.click_id("o1", "a1").await;
    let (_, ttl_after_month_click) = stored_click(&app, &month_click);
    let later_hour_click = app.click_id("hour", "a1").await;
    let (_, ttl_after_later_hour_click) = stored_click(&app, &later_hour_click);

    // Assert
    assert!(
        (3600 - 5..=3600).contains(&ttl_after_hour_click),
        "a new bucket takes its first click's window: TTL {ttl_after_hour_click}"
    );
    assert!(
        (2_592_000 - 5..=2_592_000).contains(&ttl_after_month_click),
        "a longer window lengthens the bucket: TTL {ttl_after_month_click}"
    );
    assert!(
        ttl_after_later_hour_click >= 2_592_000 - 5,
        "a shorter window never shortens it: TTL {ttl_after_later_hour_click}"
    );
}

#[tokio::test]
async fn redis_never_holds_the_raw_ip_of_the_socket_peer() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let response = app
        .client
        .get(format!("{}/c/o1?aff_id=a1&sub1=s", app.address))
        .header("User-Agent", "Mozilla/5.0 test")
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .expect("request sent");

    // Assert
    assert_eq!(response.status(), 302);
    assert_eq!(app.stored_click_ids().len(), 1, "the click is stored");
    for text in app.stored_text() {
        for ip in ["127.0.0.1", "203.0.113.9"] {
            assert!(!text.contains(ip), "raw IP {ip} stored in {text:?}");
        }
    }
}

#[tokio::test]
async fn redis_never_holds_the_raw_ip_named_by_a_trusted_proxy() {
    // Arrange: the test client (127.0.0.1) is a trusted proxy, so the
    // visitor's IP is taken from X-Forwarded-For.
    let app = spawn_app().await;
    let behind_proxy = spawn_sibling(&app, |s| {
        s.trusted_proxies = vec!["127.0.0.0/8".parse().expect("net")];
    })
    .await;
    behind_proxy.with_offer_and_affiliate().await;

    // Act
    let response = behind_proxy
        .client
        .get(format!("{}/c/o1?aff_id=a1", behind_proxy.address))
        .header("User-Agent", "Mozilla/5.0 test")
        .header("X-Forwarded-For", "198.51.100.77, 203.0.113.9")
        .send()
        .await
        .expect("request sent");

    // Assert
    assert_eq!(response.status(), 302);
    assert_eq!(app.stored_click_ids().len(), 1, "the click is stored");
    for text in app.stored_text() {
        for ip in ["127.0.0.1", "203.0.113.9", "198.51.100.77"] {
            assert!(!text.contains(ip), "raw IP {ip} stored in {text:?}");
        }
    }
}

#[tokio::test]
async fn an_unknown_offer_answers_404_unknown_offer() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let response = app.click("nope", "aff_id=a1").await;

    // Assert
    assert_rejected(response, 404, "unknown_offer").await;
    assert!(app.stored_click_ids().is_empty());
}

#[tokio::test]
async fn a_paused_offer_answers_404_and_records_nothing() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    app.create_offer("o1", json!({"status": "paused"})).await;

    // Act
    let response = app.click("o1", "aff_id=a1").await;

    // Assert
    assert_rejected(response, 404, "unknown_offer").await;
    assert!(app.stored_click_ids().is_empty());
}

#[tokio::test]
async fn an_unknown_affiliate_answers_404_unknown_affiliate() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let response = app.click("o1", "aff_id=stranger").await;

    // Assert
    assert_rejected(response, 404, "unknown_affiliate").await;
    assert!(app.stored_click_ids().is_empty());
}

#[tokio::test]
async fn a_paused_affiliate_answers_404_unknown_affiliate() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let paused = app
        .put_affiliate("a1", &json!({"name": "a1", "status": "paused"}))
        .await;
    assert_eq!(paused.status(), 200);

    // Act
    let response = app.click("o1", "aff_id=a1").await;

    // Assert
    assert_rejected(response, 404, "unknown_affiliate").await;
    assert!(app.stored_click_ids().is_empty());
}

#[tokio::test]
async fn a_missing_or_malformed_aff_id_answers_400() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let too_long = format!("aff_id={}", "a".repeat(65));

    for query in [
        "",
        "sub1=x",
        "aff_id=",
        "aff_id=a%20b",
        "aff_id=a%7Cb",
        "aff_id=a:b",
        "aff_id=%C3%A9",
        too_long.as_str(),
        "aff_id=a1&aff_id=a2",
    ] {
        // Act
        let response = app.click("o1", query).await;

        // Assert
        let body = assert_rejected(response, 400, "invalid_request").await;
        assert!(
            body["detail"].as_str().unwrap_or("").contains("aff_id"),
            "{query}: the detail names the field: {body}"
        );
    }
    assert!(app.stored_click_ids().is_empty());
}

#[tokio::test]
async fn a_sub_or_source_of_256_bytes_answers_400_and_255_bytes_redirect() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let max = "x".repeat(255);
    let over = "x".repeat(256);
    let over_in_multibyte = "%C3%A9".repeat(128); // 128 × "é" = 256 bytes

    for name in ["sub1", "sub2", "sub3", "sub4", "sub5", "source"] {
        // Act
        let fits = app.click("o1", &format!("aff_id=a1&{name}={max}")).await;
        let too_long = app.click("o1", &format!("aff_id=a1&{name}={over}")).await;
        let too_many_bytes = app
            .click("o1", &format!("aff_id=a1&{name}={over_in_multibyte}"))
            .await;

        // Assert
        assert_eq!(fits.status(), 302, "{name} of 255 bytes");
        let body = assert_rejected(too_long, 400, "invalid_request").await;
        assert!(
            body["detail"].as_str().unwrap_or("").contains(name),
            "{body}"
        );
        assert_rejected(too_many_bytes, 400, "invalid_request").await;
    }
    assert_eq!(
        app.stored_click_ids().len(),
        6,
        "only the fitting clicks stored"
    );
    assert!(
        app.stored_text().iter().any(|t| t.contains(&max)),
        "a 255-byte sub is stored whole"
    );
}

#[tokio::test]
async fn a_head_request_is_redirected_but_not_recorded() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let response = app
        .client
        .head(format!("{}/c/o1?aff_id=a1&sub1=preview", app.address))
        .send()
        .await
        .expect("request sent");

    // Assert
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = location(&response);
    assert_eq!(location, "https://shop.example/landing?utm=x#top");
    assert!(app.stored_click_ids().is_empty(), "nothing stored");
    let totals = app.totals().await;
    assert_eq!(totals["clicks"], 0, "{totals}");
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"clickback_clicks_total{offer="o1",result="bot"}"#
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"clickback_clicks_total{offer="o1",result="tracked"}"#
        ),
        0.0
    );
}

/// The `Location` header exactly as sent, asserted to be a valid ASCII URI:
/// no byte outside printable ASCII, and the `url` crate (what browsers
/// follow) reads it back to the very same text.
fn ascii_location(response: &reqwest::Response) -> url::Url {
    let raw = response
        .headers()
        .get("location")
        .expect("a Location header")
        .as_bytes();
    assert!(
        raw.iter().all(|b| b.is_ascii_graphic()),
        "Location is not printable ASCII: {:?}",
        String::from_utf8_lossy(raw)
    );
    let text = std::str::from_utf8(raw).expect("ASCII is UTF-8");
    let parsed = url::Url::parse(text).unwrap_or_else(|e| panic!("{text:?} is no URL: {e}"));
    assert_eq!(parsed.as_str(), text, "Location is not in normal form");
    parsed
}

#[tokio::test]
async fn an_offer_with_a_cyrillic_host_redirects_to_its_punycode_host() {
    // Arrange
    let app = spawn_app().await;
    app.create_offer("ru", json!({"url": "https://магазин.рф/landing?q=1"}))
        .await;
    app.create_affiliate("a1").await;

    // Act
    let response = app.click("ru", "aff_id=a1").await;

    // Assert
    assert_eq!(response.status(), 302);
    let target = ascii_location(&response);
    assert_eq!(target.host_str(), Some("xn--80aairftm.xn--p1ai"));
    assert_eq!(target.path(), "/landing");
    let click_id = click_id_from(target.as_str()).expect("click id in Location");
    assert_eq!(
        target.as_str(),
        format!("https://xn--80aairftm.xn--p1ai/landing?q=1&click_id={click_id}")
    );
    assert_eq!(app.stored_click_ids().len(), 1, "the click is stored");
}

#[tokio::test]
async fn a_line_separator_in_the_offer_url_is_percent_encoded_and_macros_still_substitute() {
    // Arrange: U+2028 in the path and in the query, macros around it.
    let app = spawn_app().await;
    app.create_offer(
        "ls",
        json!({"url": "https://магазин.рф/l\u{2028}/{sub1}?q=a\u{2028}b&c={click_id}&s={sub2}#\u{2028}top"}),
    )
    .await;
    app.create_affiliate("a1").await;

    // Act
    let response = app
        .click("ls", "aff_id=a1&sub1=news&sub2=%E2%80%A8x%20y")
        .await;

    // Assert
    assert_eq!(response.status(), 302);
    let target = ascii_location(&response);
    assert_eq!(target.host_str(), Some("xn--80aairftm.xn--p1ai"));
    let click_id = target
        .query_pairs()
        .find(|(name, _)| name == "c")
        .map(|(_, value)| value.into_owned())
        .expect("click id in c=");
    assert!(
        app.stored_click_ids()
            .iter()
            .any(|stored| stored.ends_with(&click_id)),
        "{click_id} is the stored click"
    );
    assert_eq!(
        target.as_str(),
        format!(
            "https://xn--80aairftm.xn--p1ai/l%E2%80%A8/news?q=a%E2%80%A8b&c={click_id}&s=%E2%80%A8x%20y#%E2%80%A8top"
        )
    );
}

#[tokio::test]
async fn a_capped_click_goes_to_the_normalised_fallback_url() {
    // Arrange: a cap of one conversion, a fallback with a Cyrillic host and U+2028.
    let app = spawn_app().await;
    app.create_offer(
        "o1",
        json!({
            "caps": [{"scope": "offer", "period": "day", "metric": "conversions", "limit": "1"}],
            "fallback_url": "https://магазин.рф/more?q=a\u{2028}b",
        }),
    )
    .await;
    app.create_affiliate("a1").await;
    let click_id = app.click_id("o1", "a1").await;
    assert_eq!(
        postback_ok(&app, &click_id, "txid=t").await["status"],
        "credited"
    );
    let fallback = "https://xn--80aairftm.xn--p1ai/more?q=a%E2%80%A8b";

    // Act
    let seen = eventually(std::time::Duration::from_secs(5), || async {
        app.click("o1", "aff_id=a1")
            .await
            .headers()
            .get("location")
            .is_some_and(|v| v.as_bytes() == fallback.as_bytes())
    })
    .await;
    let response = app.click("o1", "aff_id=a1").await;

    // Assert
    assert!(seen.is_some(), "capped clicks never went to {fallback}");
    assert_eq!(response.status(), 302);
    assert_eq!(ascii_location(&response).as_str(), fallback);
}
