//! Server-side destinations (docs/destinations.md): each conversion of an
//! offer is forwarded to GA4, Meta, TikTok and signed webhooks on the
//! delivery queue, in each platform's documented shape, with its
//! credentials never shown — checked against real receivers on loopback
//! standing in for the platforms.

use std::io::BufRead;
use std::process::Stdio;
use std::time::Duration;

use clickback::delivery::platforms::webhook;
use clickback::domain::ClickId;
use serde_json::{json, Value};

use super::deliveries::{delivering, sending_process_with};
use crate::helpers::*;
use crate::receiver::{Answer, Receiver};

/// Long enough for any delivery on a loaded CI machine; polls end sooner.
const WITHIN: Duration = Duration::from_secs(15);

const GA4_SECRET: &str = "ga4-api-secret-never-shown-7f3a";
const META_TOKEN: &str = "EAAmetaaccesstokenneverShown9x2";
const TIKTOK_TOKEN: &str = "tiktok-access-token-never-shown-4k8";
const HOOK_SECRET: &str = "webhook-secret-never-shown-0123456789";
const SECRETS: [&str; 4] = [GA4_SECRET, META_TOKEN, TIKTOK_TOKEN, HOOK_SECRET];

const MEASUREMENT_ID: &str = "G-TEST1234";
const PIXEL_ID: &str = "123456789012345";
const PIXEL_CODE: &str = "C4TESTPIXELCODE";

/// The ad click ids of the test link, as a query string.
const AD_IDS: &str = "gclid=Cj0KCQiA&fbclid=IwAR0abc&ttclid=E.C.P.tt42&ga_client_id=GA1.1.111.222";

/// One receiver per platform and one for the webhook.
struct Platforms {
    ga4: Receiver,
    meta: Receiver,
    tiktok: Receiver,
    hook: Receiver,
}

impl Platforms {
    /// Every receiver answers as its platform does when it takes an event:
    /// TikTok with `{"code":0}` in a 200, the others with a bare 200.
    fn start() -> Self {
        let tiktok = Receiver::start();
        tiktok.answer(Answer::Json(
            200,
            json!({"code": 0, "message": "OK", "data": {}}).to_string(),
        ));
        Self {
            ga4: Receiver::start(),
            meta: Receiver::start(),
            tiktok,
            hook: Receiver::start(),
        }
    }

    /// An app that delivers at once and calls these receivers instead of
    /// the platforms.
    async fn app(&self) -> TestApp {
        let (ga4, meta, tiktok) = self.endpoints();
        spawn_app_tweaked(|s| {
            delivering(s);
            s.delivery.ga4_endpoint = ga4;
            s.delivery.meta_endpoint = meta;
            s.delivery.tiktok_endpoint = tiktok;
        })
        .await
    }

    /// The GA4, Meta and TikTok endpoints on these receivers.
    fn endpoints(&self) -> (String, String, String) {
        (
            format!("{}/mp/collect", self.ga4.base),
            self.meta.base.clone(),
            self.tiktok.base.clone(),
        )
    }

    /// The offer's `destinations`: one of each platform.
    fn destinations(&self) -> Value {
        json!([
            {"type": "ga4", "measurement_id": MEASUREMENT_ID, "api_secret": GA4_SECRET},
            {"type": "meta", "pixel_id": PIXEL_ID, "access_token": META_TOKEN},
            {"type": "tiktok", "pixel_code": PIXEL_CODE, "access_token": TIKTOK_TOKEN},
            {"type": "webhook", "url": format!("{}/hook", self.hook.base), "secret": HOOK_SECRET},
        ])
    }
}

/// Offer `o1` forwarding to every receiver of `platforms`, affiliate `a1`.
async fn with_destinations(app: &TestApp, platforms: &Platforms) {
    app.create_offer("o1", json!({"destinations": platforms.destinations()}))
        .await;
    app.create_affiliate("a1").await;
}

/// A tracked click of `a1` on `o1` carrying every ad click id.
async fn tagged_click(app: &TestApp) -> String {
    let response = app.click("o1", &format!("aff_id=a1&{AD_IDS}")).await;
    assert_eq!(response.status(), 302);
    let location = location(&response);
    click_id_from(&location).unwrap_or_else(|| panic!("no click id in {location}"))
}

/// `GET /api/v1/offers/o1/deliveries`, one page.
async fn offer_deliveries(app: &TestApp) -> Vec<Value> {
    let body = ok_json(app.admin_get("/api/v1/offers/o1/deliveries").await).await;
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

/// Waits until the offer's delivery to `destination` satisfies `check`,
/// and returns it.
async fn delivery_to(app: &TestApp, destination: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let found = offer_deliveries(app)
            .await
            .into_iter()
            .find(|d| d["destination"] == destination)
            .unwrap_or(Value::Null);
        if !found.is_null() && check(&found) {
            return found;
        }
        assert!(
            started.elapsed() < WITHIN,
            "the delivery to {destination}: {found}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_conversion_reaches_ga4_meta_tiktok_and_a_webhook_in_their_documented_shapes() {
    // Arrange
    let platforms = Platforms::start();
    let app = platforms.app().await;
    with_destinations(&app, &platforms).await;
    let clicked_at = app.clock.now();
    let click_id = tagged_click(&app).await;
    app.clock.advance(60);

    // Act
    postback_ok(&app, &click_id, "txid=ORDER-9&amount=19.99").await;

    // Assert: GA4 Measurement Protocol — POST /mp/collect, measurement id
    // and API secret in the query, the captured client id, a purchase
    // deduplicated on the transaction id.
    // https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events
    let ga4 = &platforms.ga4.wait_for(1, WITHIN).await[0];
    assert_eq!(ga4.method, "POST");
    assert_eq!(ga4.path(), "/mp/collect");
    assert_eq!(ga4.param("measurement_id").as_deref(), Some(MEASUREMENT_ID));
    assert_eq!(ga4.param("api_secret").as_deref(), Some(GA4_SECRET));
    let body = ga4.json();
    assert_eq!(
        body["client_id"], "111.222",
        "the _ga cookie's client id: {body}"
    );
    let event = &body["events"][0];
    assert_eq!(event["name"], "purchase", "{body}");
    assert_eq!(event["params"]["transaction_id"], "ORDER-9", "{body}");
    assert_eq!(event["params"]["currency"], "EUR", "{body}");
    assert_eq!(
        event["params"]["value"],
        json!(19.99),
        "the sale amount: {body}"
    );
    assert_eq!(
        body["timestamp_micros"],
        json!((clicked_at + 60) * 1_000_000),
        "{body}"
    );

    // Meta Conversions API — POST /<version>/<pixel>/events, fbc built from
    // the fbclid and the click time, event_id for the browser pixel's
    // dedupe, nothing clickback does not have.
    // https://developers.facebook.com/docs/marketing-api/conversions-api/parameters
    let meta = &platforms.meta.wait_for(1, WITHIN).await[0];
    assert_eq!(meta.method, "POST");
    let path = meta.path();
    assert!(
        path.starts_with("/v") && path.ends_with(&format!("/{PIXEL_ID}/events")),
        "{path}"
    );
    let body = meta.json();
    assert_eq!(body["access_token"], META_TOKEN);
    let event = &body["data"][0];
    assert_eq!(event["event_name"], "Purchase", "{body}");
    assert_eq!(event["event_id"], "ORDER-9", "{body}");
    assert_eq!(event["event_time"], json!(clicked_at + 60), "{body}");
    assert!(event["action_source"].is_string(), "{body}");
    assert_eq!(
        event["user_data"]["fbc"],
        format!("fb.1.{}.IwAR0abc", clicked_at * 1000),
        "{body}"
    );
    for never in ["client_ip_address", "client_user_agent", "em", "ph"] {
        assert!(event["user_data"].get(never).is_none(), "{never}: {body}");
    }
    assert_eq!(event["custom_data"]["currency"], "EUR", "{body}");
    assert_eq!(event["custom_data"]["value"], json!(19.99), "{body}");

    // TikTok Events API — the token in the Access-Token header, the ttclid
    // captured at click time, event_id for dedupe.
    // https://business-api.tiktok.com/portal/docs?id=1771100865818625
    let tiktok = &platforms.tiktok.wait_for(1, WITHIN).await[0];
    assert_eq!(tiktok.method, "POST");
    assert_eq!(tiktok.path(), "/open_api/v1.3/event/track/");
    assert_eq!(tiktok.header("access-token"), Some(TIKTOK_TOKEN));
    let body = tiktok.json();
    assert_eq!(body["event_source"], "web", "{body}");
    assert_eq!(body["event_source_id"], PIXEL_CODE, "{body}");
    let event = &body["data"][0];
    assert_eq!(event["user"]["ttclid"], "E.C.P.tt42", "{body}");
    assert_eq!(event["event_id"], "ORDER-9", "{body}");
    assert_eq!(event["properties"]["currency"], "EUR", "{body}");

    // The webhook: the conversion as JSON, its signature verifiable with
    // the secret, money as decimal strings.
    let hook = &platforms.hook.wait_for(1, WITHIN).await[0];
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.path(), "/hook");
    let signature = hook
        .header("clickback-signature")
        .expect("a Clickback-Signature header");
    assert!(
        webhook::verify(
            HOOK_SECRET.as_bytes(),
            signature,
            &hook.body,
            app.clock.now(),
            300
        ),
        "{signature}"
    );
    assert!(
        !webhook::verify(
            b"another-secret",
            signature,
            &hook.body,
            app.clock.now(),
            300
        ),
        "a signature must depend on the secret"
    );
    let body = hook.json();
    assert_eq!(body["click_id"], click_id.as_str(), "{body}");
    assert_eq!(body["offer_id"], "o1", "{body}");
    assert_eq!(body["aff_id"], "a1", "{body}");
    assert_eq!(body["status"], "approved", "{body}");
    assert_eq!(body["payout"], "2.5", "{body}");
    assert_eq!(body["amount"], "19.99", "{body}");
    assert_eq!(body["currency"], "EUR", "{body}");
    assert_eq!(body["txid"], "ORDER-9", "{body}");
    assert_eq!(body["click_at"], json!(clicked_at), "{body}");
    assert_eq!(
        body["gclid"], "Cj0KCQiA",
        "for Google Ads' offline import: {body}"
    );
    assert!(body.get("fbclid").is_none(), "{body}");
    assert_eq!(hook.header("idempotency-key"), body["delivery_id"].as_str());

    // Every delivery is in the offer's log, and counted by platform.
    for destination in ["ga4", "meta", "tiktok", "webhook"] {
        let delivery = delivery_to(&app, destination, |d| d["state"] == "delivered").await;
        assert_eq!(delivery["attempts"], 1, "{delivery}");
    }
    let metrics = app.metrics().await;
    for destination in ["ga4", "meta", "tiktok", "webhook"] {
        let series = format!(
            "clickback_deliveries_total{{destination=\"{destination}\",result=\"delivered\"}}"
        );
        assert_eq!(metric_value(&metrics, &series), 1.0, "{series}");
    }
    // Each platform got exactly one request.
    for (name, receiver) in [
        ("ga4", &platforms.ga4),
        ("meta", &platforms.meta),
        ("tiktok", &platforms.tiktok),
        ("webhook", &platforms.hook),
    ] {
        assert_eq!(receiver.received().len(), 1, "{name}");
    }
}

#[tokio::test]
async fn destinations_fire_only_for_their_statuses_and_the_affiliate_log_never_shows_them() {
    // Arrange: the webhook fires for pending and approved, GA4 by default
    // for approved only; the affiliate has its own postback URL.
    let platforms = Platforms::start();
    let affiliate = Receiver::start();
    let app = platforms.app().await;
    let (ga4, hook) = (
        json!({"type": "ga4", "measurement_id": MEASUREMENT_ID, "api_secret": GA4_SECRET}),
        json!({"type": "webhook", "url": format!("{}/hook", platforms.hook.base),
               "secret": HOOK_SECRET, "statuses": ["pending", "approved"]}),
    );
    app.create_offer("o1", json!({"destinations": [ga4, hook]}))
        .await;
    let response = app
        .put_affiliate(
            "a1",
            &json!({"name": "a1", "postback_url": format!("{}/pb?s={{status}}", affiliate.base)}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let click_id = tagged_click(&app).await;

    // Act: pending, then approved.
    postback_ok(&app, &click_id, "status=pending").await;
    platforms.hook.wait_for(1, WITHIN).await;
    assert_eq!(platforms.ga4.received().len(), 0, "GA4 waits for approval");
    postback_ok(&app, &click_id, "status=approved").await;

    // Assert
    let hooks = platforms.hook.wait_for(2, WITHIN).await;
    let statuses: Vec<Value> = hooks.iter().map(|r| r.json()["status"].clone()).collect();
    assert_eq!(statuses, vec![json!("pending"), json!("approved")]);
    platforms.ga4.wait_for(1, WITHIN).await;
    affiliate.wait_for(2, WITHIN).await;
    let all = eventually(WITHIN, || async {
        offer_deliveries(&app)
            .await
            .iter()
            .filter(|d| d["state"] == "delivered")
            .count()
            == 5
    })
    .await;
    assert!(all.is_some(), "{:?}", offer_deliveries(&app).await);
    let own = ok_json(app.admin_get("/api/v1/affiliates/a1/deliveries").await).await;
    let own = own["deliveries"].as_array().cloned().unwrap_or_default();
    assert_eq!(own.len(), 2, "the affiliate's two postbacks only: {own:?}");
    assert!(own.iter().all(|d| d["destination"].is_null()), "{own:?}");
    assert_eq!(platforms.ga4.received().len(), 1);
}

#[tokio::test]
async fn destination_credentials_never_appear_in_an_answer_and_survive_a_get_put_round_trip() {
    // Arrange
    let platforms = Platforms::start();
    let app = platforms.app().await;
    with_destinations(&app, &platforms).await;

    // Act: every admin answer that shows the offer, then its GET answer PUT back.
    let one = app.admin_get("/api/v1/offers/o1").await;
    let one_text = one.text().await.expect("body");
    let mut answers = vec![one_text.clone()];
    for path in [
        "/api/v1/offers",
        "/api/v1/audit",
        "/api/v1/offers/o1/deliveries",
    ] {
        answers.push(app.admin_get(path).await.text().await.expect("body"));
    }
    let back: Value = serde_json::from_str(&one_text).expect("json");
    let put_back = app.put_offer("o1", &back).await;
    assert_eq!(put_back.status(), 200, "a GET answer can be PUT back");
    answers.push(put_back.text().await.expect("body"));
    answers.push(app.metrics().await);

    // Assert: no secret anywhere, but their presence is shown.
    for answer in &answers {
        for secret in SECRETS {
            assert!(!answer.contains(secret), "{secret} shown in {answer}");
        }
    }
    let shown = back["destinations"].as_array().cloned().unwrap_or_default();
    assert_eq!(shown.len(), 4, "{back}");
    assert_eq!(shown[0]["api_secret_set"], true, "{back}");
    assert_eq!(shown[3]["secret_set"], true, "{back}");

    // The credentials kept by the round trip still sign and authenticate.
    let click_id = tagged_click(&app).await;
    postback_ok(&app, &click_id, "txid=ORDER-1").await;
    let hook = &platforms.hook.wait_for(1, WITHIN).await[0];
    let signature = hook.header("clickback-signature").expect("signed");
    assert!(webhook::verify(
        HOOK_SECRET.as_bytes(),
        signature,
        &hook.body,
        app.clock.now(),
        300
    ));
    let tiktok = &platforms.tiktok.wait_for(1, WITHIN).await[0];
    assert_eq!(tiktok.header("access-token"), Some(TIKTOK_TOKEN));
    let ga4 = &platforms.ga4.wait_for(1, WITHIN).await[0];
    assert_eq!(ga4.param("api_secret").as_deref(), Some(GA4_SECRET));
    for destination in ["ga4", "meta", "tiktok", "webhook"] {
        let delivery = delivery_to(&app, destination, |d| d["state"] == "delivered").await;
        let text = delivery.to_string();
        for secret in SECRETS {
            assert!(
                !text.contains(secret),
                "{secret} in the delivery log: {text}"
            );
        }
    }
}

#[tokio::test]
async fn a_destination_without_its_credential_is_refused_and_internal_webhooks_are_refused() {
    // Arrange
    let app = spawn_app().await;

    // Act + Assert: a new destination must bring its credential.
    let missing = app
        .put_offer(
            "o1",
            &json!({"name": "o", "url": "https://shop.example/", "payout": "1", "currency": "EUR",
                    "destinations": [{"type": "ga4", "measurement_id": MEASUREMENT_ID}]}),
        )
        .await;
    let body = assert_rejected(missing, 400, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("api_secret"),
        "{body}"
    );
    // A webhook into the network clickback runs in.
    let internal = app
        .put_offer(
            "o1",
            &json!({"name": "o", "url": "https://shop.example/", "payout": "1", "currency": "EUR",
                    "destinations": [{"type": "webhook", "url": "http://10.0.0.7/hook",
                                      "secret": HOOK_SECRET}]}),
        )
        .await;
    assert_rejected(internal, 400, "private_target").await;
    assert_eq!(
        app.admin_get("/api/v1/offers/o1").await.status(),
        404,
        "nothing half-written"
    );
}

#[tokio::test]
async fn a_meta_event_older_than_seven_days_is_dead_without_a_request_or_a_retry() {
    // Arrange: a conversion created pending; Meta fires on approval only.
    let platforms = Platforms::start();
    let app = platforms.app().await;
    app.create_offer(
        "o1",
        json!({"destinations": [{"type": "meta", "pixel_id": PIXEL_ID, "access_token": META_TOKEN}]}),
    )
    .await;
    app.create_affiliate("a1").await;
    let click_id = tagged_click(&app).await;
    postback_ok(&app, &click_id, "status=pending").await;

    // Act: approved eight days later.
    app.clock.advance(8 * 86_400);
    postback_ok(&app, &click_id, "status=approved").await;

    // Assert
    let dead = delivery_to(&app, "meta", |d| d["state"] == "dead").await;
    assert!(
        dead["last_error"].as_str().unwrap_or("").contains("7 days"),
        "{dead}"
    );
    assert_eq!(dead["next_attempt_at"], Value::Null, "{dead}");
    app.clock.advance(86_400);
    let later = delivery_to(&app, "meta", |_| true).await;
    assert_eq!(later["state"], "dead", "never retried: {later}");
    assert!(
        platforms.meta.received().is_empty(),
        "Meta refuses such events: nothing is sent"
    );
}

#[tokio::test]
async fn a_refusal_that_can_never_succeed_is_dead_at_once_and_a_5xx_is_retried() {
    // Arrange: Meta refuses the token; TikTok answers 200 with an error
    // code; GA4 fails once with 503.
    let platforms = Platforms::start();
    platforms.meta.answer(Answer::Json(
        400,
        json!({"error": {"message": "Invalid OAuth access token - Cannot parse access token",
                          "type": "OAuthException", "code": 190}})
        .to_string(),
    ));
    platforms.tiktok.answer(Answer::Json(
        200,
        json!({"code": 40105, "message": "Access token is incorrect or has been revoked."})
            .to_string(),
    ));
    platforms.ga4.answer_next(Answer::Status(503));
    let app = platforms.app().await;
    with_destinations(&app, &platforms).await;
    let click_id = tagged_click(&app).await;

    // Act
    postback_ok(&app, &click_id, "txid=ORDER-5").await;

    // Assert: dead at once, with the platform's own message.
    let meta = delivery_to(&app, "meta", |d| d["state"] == "dead").await;
    assert_eq!(
        (meta["attempts"].clone(), meta["last_http_status"].clone()),
        (json!(1), json!(400))
    );
    assert!(
        meta["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("Invalid OAuth access token"),
        "{meta}"
    );
    let tiktok = delivery_to(&app, "tiktok", |d| d["state"] == "dead").await;
    assert_eq!(tiktok["attempts"], 1, "{tiktok}");
    assert!(
        tiktok["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("revoked"),
        "{tiktok}"
    );
    // GA4's 503 waits for its retry, which the schedule brings.
    let failed = delivery_to(&app, "ga4", |d| d["attempts"] == 1).await;
    assert_eq!(failed["state"], "pending", "{failed}");
    assert_eq!(failed["last_http_status"], 503, "{failed}");
    app.clock.advance(15);
    let retried = delivery_to(&app, "ga4", |d| d["state"] == "delivered").await;
    assert_eq!(retried["attempts"], 2, "{retried}");
    // Once the token is fixed, the operator's retry sends it again.
    platforms.meta.answer(Answer::Status(200));
    let retry = app
        .client
        .post(format!(
            "{}/api/v1/deliveries/{}/retry",
            app.address,
            meta["id"].as_str().unwrap_or_default()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(retry.status(), 200);
    let revived = delivery_to(&app, "meta", |d| d["state"] == "delivered").await;
    assert_eq!(revived["attempts"], 2, "{revived}");
    let metrics = app.metrics().await;
    for (series, want) in [
        (
            "clickback_deliveries_total{destination=\"meta\",result=\"dead\"}",
            1.0,
        ),
        (
            "clickback_deliveries_total{destination=\"tiktok\",result=\"dead\"}",
            1.0,
        ),
        (
            "clickback_deliveries_total{destination=\"ga4\",result=\"failed\"}",
            1.0,
        ),
        (
            "clickback_deliveries_total{destination=\"ga4\",result=\"delivered\"}",
            1.0,
        ),
    ] {
        assert_eq!(metric_value(&metrics, series), want, "{series}");
    }
}

#[tokio::test]
async fn a_visitor_who_declines_tracking_leaves_nothing_to_forward() {
    // Arrange
    let platforms = Platforms::start();
    let app = platforms.app().await;
    with_destinations(&app, &platforms).await;

    // Act: a declined click carries no click id; a postback can only guess one.
    let declined = app
        .click("o1", &format!("aff_id=a1&consent=0&{AD_IDS}"))
        .await;
    assert_eq!(declined.status(), 302);
    assert_eq!(click_id_from(&location(&declined)), None);
    let gpc = app
        .client
        .get(format!("{}/c/o1?aff_id=a1&{AD_IDS}", app.address))
        .header("Sec-GPC", "1")
        .send()
        .await
        .expect("sent");
    assert_eq!(click_id_from(&location(&gpc)), None);
    let guess = ClickId::generate();
    let answer = app
        .postback(&format!("click_id={guess}&token={OFFER_TOKEN}"))
        .await;
    let status = answer.status().as_u16();

    // Assert: nothing stored about them, nothing queued, nothing sent.
    assert!(status < 500, "{status}");
    let stored = app.stored_text().join("\n");
    for id in ["Cj0KCQiA", "IwAR0abc", "E.C.P.tt42", "111.222"] {
        assert!(!stored.contains(id), "{id} was stored");
    }
    assert!(offer_deliveries(&app).await.is_empty());
    let backlog = ok_json(app.admin_get("/api/v1/deliveries?state=pending").await).await;
    assert_eq!(backlog["deliveries"], json!([]));
    for receiver in [
        &platforms.ga4,
        &platforms.meta,
        &platforms.tiktok,
        &platforms.hook,
    ] {
        assert!(receiver.received().is_empty());
    }
}

#[tokio::test]
async fn ad_click_ids_fill_redirect_macros_and_only_those_a_destination_sends_are_kept() {
    // Arrange: o1 passes the ids on to its landing page and forwards to GA4,
    // TikTok and a webhook (not Meta); o2 forwards nowhere.
    let app = spawn_app().await;
    let url =
        "https://shop.example/l?g={gclid}&f={fbclid}&t={ttclid}&ga={ga_client_id}&c={click_id}";
    app.create_offer(
        "o1",
        json!({"url": url, "destinations": [
            {"type": "ga4", "measurement_id": MEASUREMENT_ID, "api_secret": GA4_SECRET},
            {"type": "tiktok", "pixel_code": PIXEL_CODE, "access_token": TIKTOK_TOKEN},
            {"type": "webhook", "url": "https://crm.example/hook", "secret": HOOK_SECRET},
        ]}),
    )
    .await;
    app.create_offer("o2", json!({"url": url})).await;
    app.create_affiliate("a1").await;

    // Act
    let tracked = app.click("o1", &format!("aff_id=a1&{AD_IDS}")).await;
    let long = "x".repeat(600);
    let oversized = app
        .click("o1", &format!("aff_id=a1&gclid={long}&ttclid=E.C.P.tt42"))
        .await;
    let elsewhere = app.click("o2", "aff_id=a1&gclid=ZZelsewhereZZ").await;

    // Assert: every id reaches the landing page...
    let target = location(&tracked);
    assert!(
        target.starts_with(
            "https://shop.example/l?g=Cj0KCQiA&f=IwAR0abc&t=E.C.P.tt42&ga=GA1.1.111.222&c="
        ),
        "{target}"
    );
    assert!(location(&elsewhere).starts_with("https://shop.example/l?g=ZZelsewhereZZ"));
    // ...but only the ids a destination of the offer sends are stored.
    let stored = app.stored_text().join("\n");
    for id in ["Cj0KCQiA", "E.C.P.tt42", "GA1.1.111.222"] {
        assert!(stored.contains(id), "{id} is kept with the click");
    }
    assert!(
        !stored.contains("IwAR0abc"),
        "no Meta destination: fbclid not kept"
    );
    assert!(
        !stored.contains("ZZelsewhereZZ"),
        "no destination: nothing kept"
    );
    assert_eq!(
        oversized.status(),
        302,
        "a click is never refused over an ad id"
    );
    let target = location(&oversized);
    assert!(
        target.starts_with("https://shop.example/l?g=&f=&t=E.C.P.tt42"),
        "{target}"
    );
    assert!(!stored.contains(&long), "not kept");
}

#[tokio::test]
async fn credentials_never_reach_the_log_even_when_a_platform_echoes_them() {
    // Arrange: the app takes configuration and postbacks; a real clickback
    // process, logging everything, sends. Meta and TikTok answer errors
    // that quote the credentials back.
    let platforms = Platforms::start();
    platforms.meta.answer(Answer::Json(
        400,
        json!({"error": {"message": format!("Malformed access token {META_TOKEN}"),
                          "type": "OAuthException", "code": 190}})
        .to_string(),
    ));
    platforms.tiktok.answer(Answer::Json(
        200,
        json!({"code": 40105, "message": format!("token {TIKTOK_TOKEN} revoked")}).to_string(),
    ));
    platforms.ga4.answer(Answer::Json(
        400,
        json!({"error": format!("bad api_secret {GA4_SECRET}")}).to_string(),
    ));
    platforms.hook.answer(Answer::Status(500));
    let app = spawn_app_tweaked(|s| {
        s.delivery.concurrency = 0;
        s.delivery.allow_private_targets = true;
    })
    .await;
    with_destinations(&app, &platforms).await;
    let (ga4, meta, tiktok) = platforms.endpoints();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut process = sending_process_with(
        &app,
        &format!("127.0.0.1:{port}"),
        "debug",
        Stdio::piped(),
        &[
            ("CLICKBACK_GA4_ENDPOINT", ga4),
            ("CLICKBACK_META_ENDPOINT", meta),
            ("CLICKBACK_TIKTOK_ENDPOINT", tiktok),
            ("CLICKBACK_DELIVERY_SCHEDULE", "1h".to_owned()),
        ],
    );
    let stderr = process.stderr.take().expect("piped");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Act
    let click_id = tagged_click(&app).await;
    postback_ok(&app, &click_id, "txid=ORDER-7").await;

    // Assert: every destination was tried and logged about (dead or failed).
    for destination in ["ga4", "meta", "tiktok", "webhook"] {
        delivery_to(&app, destination, |d| d["attempts"] == 1).await;
    }
    let _ = process.kill();
    let _ = process.wait();
    // The process is gone: the reader ends at the end of its stderr.
    let log: Vec<String> = lines.iter().collect();
    assert!(
        log.iter().any(|l| l.contains("dead")),
        "the log mentions the dead deliveries: {log:?}"
    );
    for line in &log {
        for secret in SECRETS {
            assert!(!line.contains(secret), "{secret} in the log: {line}");
        }
    }
    for destination in ["ga4", "meta", "tiktok", "webhook"] {
        let delivery = delivery_to(&app, destination, |_| true).await.to_string();
        for secret in SECRETS {
            assert!(!delivery.contains(secret), "{secret} in {delivery}");
        }
    }
}
