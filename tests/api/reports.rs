//! Reports people reconcile with (API.md §3 and §8): `group_by` hour,
//! status, sub1-sub5, source and goal, `tz`, the "other" bucket past the
//! daily cap, and CSV answers read back by Python's `csv` module.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::keys::{create_key, get_as};

/// A tracked click of o1 by a1 with `query` (subs, source) added; its id.
async fn click_with(app: &TestApp, offer: &str, query: &str) -> String {
    let response = app.click(offer, &format!("aff_id=a1&{query}")).await;
    assert_eq!(response.status(), 302, "click {query}");
    let location = location(&response);
    click_id_from(&location).unwrap_or_else(|| panic!("no click id in {location}"))
}

/// `(value of column, clicks, conversions, payout)` of each row.
fn by(rows: &[Value], column: &str) -> Vec<(Value, i64, i64, String)> {
    rows.iter()
        .map(|row| {
            (
                row[column].clone(),
                row["clicks"].as_i64().unwrap_or(-1),
                row["conversions"].as_i64().unwrap_or(-1),
                row["payout"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

/// `GET <path>` with the admin token as CSV (`format=csv`): the body, after
/// checking the media type.
async fn csv_of(app: &TestApp, path: &str) -> String {
    let response = app.admin_get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let media = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(media.starts_with("text/csv"), "{media}");
    response.text().await.expect("csv body")
}

/// The records of a CSV text as Python's `csv` module reads them.
fn python_reads(csv_text: &str) -> Vec<Vec<String>> {
    use std::io::Write;
    let mut python = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv, io, json, sys; \
             print(json.dumps(list(csv.reader(io.StringIO(sys.stdin.buffer.read().decode('utf-8'), newline='')))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    python
        .stdin
        .take()
        .expect("stdin")
        .write_all(csv_text.as_bytes())
        .expect("csv written");
    let out = python.wait_with_output().expect("python3 ends");
    assert!(out.status.success(), "python3 failed");
    serde_json::from_slice(&out.stdout).expect("python's json")
}

#[tokio::test]
async fn grouping_by_sub1_and_source_counts_each_values_clicks_and_conversions() {
    // Arrange: camp-a ×3 from fb (one converts), camp-b ×2 from tt (one
    // converts), one click without sub1 or source.
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let mut a = Vec::new();
    for _ in 0..3 {
        a.push(click_with(&app, "o1", "sub1=camp-a&source=fb").await);
    }
    let b = click_with(&app, "o1", "sub1=camp-b&source=tt").await;
    click_with(&app, "o1", "sub1=camp-b&source=tt").await;
    click_with(&app, "o1", "").await;
    postback_ok(&app, &a[0], "txid=t1").await;
    postback_ok(&app, &b, "txid=t2").await;

    // Act
    let subs = app.stats("group_by=sub1").await;
    let sources = app.stats("group_by=source").await;

    // Assert
    assert_eq!(
        by(&subs, "sub1"),
        vec![
            (json!(""), 1, 0, "0".into()),
            (json!("camp-a"), 3, 1, "2.5".into()),
            (json!("camp-b"), 2, 1, "2.5".into()),
        ]
    );
    assert_eq!(
        by(&sources, "source"),
        vec![
            (json!(""), 1, 0, "0".into()),
            (json!("fb"), 3, 1, "2.5".into()),
            (json!("tt"), 2, 1, "2.5".into()),
        ]
    );
    assert!(subs.iter().all(|r| r["currency"] == "EUR"), "{subs:?}");
}

#[tokio::test]
async fn each_of_sub1_to_sub5_is_its_own_grouping() {
    // Arrange: two clicks whose subs differ in every position.
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    click_with(&app, "o1", "sub1=x1&sub2=x2&sub3=x3&sub4=x4&sub5=x5").await;
    click_with(&app, "o1", "sub1=y1&sub2=y2&sub3=y3&sub4=y4&sub5=y5").await;

    for n in 1..=5 {
        // Act
        let rows = app.stats(&format!("group_by=sub{n}")).await;

        // Assert
        let column = format!("sub{n}");
        assert_eq!(
            by(&rows, &column),
            vec![
                (json!(format!("x{n}")), 1, 0, "0".into()),
                (json!(format!("y{n}")), 1, 0, "0".into()),
            ],
            "group_by={column}"
        );
    }
}

#[tokio::test]
async fn grouping_by_goal_counts_the_conversions_of_each_goal() {
    // Arrange: one click converts on "reg" and "dep", another on "reg".
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let first = app.click_id("o1", "a1").await;
    let second = app.click_id("o1", "a1").await;
    postback_ok(&app, &first, "goal=reg").await;
    postback_ok(&app, &first, "goal=dep").await;
    postback_ok(&app, &second, "goal=reg").await;

    // Act
    let rows = app.stats("group_by=goal").await;

    // Assert: clicks have no goal, so goal rows hold conversions only.
    assert_eq!(
        by(&rows, "goal"),
        vec![
            (json!("dep"), 0, 1, "2.5".into()),
            (json!("reg"), 0, 2, "5".into()),
        ]
    );
}

#[tokio::test]
async fn grouping_by_status_gives_clicks_and_each_status_a_row_and_follows_an_approval() {
    // Arrange: four clicks with sub1 "s"; one approved, one pending, one
    // rejected.
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(click_with(&app, "o1", "sub1=s").await);
    }
    postback_ok(&app, &ids[0], "txid=t1").await;
    postback_ok(&app, &ids[1], "txid=t2&status=pending").await;
    postback_ok(&app, &ids[2], "txid=t3&status=rejected").await;

    // Act
    let before = app.stats("group_by=status").await;
    postback_ok(&app, &ids[1], "txid=t2&status=approved").await;
    let after = app.stats("group_by=status,sub1").await;

    // Assert
    let shown = |rows: &[Value]| -> Vec<(Value, i64, i64, i64, i64)> {
        rows.iter()
            .map(|r| {
                (
                    r["status"].clone(),
                    r["clicks"].as_i64().unwrap_or(-1),
                    r["conversions"].as_i64().unwrap_or(-1),
                    r["pending_conversions"].as_i64().unwrap_or(-1),
                    r["rejected_conversions"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    assert_eq!(
        shown(&before),
        vec![
            (Value::Null, 4, 0, 0, 0),
            (json!("approved"), 0, 1, 0, 0),
            (json!("pending"), 0, 0, 1, 0),
            (json!("rejected"), 0, 0, 0, 1),
        ]
    );
    assert_eq!(
        shown(&after),
        vec![
            (Value::Null, 4, 0, 0, 0),
            (json!("approved"), 0, 2, 0, 0),
            (json!("rejected"), 0, 0, 0, 1),
        ],
        "the approval moved out of pending in the report counters too"
    );
    assert!(after.iter().all(|r| r["sub1"] == "s"), "{after:?}");
    assert_eq!(after[1]["payout"], "5");
}

#[tokio::test]
async fn grouping_by_hour_puts_each_click_in_its_utc_hour() {
    // Arrange: a click now, two an hour later.
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let hour = app.clock.now() / 3600 % 24;
    app.click_id("o1", "a1").await;
    app.clock.advance(3600);
    app.click_id("o1", "a1").await;
    app.click_id("o1", "a1").await;
    let today = app.today();

    // Act
    let rows = app
        .stats(&format!(
            "group_by=day,hour&from={}&to={}",
            today.minus(1),
            today
        ))
        .await;

    // Assert
    let shown: Vec<(u64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["hour"].as_u64().unwrap_or(99),
                r["clicks"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(shown, vec![(hour, 1), ((hour + 1) % 24, 2)]);
}

#[tokio::test]
async fn a_click_at_23_30_utc_lands_on_the_next_day_in_berlin() {
    // Arrange: the clock at 23:30 UTC yesterday (Berlin is UTC+1 or +2).
    let midnight = clickback::domain::unix_now() / 86_400 * 86_400;
    let app = spawn_app_at(midnight - 1800).await;
    app.with_offer_and_affiliate().await;
    let id = app.click_id("o1", "a1").await;
    postback_ok(&app, &id, "txid=t1").await;
    let utc_day = app.today();
    let range = format!("from={}&to={}", utc_day.minus(1), utc_day.succ());

    // Act
    let utc = app.stats(&format!("group_by=day&{range}")).await;
    let berlin = app
        .stats(&format!("group_by=day&tz=Europe/Berlin&{range}"))
        .await;
    let new_york = app
        .stats(&format!("group_by=day&tz=America/New_York&{range}"))
        .await;

    // Assert
    let days = |rows: &[Value]| -> Vec<(String, i64, i64)> {
        rows.iter()
            .map(|r| {
                (
                    r["day"].as_str().unwrap_or("?").to_owned(),
                    r["clicks"].as_i64().unwrap_or(-1),
                    r["conversions"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    assert_eq!(days(&utc), vec![(utc_day.to_string(), 1, 1)]);
    assert_eq!(days(&berlin), vec![(utc_day.succ().to_string(), 1, 1)]);
    assert_eq!(days(&new_york), vec![(utc_day.to_string(), 1, 1)]);
}

#[tokio::test]
async fn one_sub1_value_under_two_currencies_is_two_rows() {
    // Arrange: o1 pays EUR, o2 USD; both convert under sub1 "same".
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    app.create_offer("o2", json!({"currency": "USD", "payout": "1"}))
        .await;
    let eur = click_with(&app, "o1", "sub1=same").await;
    let usd = click_with(&app, "o2", "sub1=same").await;
    postback_ok(&app, &eur, "txid=t1").await;
    postback_ok(&app, &usd, "txid=t2").await;

    // Act
    let rows = app.stats("group_by=sub1").await;

    // Assert
    let shown: Vec<(Value, Value, Value)> = rows
        .iter()
        .map(|r| {
            (
                r["sub1"].clone(),
                r["currency"].clone(),
                r["payout"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (json!("same"), json!("EUR"), json!("2.5")),
            (json!("same"), json!("USD"), json!("1")),
        ]
    );
}

#[tokio::test]
async fn past_the_days_cap_new_values_are_counted_together_as_other() {
    // Arrange: room for two values; "a" and "b" take it, "c" and "d" come after.
    let app = spawn_app_with_report_cap(2).await;
    app.with_offer_and_affiliate().await;
    for sub1 in ["a", "b"] {
        click_with(&app, "o1", &format!("sub1={sub1}")).await;
        // Each read writes the counts queued so far: the values' order is the clicks'.
        app.stats("group_by=sub1").await;
    }
    for sub1 in ["c", "a", "d"] {
        click_with(&app, "o1", &format!("sub1={sub1}")).await;
    }

    // Act
    let rows = app.stats("group_by=sub1").await;
    let total = app.stats("").await;

    // Assert
    let shown: Vec<(Value, Value, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["sub1"].clone(),
                r.get("other").cloned().unwrap_or(Value::Null),
                r["clicks"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (json!("a"), Value::Null, 2),
            (json!("b"), Value::Null, 1),
            (Value::Null, json!(true), 2),
        ]
    );
    assert_eq!(total[0]["clicks"], 5, "nothing is lost past the cap");
}

#[tokio::test]
async fn a_bad_group_by_tz_or_format_is_a_400_naming_it() {
    // Arrange
    let app = spawn_app().await;

    for (query, needle) in [
        ("group_by=sub1,source", "at most one of"),
        ("group_by=sub6", "sub6"),
        ("tz=Mars/Olympus_Mons", "tz"),
        ("tz=..%2F..%2Fetc%2Fpasswd", "tz"),
        ("format=xml", "format"),
    ] {
        // Act
        let response = app.admin_get(&format!("/api/v1/stats?{query}")).await;

        // Assert
        let body = assert_rejected(response, 400, "invalid_request").await;
        assert!(
            body["detail"].as_str().unwrap_or("").contains(needle),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn stats_csv_reads_back_in_python_with_formulas_escaped() {
    // Arrange: subs a spreadsheet would run, and ones that need quoting.
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let tricky = [
        "=HYPERLINK(\"http://x\")",
        "+1",
        "-2",
        "@SUM(A1)",
        "a,\"b\"\nc",
        "plain",
    ];
    for sub1 in tricky {
        let encoded: String = url::form_urlencoded::byte_serialize(sub1.as_bytes()).collect();
        click_with(&app, "o1", &format!("sub1={encoded}")).await;
    }

    // Act
    let text = csv_of(&app, "/api/v1/stats?group_by=sub1&format=csv").await;
    let records = python_reads(&text);

    // Assert
    assert!(text.contains("\r\n"), "RFC 4180 line ends");
    assert_eq!(
        records[0],
        [
            "sub1",
            "other",
            "currency",
            "clicks",
            "conversions",
            "payout",
            "revenue",
            "pending_conversions",
            "pending_payout",
            "rejected_conversions",
            "declined_clicks",
            "unique_clicks",
            "capped_clicks"
        ]
    );
    let mut subs: Vec<&str> = records[1..].iter().map(|r| r[0].as_str()).collect();
    subs.sort();
    assert_eq!(
        subs,
        vec![
            "'+1",
            "'-2",
            "'=HYPERLINK(\"http://x\")",
            "'@SUM(A1)",
            "a,\"b\"\nc",
            "plain"
        ]
    );
    assert!(records[1..].iter().all(|r| r[3] == "1" && r[2] == "EUR"));
}

#[tokio::test]
async fn the_conversion_list_as_csv_holds_every_conversion_and_reads_back_in_python() {
    // Arrange: three conversions, one with a sub1 that looks like a formula.
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let mut ids = Vec::new();
    for (i, sub1) in ["=1+1", "camp, 7", "x"].into_iter().enumerate() {
        let encoded: String = url::form_urlencoded::byte_serialize(sub1.as_bytes()).collect();
        let click = click_with(&app, "o1", &format!("sub1={encoded}")).await;
        let answer = postback_ok(&app, &click, &format!("txid=T{i}")).await;
        ids.push(answer["conversion_id"].as_str().expect("id").to_owned());
    }

    // Act: `limit` pages JSON only; the CSV holds every conversion.
    let response = app
        .client
        .get(format!("{}/api/v1/conversions?limit=1", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("Accept", "text/csv")
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200);
    let records = python_reads(&response.text().await.expect("csv"));

    // Assert
    let header = &records[0];
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    assert_eq!(records.len(), 4, "{records:?}");
    let mut listed: Vec<String> = records[1..]
        .iter()
        .map(|r| r[column("id")].clone())
        .collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    let mut subs: Vec<&str> = records[1..]
        .iter()
        .map(|r| r[column("sub1")].as_str())
        .collect();
    subs.sort();
    assert_eq!(subs, vec!["'=1+1", "camp, 7", "x"]);
    assert!(records[1..].iter().all(|r| r[column("payout")] == "2.5"
        && r[column("status")] == "approved"
        && r[column("history")].starts_with("approved:")));
}

#[tokio::test]
async fn an_affiliates_csv_never_has_a_revenue_column() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let click = click_with(&app, "o1", "sub1=s").await;
    postback_ok(&app, &click, "txid=T1").await;
    let (_, secret) = create_key(
        &app,
        json!({"role": "affiliate", "aff_id": "a1", "name": "a1"}),
    )
    .await;

    for path in [
        "/api/v1/me/stats?group_by=sub1&format=csv",
        "/api/v1/me/conversions?format=csv",
    ] {
        // Act
        let response = get_as(&app, &secret, path).await;

        // Assert
        assert_eq!(response.status(), 200, "{path}");
        let records = python_reads(&response.text().await.expect("csv"));
        assert!(records[0].iter().any(|h| h == "payout"), "{path}");
        assert!(!records[0].iter().any(|h| h == "revenue"), "{path}");
        assert_eq!(records.len(), 2, "{path}: {records:?}");
    }
}

#[tokio::test]
async fn the_delivery_list_as_csv_reads_back_in_python() {
    // Arrange: an affiliate with a postback URL on this machine's discard
    // port: the delivery is listed whatever its attempts find.
    let app = spawn_app_tweaked(|s| s.delivery.allow_private_targets = true).await;
    app.create_offer("o1", json!({})).await;
    let put = app
        .put_affiliate(
            "a1",
            &json!({"name": "a1", "status": "active",
                    "postback_url": "http://127.0.0.1:9/pb?cid={click_id}&s={sub1}"}),
        )
        .await;
    assert_eq!(put.status(), 200);
    let click = click_with(&app, "o1", "sub1=s").await;
    postback_ok(&app, &click, "txid=T1").await;

    // Act
    let text = csv_of(&app, "/api/v1/affiliates/a1/deliveries?format=csv").await;
    let records = python_reads(&text);

    // Assert
    assert_eq!(records[0][0], "id");
    assert_eq!(records.len(), 2, "{records:?}");
    let column = |name: &str| records[0].iter().position(|h| h == name).expect(name);
    assert_eq!(
        (
            records[1][column("offer_id")].as_str(),
            records[1][column("status")].as_str(),
            records[1][column("payout")].as_str(),
        ),
        ("o1", "approved", "2.5")
    );
}

#[tokio::test]
async fn the_postback_log_as_csv_reads_back_in_python() {
    // Arrange: one credited postback, one refused for its token.
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let click = app.click_id("o1", "a1").await;
    postback_ok(&app, &click, "goal=%3Dcmd").await;
    let refused = app
        .postback(&format!("click_id={click}&token=wrong-token&txid=T2"))
        .await;
    assert_eq!(refused.status(), 403);

    // Act
    let text = eventually_csv(&app, "/api/v1/postbacks?offer_id=o1&format=csv", 3).await;
    let records = python_reads(&text);

    // Assert
    let column = |name: &str| records[0].iter().position(|h| h == name).expect(name);
    let mut outcomes: Vec<(String, String)> = records[1..]
        .iter()
        .map(|r| (r[column("outcome")].clone(), r[column("txid")].clone()))
        .collect();
    outcomes.sort();
    assert_eq!(outcomes.len(), 2, "{records:?}");
    assert_eq!(outcomes[1].1, "T2");
    assert!(records[1..]
        .iter()
        .any(|r| r[column("payout")] == "2.5" && r[column("goal")] == "'=cmd"));
}

/// The CSV at `path` once it has `lines` records (the header included):
/// the postback log is written a moment after the answer. Polls for 5 s.
async fn eventually_csv(app: &TestApp, path: &str, lines: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = csv_of(app, path).await;
        if python_reads(&text).len() >= lines {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never had {lines} records: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_days_cap_on_report_values_is_the_operators_setting() {
    // Arrange: a server built from its settings as `main` builds it (the
    // embedded store), allowing one sub1 value a day.
    let mut settings = test_settings(None, "cap");
    settings.report_values_per_day = 1;
    let app = clickback::startup::Application::build(settings)
        .await
        .expect("builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for (path, body) in [
        ("/api/v1/offers/o1", offer_body()),
        ("/api/v1/affiliates/a1", json!({"name": "a1"})),
    ] {
        let response = client
            .put(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "{path}");
    }

    // Act
    for sub1 in ["a", "b", "c"] {
        let click = client
            .get(format!("{base}/c/o1?aff_id=a1&sub1={sub1}"))
            .send()
            .await
            .expect("clicked");
        assert_eq!(click.status(), 302);
    }
    let rows: Value = client
        .get(format!("{base}/api/v1/stats?group_by=sub1"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");

    // Assert: the first value is its own row, the rest one "other" row.
    let rows = rows["rows"].as_array().cloned().unwrap_or_default();
    let shown: Vec<(Value, Value, Value)> = rows
        .iter()
        .map(|r| {
            (
                r["sub1"].clone(),
                r.get("other").cloned().unwrap_or(Value::Null),
                r["clicks"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (json!("a"), Value::Null, json!(1)),
            (Value::Null, json!(true), json!(2)),
        ]
    );
}
