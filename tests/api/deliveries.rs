//! Affiliate postbacks (API.md §6): each conversion reaches the affiliate's
//! own server — macros filled in, at least once, retried on the schedule,
//! dead-lettered, retried by an operator, never to an internal address —
//! checked against a real receiver on loopback.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use clickback::config::Settings;
use serde_json::{json, Value};

use crate::helpers::*;

use crate::receiver::{Answer, Receiver};

/// Long enough for any delivery on a loaded CI machine; polls end sooner.
const WITHIN: Duration = Duration::from_secs(15);

/// Settings of an app that delivers to loopback and looks for due
/// deliveries often (retries come due when a test moves the clock). The
/// receiver is one host: room for every test's deliveries at once, as a
/// host over its limit is tried again a moment later on the app's clock,
/// which stands still unless a test moves it.
pub(crate) fn delivering(settings: &mut Settings) {
    settings.delivery.allow_private_targets = true;
    settings.delivery.host_concurrency = 32;
    settings.delivery.poll = Duration::from_millis(20);
    settings.delivery.timeout = Duration::from_secs(2);
    settings.delivery.connect_timeout = Duration::from_secs(1);
}

async fn delivering_app() -> TestApp {
    spawn_app_tweaked(delivering).await
}

/// A delivering app retrying on `schedule`.
async fn app_with_schedule(schedule: &str) -> TestApp {
    let schedule = clickback::delivery::schedule::Schedule::parse(schedule).expect("schedule");
    spawn_app_tweaked(|s| {
        delivering(s);
        s.delivery.schedule = schedule;
    })
    .await
}

/// Offer `o1`, and affiliate `a1` whose postback URL is `url`.
async fn with_affiliate_url(app: &TestApp, url: &str) {
    with_offer_and_affiliate_url(app, json!({}), url).await;
}

/// Offer `o1` with `offer` merged into the usual body, and affiliate `a1`
/// whose postback URL is `url`.
async fn with_offer_and_affiliate_url(app: &TestApp, offer: Value, url: &str) {
    app.create_offer("o1", offer).await;
    let response = app
        .put_affiliate("a1", &json!({"name": "a1", "postback_url": url}))
        .await;
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

/// `GET /api/v1/affiliates/a1/deliveries` (all pages' worth, one page).
async fn deliveries_of(app: &TestApp, aff: &str) -> Vec<Value> {
    let body = ok_json(
        app.admin_get(&format!("/api/v1/affiliates/{aff}/deliveries"))
            .await,
    )
    .await;
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

/// Waits until the only delivery of `a1` satisfies `check`, and returns it.
async fn delivery_when(app: &TestApp, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let list = deliveries_of(app, "a1").await;
        if let Some(found) = list.iter().find(|d| check(d)) {
            return found.clone();
        }
        assert!(
            started.elapsed() < WITHIN,
            "{what}: never; deliveries: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn attempts(d: &Value) -> u64 {
    d["attempts"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_conversion_reaches_the_affiliates_url_with_every_macro_filled_in_and_encoded() {
    let app = delivering_app().await;
    let receiver = Receiver::start();
    let url = format!(
        "{}/pb?cid={{click_id}}&conv={{conversion_id}}&o={{offer_id}}&a={{aff_id}}&s1={{sub1}}&s2={{sub2}}&s5={{sub5}}&src={{source}}&tx={{txid}}&g={{goal}}&st={{status}}&p={{payout}}&cur={{currency}}&amt={{amount}}&secret=keep-me",
        receiver.base
    );
    with_affiliate_url(&app, &url).await;
    let response = app
        .click(
            "o1",
            "aff_id=a1&sub1=a%20b%26c%3Dd&sub2=%C3%BC%2F&source=fb%3Fads",
        )
        .await;
    let click_id = click_id_from(&location(&response)).expect("click id");

    let answer = postback_ok(&app, &click_id, "txid=ORD-1&amount=19.99").await;

    let got = receiver.wait_for(1, WITHIN).await;
    let request = &got[0];
    let conversion_id = answer["conversion_id"].as_str().expect("conversion id");
    for (param, want) in [
        ("cid", click_id.as_str()),
        ("conv", conversion_id),
        ("o", "o1"),
        ("a", "a1"),
        ("s1", "a b&c=d"),
        ("s2", "ü/"),
        ("s5", ""),
        ("src", "fb?ads"),
        ("tx", "ORD-1"),
        ("g", ""),
        ("st", "approved"),
        ("p", "2.5"),
        ("cur", "EUR"),
        ("amt", "19.99"),
        ("secret", "keep-me"),
    ] {
        assert_eq!(
            request.param(param).as_deref(),
            Some(want),
            "{param} in {}",
            request.uri
        );
    }
    assert!(
        request.uri.contains("s1=a%20b%26c%3Dd"),
        "values are percent-encoded: {}",
        request.uri
    );
    assert_eq!(
        request.idempotency_key.as_deref(),
        Some(format!("{conversion_id}:approved").as_str())
    );
    assert!(
        request
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("clickback/")),
        "{request:?}"
    );
    let delivered = delivery_when(&app, "delivered", |d| d["state"] == "delivered").await;
    assert_eq!(delivered["conversion_id"], conversion_id);
    assert_eq!(delivered["status"], "approved");
    assert_eq!(delivered["attempts"], 1);
    assert_eq!(delivered["last_http_status"], 200);
    assert_eq!(
        delivered["url"],
        url.as_str(),
        "the URL as configured, secrets left in"
    );
    assert!(delivered["next_attempt_at"].is_null());
}

#[tokio::test]
async fn an_offer_postback_url_overrides_the_affiliates_url_for_that_offer() {
    let app = delivering_app().await;
    let receiver = Receiver::start();
    app.create_offer("o1", json!({})).await;
    app.create_offer("o2", json!({})).await;
    let response = app
        .put_affiliate(
            "a1",
            &json!({
                "name": "a1",
                "postback_url": format!("{}/all?c={{click_id}}", receiver.base),
                "offer_postback_urls": {"o2": format!("{}/o2-only?c={{click_id}}", receiver.base)}
            }),
        )
        .await;
    let saved = ok_json(response).await;
    assert_eq!(
        saved["offer_postback_urls"]["o2"],
        format!("{}/o2-only?c={{click_id}}", receiver.base)
    );
    let on_o1 = app.click_id("o1", "a1").await;
    let on_o2 = app.click_id("o2", "a1").await;

    postback_ok(&app, &on_o1, "").await;
    postback_ok(&app, &on_o2, "").await;

    let got = receiver.wait_for(2, WITHIN).await;
    let paths: HashSet<(String, String)> = got
        .iter()
        .map(|r| {
            let path = r.uri.split('?').next().unwrap_or("").to_owned();
            (path, r.param("c").unwrap_or_default())
        })
        .collect();
    assert_eq!(
        paths,
        HashSet::from([("/all".to_owned(), on_o1), ("/o2-only".to_owned(), on_o2)])
    );
}

#[tokio::test]
async fn a_status_change_is_delivered_again_with_the_new_status_and_its_own_idempotency_key() {
    let app = delivering_app().await;
    let receiver = Receiver::start();
    with_affiliate_url(
        &app,
        &format!(
            "{}/pb?st={{status}}&p={{payout}}&s1={{sub1}}",
            receiver.base
        ),
    )
    .await;
    let response = app.click("o1", "aff_id=a1&sub1=buyer-7").await;
    let click_id = click_id_from(&location(&response)).expect("click id");

    let first = postback_ok(&app, &click_id, "status=pending").await;
    receiver.wait_for(1, WITHIN).await;
    postback_ok(&app, &click_id, "status=approved").await;

    let got = receiver.wait_for(2, WITHIN).await;
    let conversion_id = first["conversion_id"].as_str().expect("conversion id");
    let seen: Vec<_> = got
        .iter()
        .map(|r| (r.param("st"), r.param("s1"), r.idempotency_key.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                Some("pending".into()),
                Some("buyer-7".into()),
                Some(format!("{conversion_id}:pending"))
            ),
            (
                Some("approved".into()),
                Some("buyer-7".into()),
                Some(format!("{conversion_id}:approved"))
            ),
        ]
    );
}

#[tokio::test]
async fn a_conversion_rejected_by_a_rule_or_a_duplicate_queues_no_postback() {
    let app = delivering_app().await;
    let receiver = Receiver::start();
    with_offer_and_affiliate_url(
        &app,
        json!({"min_ctc_secs": 60}),
        &format!("{}/pb?c={{click_id}}", receiver.base),
    )
    .await;
    let too_fast = app.click_id("o1", "a1").await;
    let fine = app.click_id("o1", "a1").await;
    let answer = postback_ok(&app, &too_fast, "").await;
    assert_eq!(answer["reason"], "too_fast", "{answer}");
    app.clock.advance(61);
    postback_ok(&app, &fine, "").await;
    postback_ok(&app, &fine, "").await;

    let got = receiver.wait_for(1, WITHIN).await;
    let listed = deliveries_of(&app, "a1").await;

    assert_eq!(
        listed.len(),
        1,
        "only the credited conversion is delivered: {listed:#?}"
    );
    assert_eq!(listed[0]["click_id"], fine.as_str());
    assert_eq!(got[0].param("c").as_deref(), Some(fine.as_str()));
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_postback_once_it_is_up() {
    let app = delivering_app().await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address").port()
    };
    with_affiliate_url(&app, &format!("http://127.0.0.1:{port}/pb?c={{click_id}}")).await;
    let click_id = app.click_id("o1", "a1").await;
    postback_ok(&app, &click_id, "").await;
    let failed = delivery_when(&app, "first attempt failed", |d| attempts(d) == 1).await;
    assert_eq!(failed["state"], "pending");
    assert!(failed["last_http_status"].is_null());
    assert!(
        failed["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    let now = app.clock.now();
    let next = failed["next_attempt_at"]
        .as_u64()
        .expect("a retry is scheduled");
    assert!(
        (now + 8..=now + 12).contains(&next),
        "10 s ± 10 %: {next} vs now {now}"
    );

    let receiver =
        Receiver::start_on(std::net::TcpListener::bind(("127.0.0.1", port)).expect("rebind"));
    app.clock.advance(12);

    let got = receiver.wait_for(1, WITHIN).await;
    assert_eq!(got[0].param("c").as_deref(), Some(click_id.as_str()));
    let delivered = delivery_when(&app, "delivered", |d| d["state"] == "delivered").await;
    assert_eq!(delivered["attempts"], 2);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_on_the_schedule_then_dead_then_delivered_after_an_operator_retry(
) {
    let app = app_with_schedule("10s,1m").await;
    let receiver = Receiver::start();
    receiver.answer(Answer::Status(500));
    with_affiliate_url(&app, &format!("{}/pb", receiver.base)).await;
    let click_id = app.click_id("o1", "a1").await;
    postback_ok(&app, &click_id, "").await;

    let first = delivery_when(&app, "attempt 1", |d| attempts(d) == 1).await;
    assert_eq!(
        (first["state"].as_str(), first["last_http_status"].as_u64()),
        (Some("pending"), Some(500))
    );
    app.clock.advance(11);
    let second = delivery_when(&app, "attempt 2", |d| attempts(d) == 2).await;
    assert_eq!(second["state"], "pending");
    let next = second["next_attempt_at"].as_u64().expect("scheduled");
    let now = app.clock.now();
    assert!(
        (now + 53..=now + 67).contains(&next),
        "1 m ± 10 %: {next} vs {now}"
    );
    app.clock.advance(67);
    let dead = delivery_when(&app, "dead", |d| d["state"] == "dead").await;
    assert_eq!(dead["attempts"], 3, "the first attempt and two retries");
    assert_eq!(receiver.received().len(), 3);
    let dead_list = ok_json(app.admin_get("/api/v1/deliveries?state=dead").await).await;
    assert_eq!(dead_list["deliveries"][0]["id"], dead["id"]);
    let id = dead["id"].as_str().expect("id").to_owned();

    receiver.answer(Answer::Status(204));
    let retried = app
        .client
        .post(format!("{}/api/v1/deliveries/{id}/retry", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("sent");
    let retried = ok_json(retried).await;
    assert_eq!(retried["state"], "pending");

    let delivered = delivery_when(&app, "delivered after the retry", |d| {
        d["state"] == "delivered"
    })
    .await;
    assert_eq!(
        (
            delivered["attempts"].as_u64(),
            delivered["last_http_status"].as_u64()
        ),
        (Some(4), Some(204))
    );
    let dead_list = ok_json(app.admin_get("/api/v1/deliveries?state=dead").await).await;
    assert_eq!(dead_list["deliveries"], json!([]));
    let again = app
        .client
        .post(format!("{}/api/v1/deliveries/{id}/retry", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("sent");
    assert_rejected(again, 409, "already_delivered").await;
    let metrics = app.metrics().await;
    for (result, want) in [("failed", 2.0), ("dead", 1.0), ("delivered", 1.0)] {
        let series =
            format!("clickback_deliveries_total{{destination=\"affiliate\",result=\"{result}\"}}");
        assert_eq!(metric_value(&metrics, &series), want, "{series}");
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_counts_as_a_failure_naming_its_location() {
    let app = delivering_app().await;
    let receiver = Receiver::start();
    receiver.answer(Answer::Redirect(format!("{}/elsewhere", receiver.base)));
    with_affiliate_url(&app, &format!("{}/pb", receiver.base)).await;
    let click_id = app.click_id("o1", "a1").await;

    postback_ok(&app, &click_id, "").await;

    let failed = delivery_when(&app, "attempt 1", |d| attempts(d) == 1).await;
    assert_eq!(failed["last_http_status"], 302);
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("/elsewhere")),
        "{failed}"
    );
    let paths: Vec<_> = receiver.received().into_iter().map(|r| r.uri).collect();
    assert_eq!(
        paths,
        vec!["/pb".to_owned()],
        "the Location was not visited"
    );
}

#[tokio::test]
async fn two_instances_on_one_redis_deliver_each_postback_once() {
    let app = spawn_app_tweaked(delivering).await;
    let receiver = Receiver::start();
    with_affiliate_url(&app, &format!("{}/pb?c={{click_id}}", receiver.base)).await;
    let sibling = spawn_sibling(&app, delivering).await;
    let mut clicks = Vec::new();
    for i in 0..20 {
        let via = if i % 2 == 0 { &app } else { &sibling };
        let click_id = via.click_id("o1", "a1").await;
        postback_ok(via, &click_id, "").await;
        clicks.push(click_id);
    }

    let started = std::time::Instant::now();
    loop {
        let listed = deliveries_of(&app, "a1").await;
        if listed.len() == 20 && listed.iter().all(|d| d["state"] == "delivered") {
            break;
        }
        assert!(started.elapsed() < WITHIN, "not all delivered: {listed:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = receiver.received();
    let keys: HashSet<_> = got
        .iter()
        .filter_map(|r| r.idempotency_key.clone())
        .collect();
    assert_eq!(got.len(), 20, "each delivered once: {got:#?}");
    assert_eq!(keys.len(), 20);
    let delivered: HashSet<_> = got.iter().filter_map(|r| r.param("c")).collect();
    assert_eq!(delivered, clicks.into_iter().collect());
}

/// A clickback process on `app`'s Redis and key prefix, listening on
/// `listen`, that sends deliveries (30 s request timeout) and nothing else
/// of the test's.
fn sending_process(app: &TestApp, listen: &str) -> std::process::Child {
    sending_process_logging(app, listen, "warn", Stdio::null())
}

/// [`sending_process`] with its log filter and where its log goes.
pub(crate) fn sending_process_logging(
    app: &TestApp,
    listen: &str,
    log: &str,
    stderr: Stdio,
) -> std::process::Child {
    sending_process_with(app, listen, log, stderr, &[])
}

/// [`sending_process_logging`] with more environment variables.
pub(crate) fn sending_process_with(
    app: &TestApp,
    listen: &str,
    log: &str,
    stderr: Stdio,
    env: &[(&str, String)],
) -> std::process::Child {
    let Backend::Redis { url, prefix } = app.backend.clone() else {
        unreachable!("a Redis app")
    };
    Command::new(env!("CARGO_BIN_EXE_clickback"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CLICKBACK_LISTEN", listen)
        .env(redis_server::target_variable(&url), &url)
        .env("CLICKBACK_KEY_PREFIX", &prefix)
        .env("CLICKBACK_ALLOW_PRIVATE_TARGETS", "1")
        .env("CLICKBACK_DELIVERY_POLL_MS", "20")
        .env("CLICKBACK_DELIVERY_TIMEOUT_MS", "30000")
        .env("RUST_LOG", log)
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("clickback starts")
}

/// An app that takes postbacks but sends nothing (a clickback process
/// sends), whose affiliate `a1` posts back to `receiver`.
async fn app_leaving_deliveries_to_a_process(receiver: &Receiver) -> TestApp {
    let app = spawn_app_tweaked(|s| {
        s.delivery.concurrency = 0;
        s.delivery.allow_private_targets = true;
    })
    .await;
    with_affiliate_url(&app, &format!("{}/pb", receiver.base)).await;
    app
}

#[tokio::test]
async fn a_shut_down_instance_finishes_the_delivery_in_flight_before_it_exits() {
    let receiver = Receiver::start();
    receiver.answer_next(Answer::Hold);
    let app = app_leaving_deliveries_to_a_process(&receiver).await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address").port()
    };
    let mut sender =
        sending_process_logging(&app, &format!("127.0.0.1:{port}"), "info", Stdio::piped());
    let log = sender.stderr.take().expect("piped");
    let (lines, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let up = eventually(WITHIN, || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(up.is_some(), "the sending instance listens");
    let click_id = app.click_id("o1", "a1").await;
    postback_ok(&app, &click_id, "").await;
    receiver.wait_for(1, WITHIN).await;

    let terminated = Command::new("kill")
        .args(["-TERM", &sender.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(terminated.success());
    // The HTTP server stops first; then the delivery worker, which says it
    // waits for its attempt. Only then does the receiver answer.
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = said.recv_timeout(left).expect("the worker says it waits");
        if line.contains("waiting up to") && line.contains("1 deliveries in flight") {
            break;
        }
    }
    assert!(
        sender.try_wait().expect("status").is_none(),
        "still running: the delivery in flight holds the shutdown"
    );
    receiver.release();

    let exited = eventually(WITHIN, || {
        let status = sender.try_wait().expect("status");
        async move { status.is_some() }
    })
    .await;
    assert!(exited.is_some(), "exits once the attempt is done");
    let delivered = delivery_when(&app, "delivered", |d| d["state"] == "delivered").await;
    assert_eq!(delivered["attempts"], 1, "recorded before the exit");
}

#[tokio::test]
async fn a_killed_instance_leaves_its_delivery_to_another_instance_with_the_same_idempotency_key() {
    let receiver = Receiver::start();
    receiver.answer_next(Answer::Hold);
    let app = app_leaving_deliveries_to_a_process(&receiver).await;
    let mut sender = sending_process(&app, "127.0.0.1:0");
    let click_id = app.click_id("o1", "a1").await;
    let answer = postback_ok(&app, &click_id, "").await;
    let held = receiver.wait_for(1, WITHIN).await;

    sender.kill().expect("SIGKILL");
    sender.wait().expect("reaped");
    let listed = deliveries_of(&app, "a1").await;
    assert_eq!(
        listed[0]["state"], "pending",
        "in flight when killed: {listed:#?}"
    );
    // Another instance takes the delivery over once the dead one's lease
    // (twice the 30 s timeout and 10 s, counted from its claim) has run out.
    let successor = spawn_sibling(&app, delivering).await;
    app.clock.advance(120);
    receiver.release();

    let got = receiver.wait_for(2, WITHIN).await;
    let key = format!("{}:approved", answer["conversion_id"].as_str().expect("id"));
    assert_eq!(held[0].idempotency_key.as_deref(), Some(key.as_str()));
    assert_eq!(
        got[1].idempotency_key.as_deref(),
        Some(key.as_str()),
        "the receiver can drop the repeat"
    );
    let delivered = delivery_when(&successor, "delivered", |d| d["state"] == "delivered").await;
    assert_eq!(
        delivered["attempts"], 1,
        "the killed attempt never reported"
    );
}

#[tokio::test]
async fn a_host_with_its_limit_in_flight_gets_the_next_postback_a_moment_later_without_an_attempt_counted(
) {
    let app = spawn_app_tweaked(|s| {
        delivering(s);
        s.delivery.host_concurrency = 1;
    })
    .await;
    let receiver = Receiver::start();
    receiver.answer_next(Answer::Hold);
    with_affiliate_url(&app, &format!("{}/pb?c={{click_id}}", receiver.base)).await;
    let first = app.click_id("o1", "a1").await;
    postback_ok(&app, &first, "").await;
    receiver.wait_for(1, WITHIN).await;
    let second = app.click_id("o1", "a1").await;

    postback_ok(&app, &second, "").await;

    let postponed = eventually(WITHIN, || async {
        metric_value(
            &app.metrics().await,
            "clickback_deliveries_total{destination=\"affiliate\",result=\"postponed\"}",
        ) >= 1.0
    })
    .await;
    assert!(
        postponed.is_some(),
        "the second waits while the first holds the host"
    );
    let listed = deliveries_of(&app, "a1").await;
    let waiting = listed
        .iter()
        .find(|d| d["click_id"] == second.as_str())
        .expect("listed");
    assert_eq!(
        (waiting["state"].as_str(), waiting["attempts"].as_u64()),
        (Some("pending"), Some(0))
    );
    receiver.release();
    // The host is free once the first is recorded; only then is the clock
    // moved past the second's postponement (the clock stands still: moved
    // earlier, a claim that finds the host still busy would postpone it
    // past the moved clock).
    delivery_when(&app, "the first delivered", |d| {
        d["click_id"] == first.as_str() && d["state"] == "delivered"
    })
    .await;
    app.clock.advance(1);
    let got = receiver.wait_for(2, WITHIN).await;
    assert_eq!(got[1].param("c").as_deref(), Some(second.as_str()));
}

#[tokio::test]
async fn postback_urls_naming_an_internal_address_are_refused_when_saved() {
    let app = spawn_app().await;
    for host in [
        "127.0.0.1",
        "10.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "localhost",
        "100.64.0.1",
    ] {
        let url = format!("http://{host}/pb?c={{click_id}}");
        let response = app.put_affiliate("a1", &json!({"postback_url": url})).await;
        let body = assert_rejected(response, 400, "private_target").await;
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("postback_url")),
            "{body}"
        );
        let response = app
            .put_affiliate("a1", &json!({"offer_postback_urls": {"o1": url}}))
            .await;
        assert_rejected(response, 400, "private_target").await;
    }
    let response = app.admin_get("/api/v1/affiliates/a1").await;
    assert_eq!(response.status(), 404, "nothing was saved");
}

#[tokio::test]
async fn a_host_name_resolving_to_loopback_is_refused_at_delivery_and_nothing_is_sent() {
    let receiver = Receiver::start();
    let app = spawn_app_tweaked(|s| {
        s.delivery.poll = Duration::from_millis(20);
        s.delivery.static_hosts =
            vec![("tracker.example".into(), "127.0.0.1".parse().expect("ip"))];
    })
    .await;
    with_affiliate_url(
        &app,
        &format!("http://tracker.example:{}/pb", receiver.port),
    )
    .await;
    let click_id = app.click_id("o1", "a1").await;

    postback_ok(&app, &click_id, "").await;

    let failed = delivery_when(&app, "attempt 1", |d| attempts(d) == 1).await;
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("private_target")),
        "{failed}"
    );
    assert!(receiver.received().is_empty(), "nothing reached loopback");
}

#[tokio::test]
async fn unknown_macros_and_unusable_postback_urls_are_refused_with_their_name() {
    let app = spawn_app().await;
    for (body, needle) in [
        (
            json!({"postback_url": "https://t.example/pb?c={clickid}"}),
            "clickid",
        ),
        (
            json!({"postback_url": "ftp://t.example/pb"}),
            "postback_url",
        ),
        (
            json!({"offer_postback_urls": {"o1": "https://t.example/pb?x={nope}"}}),
            "nope",
        ),
        (
            json!({"offer_postback_urls": {"bad id!": "https://t.example/pb"}}),
            "offer_postback_urls",
        ),
    ] {
        let response = app.put_affiliate("a1", &body).await;
        let answer = assert_rejected(response, 400, "invalid_request").await;
        assert!(
            answer["detail"]
                .as_str()
                .is_some_and(|d| d.contains(needle)),
            "{needle}: {answer}"
        );
    }
}

#[tokio::test]
async fn the_memory_store_delivers_too() {
    let mut settings = test_settings(None, "mem");
    delivering(&mut settings);
    let app = spawn_app_with(Backend::Memory, settings).await;
    let receiver = Receiver::start();
    with_affiliate_url(
        &app,
        &format!("{}/pb?c={{click_id}}&st={{status}}", receiver.base),
    )
    .await;
    let click_id = app.click_id("o1", "a1").await;

    postback_ok(&app, &click_id, "status=pending").await;
    postback_ok(&app, &click_id, "status=rejected").await;

    let got = receiver.wait_for(2, WITHIN).await;
    let mut statuses: Vec<_> = got.iter().filter_map(|r| r.param("st")).collect();
    statuses.sort();
    assert_eq!(statuses, vec!["pending".to_owned(), "rejected".to_owned()]);
}

#[tokio::test]
async fn the_backlog_gauges_show_pending_deliveries_and_the_age_of_the_oldest() {
    let app = app_with_schedule("1h").await;
    let receiver = Receiver::start();
    receiver.answer(Answer::Status(503));
    with_affiliate_url(&app, &format!("{}/pb", receiver.base)).await;
    let click_id = app.click_id("o1", "a1").await;
    postback_ok(&app, &click_id, "").await;
    delivery_when(&app, "attempt 1", |d| attempts(d) == 1).await;
    app.clock.advance(600);

    let shown = eventually(WITHIN, || async {
        let metrics = app.metrics().await;
        metric_value(&metrics, "clickback_delivery_queue_pending") == 1.0
            && metric_value(&metrics, "clickback_delivery_oldest_pending_seconds") >= 600.0
    })
    .await;
    assert!(shown.is_some(), "{}", app.metrics().await);
}

#[tokio::test]
async fn the_delivery_log_pages_with_its_cursor_and_refuses_what_it_cannot_read() {
    let app = delivering_app().await;
    let receiver = Receiver::start();
    with_affiliate_url(&app, &format!("{}/pb", receiver.base)).await;
    for _ in 0..5 {
        let click_id = app.click_id("o1", "a1").await;
        postback_ok(&app, &click_id, "").await;
    }
    receiver.wait_for(5, WITHIN).await;

    let mut seen = Vec::new();
    let mut path = "/api/v1/affiliates/a1/deliveries?limit=2".to_owned();
    for _ in 0..5 {
        let page = ok_json(app.admin_get(&path).await).await;
        let entries = page["deliveries"].as_array().cloned().unwrap_or_default();
        assert!(entries.len() <= 2, "{page}");
        seen.extend(
            entries
                .iter()
                .map(|d| d["id"].as_str().unwrap_or("").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/v1/affiliates/a1/deliveries?limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (5, 5), "{seen:?}");

    for (path, status, reason) in [
        (
            "/api/v1/affiliates/a1/deliveries?limit=0",
            400,
            "invalid_request",
        ),
        (
            "/api/v1/affiliates/a1/deliveries?limit=1001",
            400,
            "invalid_request",
        ),
        (
            "/api/v1/affiliates/a1/deliveries?cursor=nonsense",
            400,
            "invalid_request",
        ),
        (
            "/api/v1/affiliates/nobody/deliveries",
            404,
            "unknown_affiliate",
        ),
        ("/api/v1/deliveries", 400, "invalid_request"),
        ("/api/v1/deliveries?state=delivered", 400, "invalid_request"),
    ] {
        assert_rejected(app.admin_get(path).await, status, reason).await;
    }
    for id in ["Anot-a-delivery.z", "Anever-made.a"] {
        let response = app
            .client
            .post(format!("{}/api/v1/deliveries/{id}/retry", app.address))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("sent");
        assert_rejected(response, 404, "unknown_delivery").await;
    }
    let anonymous = app
        .client
        .get(format!("{}/api/v1/deliveries?state=dead", app.address))
        .send()
        .await
        .expect("sent");
    assert_rejected(anonymous, 401, "unauthorized").await;
}
