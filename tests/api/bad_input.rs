//! Hostile and broken input on the public endpoints: never a panic, never a
//! 5xx, always API.md's JSON error body, and nothing written.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// Broken percent-encoding, invalid UTF-8 and NUL, as they appear in a URL or form.
const BAD_ENCODINGS: &[&str] = &["%zz", "%4", "%", "x%4", "%C3%28", "%FF", "%00", "x%00y"];

/// Amounts that are not plain non-negative decimals with at most 6 fraction digits.
const BAD_AMOUNTS: &[&str] = &[
    "-1",
    "abc",
    "1e3",
    "1E3",
    "0.0000001",
    "1.",
    ".5",
    "+1",
    "1,5",
    "%201",
    "NaN",
    "inf",
    "0x10",
    "1.2.3",
    "9999999999999",
];

/// An app with offer `o1`, affiliate `a1` and one click.
async fn app_with_click() -> (TestApp, String) {
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let click_id = app.click_id("o1", "a1").await;
    (app, click_id)
}

/// Asserts a 4xx with the JSON error body (any reason) and returns the body.
async fn assert_client_error(response: reqwest::Response, what: &str) -> Value {
    let (status, body, text) = error_body(response, what).await;
    assert!((400..500).contains(&status), "{what}: {status} {text}");
    body
}

/// Asserts that no conversion was written and the app still answers.
async fn assert_nothing_credited(app: &TestApp) {
    assert!(
        app.conversion_keys().is_empty(),
        "no conversion stored: {:?}",
        app.conversion_keys()
    );
    assert_eq!(app.totals().await["conversions"], 0);
    assert_eq!(app.get("/healthz").await.status(), 200, "still alive");
}

#[tokio::test]
async fn a_click_with_broken_encoding_answers_400_and_stores_nothing() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    for bad in BAD_ENCODINGS {
        for query in [
            format!("aff_id=a1&sub1={bad}"),
            format!("aff_id=a1&source=ok{bad}"),
            format!("aff_id=a1{bad}"),
            format!("aff_id=a1&{bad}=1"),
            format!("aff_id=a1&consent={bad}"),
        ] {
            // Act
            let response = app.click("o1", &query).await;

            // Assert
            assert_rejected(response, 400, "invalid_request").await;
        }
    }
    assert!(app.stored_click_ids().is_empty());
    assert_eq!(app.totals().await["clicks"], 0);
}

#[tokio::test]
async fn a_postback_query_with_broken_encoding_answers_400_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    for bad in BAD_ENCODINGS {
        for query in [
            format!("click_id={click_id}&token={OFFER_TOKEN}&txid={bad}"),
            format!("click_id={click_id}{bad}&token={OFFER_TOKEN}"),
            format!("click_id={click_id}&token={OFFER_TOKEN}{bad}"),
            format!("click_id={click_id}&token={OFFER_TOKEN}&goal=a{bad}"),
            format!("click_id={click_id}&token={OFFER_TOKEN}&{bad}=1"),
        ] {
            // Act
            let response = app.postback(&query).await;

            // Assert
            assert_rejected(response, 400, "invalid_request").await;
        }
    }
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn a_form_postback_with_broken_encoding_answers_400_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let mut bodies: Vec<Vec<u8>> = BAD_ENCODINGS
        .iter()
        .flat_map(|bad| {
            [
                format!("click_id={click_id}&token={OFFER_TOKEN}&txid={bad}"),
                format!("click_id={click_id}&token={OFFER_TOKEN}&{bad}=1"),
            ]
        })
        .map(String::into_bytes)
        .collect();
    let mut raw_invalid_utf8 =
        format!("click_id={click_id}&token={OFFER_TOKEN}&txid=").into_bytes();
    raw_invalid_utf8.extend_from_slice(b"\xff\xfe");
    bodies.push(raw_invalid_utf8);

    for body in bodies {
        // Act
        let response = app
            .postback_post("application/x-www-form-urlencoded", body.clone())
            .await;

        // Assert
        assert_rejected(response, 400, "invalid_request").await;
    }
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn a_20_kb_query_or_body_answers_400_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let junk = "x".repeat(20 * 1024);

    // Act
    let click = app
        .click("o1", &format!("aff_id=a1&sub1=a&junk={junk}"))
        .await;
    let get = app
        .postback(&format!(
            "click_id={click_id}&token={OFFER_TOKEN}&junk={junk}"
        ))
        .await;
    let form = app
        .postback_post(
            "application/x-www-form-urlencoded",
            format!("click_id={click_id}&token={OFFER_TOKEN}&txid={junk}"),
        )
        .await;
    let json = app
        .postback_post(
            "application/json",
            json!({"click_id": click_id, "token": OFFER_TOKEN, "txid": junk}).to_string(),
        )
        .await;

    // Assert
    assert_rejected(click, 400, "invalid_request").await;
    assert_rejected(get, 400, "invalid_request").await;
    assert_rejected(form, 400, "invalid_request").await;
    assert_rejected(json, 400, "invalid_request").await;
    assert_eq!(app.stored_click_ids().len(), 1, "only the arranged click");
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn a_body_over_the_payload_limit_answers_413_json() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let body = format!(
        "click_id={click_id}&token={OFFER_TOKEN}&txid={}",
        "x".repeat(200 * 1024)
    );

    // Act
    let response = app
        .postback_post("application/x-www-form-urlencoded", body)
        .await;

    // Assert
    assert_rejected(response, 413, "payload_too_large").await;
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn a_malformed_json_body_answers_400_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let valid = format!(r#""click_id":"{click_id}","token":"{OFFER_TOKEN}""#);
    let mut bodies: Vec<Vec<u8>> = [
        String::new(),
        "{".to_owned(),
        format!("{{{valid}"),
        format!("{{{valid},}}"),
        "not json".to_owned(),
        format!("{{{valid}}} trailing"),
        "[]".to_owned(),
        format!("[{{{valid}}}]"),
        "42".to_owned(),
        "\"text\"".to_owned(),
        "null".to_owned(),
        "true".to_owned(),
        format!(r#"{{{valid},"txid":{{"a":1}}}}"#),
        format!(r#"{{{valid},"txid":["a"]}}"#),
        format!(r#"{{{valid},"amount":true}}"#),
        format!(r#"{{{valid},"txid":"a\u0000b"}}"#),
        format!(r#"{{{valid},"goal":"a\nb"}}"#),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let mut invalid_utf8 = format!(r#"{{{valid},"txid":""#).into_bytes();
    invalid_utf8.extend_from_slice(b"\xff\"}");
    bodies.push(invalid_utf8);

    for body in bodies {
        let what = String::from_utf8_lossy(&body).into_owned();

        // Act
        let response = app.postback_post("application/json", body).await;

        // Assert
        let error = assert_rejected(response, 400, "invalid_request").await;
        assert!(!error.to_string().is_empty(), "{what}");
    }
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn a_body_of_another_media_type_answers_415_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    for content_type in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        // Act
        let response = app
            .postback_post(
                content_type,
                format!("click_id={click_id}&token={OFFER_TOKEN}"),
            )
            .await;

        // Assert
        assert_rejected(response, 415, "unsupported_media_type").await;
    }
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn a_bad_amount_answers_400_on_every_channel_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    for amount in BAD_AMOUNTS {
        let fields = format!("click_id={click_id}&token={OFFER_TOKEN}&amount={amount}");
        let decoded = amount.replace("%20", " ");

        // Act
        let get = app.postback(&fields).await;
        let get_alias = app
            .postback(&format!(
                "click_id={click_id}&token={OFFER_TOKEN}&sum={amount}"
            ))
            .await;
        let form = app
            .postback_post("application/x-www-form-urlencoded", fields.clone())
            .await;
        let json_string = app
            .postback_post(
                "application/json",
                json!({"click_id": click_id, "token": OFFER_TOKEN, "amount": decoded}).to_string(),
            )
            .await;

        // Assert
        for (channel, response) in [
            ("GET", get),
            ("GET sum", get_alias),
            ("form", form),
            ("JSON string", json_string),
        ] {
            let body = assert_rejected(response, 400, "invalid_request").await;
            assert!(
                body["detail"].as_str().unwrap_or("").contains("amount"),
                "{channel} {amount}: the detail names the field: {body}"
            );
        }
    }
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn a_bad_json_number_amount_answers_400_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    for amount in [
        "-1",
        "-0.5",
        "1e3",
        "1E3",
        "1.5e2",
        "1e400",
        "0.0000001",
        "19.9900000000000001",
        "12345678901.1234567",
    ] {
        let body =
            format!(r#"{{"click_id":"{click_id}","token":"{OFFER_TOKEN}","amount":{amount}}}"#);

        // Act
        let response = app.postback_post("application/json", body).await;

        // Assert
        let body = assert_rejected(response, 400, "invalid_request").await;
        assert!(
            body["detail"].as_str().unwrap_or("").contains("amount"),
            "{amount}: {body}"
        );
    }
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn an_unknown_status_answers_400_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;

    for status in ["maybe", "approvedx", "4", "0", "%20approved"] {
        // Act
        let get = app
            .postback(&format!(
                "click_id={click_id}&token={OFFER_TOKEN}&status={status}"
            ))
            .await;
        let json = app
            .postback_post(
                "application/json",
                json!({"click_id": click_id, "token": OFFER_TOKEN,
                       "status": status.replace("%20", " ")})
                .to_string(),
            )
            .await;

        // Assert
        assert_rejected(get, 400, "invalid_request").await;
        assert_rejected(json, 400, "invalid_request").await;
    }
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn a_bad_currency_or_oversized_txid_answers_400_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let long_txid = "t".repeat(256);
    let long_goal = "g".repeat(256);

    for extra in [
        "currency=EURO".to_owned(),
        "currency=E1R".to_owned(),
        "currency=%E2%82%AC".to_owned(),
        format!("txid={long_txid}"),
        format!("goal={long_goal}"),
        "txid=a%0Ab".to_owned(),
    ] {
        // Act
        let response = app
            .postback(&format!("click_id={click_id}&token={OFFER_TOKEN}&{extra}"))
            .await;

        // Assert
        assert_rejected(response, 400, "invalid_request").await;
    }
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn an_unknown_route_answers_404_json() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    for path in [
        "/nope",
        "/c",
        "/c/",
        "/c/o1/extra?aff_id=a1",
        "/postback/x",
        "/api/v2/offers",
    ] {
        // Act
        let response = app.get(path).await;

        // Assert
        assert_rejected(response, 404, "not_found").await;
    }
    assert!(app.stored_click_ids().is_empty());
}

#[tokio::test]
async fn a_strange_offer_id_in_the_path_answers_a_json_4xx() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let long = "o".repeat(5000);

    for offer in [
        "%FF",
        "%00",
        "%zz",
        "..%2F..%2Fapi",
        "o1%20",
        "%C3%28",
        long.as_str(),
    ] {
        // Act
        let response = app.click(offer, "aff_id=a1").await;

        // Assert
        assert_client_error(response, offer).await;
    }
    assert!(app.stored_click_ids().is_empty());
}

#[tokio::test]
async fn a_wrong_method_answers_a_json_4xx_and_writes_nothing() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let postback = format!(
        "{}/postback?click_id={click_id}&token={OFFER_TOKEN}",
        app.address
    );
    let click = format!("{}/c/o1?aff_id=a1", app.address);

    for (method, url) in [
        (reqwest::Method::DELETE, &postback),
        (reqwest::Method::PUT, &postback),
        (reqwest::Method::PATCH, &postback),
        (reqwest::Method::POST, &click),
        (reqwest::Method::DELETE, &click),
    ] {
        // Act
        let response = app
            .client
            .request(method.clone(), url.as_str())
            .send()
            .await
            .expect("request sent");

        // Assert
        assert_client_error(response, &format!("{method} {url}")).await;
    }
    assert_eq!(app.stored_click_ids().len(), 1, "only the arranged click");
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn a_json_body_naming_the_click_twice_with_different_ids_answers_400() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let other = app.click_id("o1", "a1").await;

    for body in [
        format!(r#"{{"click_id":"{click_id}","click_id":"{other}","token":"{OFFER_TOKEN}"}}"#),
        format!(r#"{{"click_id":"{click_id}","cid":"{other}","token":"{OFFER_TOKEN}"}}"#),
        format!(r#"{{"click_id":"{click_id}","token":"{OFFER_TOKEN}","amount":"1","amount":"2"}}"#),
    ] {
        // Act
        let response = app.postback_post("application/json", body).await;

        // Assert
        assert_rejected(response, 400, "invalid_request").await;
    }
    assert_nothing_credited(&app).await;
}

/// The methods of an `Allow` header, upper case and sorted.
fn allowed_methods(response: &reqwest::Response) -> Vec<String> {
    let mut methods: Vec<String> = response
        .headers()
        .get_all("allow")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect();
    methods.sort();
    methods
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_answers_405_json_naming_the_allowed_methods() {
    // Arrange
    let (app, click_id) = app_with_click().await;
    let postback = format!("/postback?click_id={click_id}&token={OFFER_TOKEN}");

    for (method, path, allowed) in [
        ("DELETE", postback.as_str(), &["GET", "POST"][..]),
        ("PUT", postback.as_str(), &["GET", "POST"]),
        ("POST", "/c/o1?aff_id=a1", &["GET", "HEAD"]),
        ("DELETE", "/c/o1?aff_id=a1", &["GET", "HEAD"]),
        ("DELETE", "/api/v1/offers/x", &["GET", "HEAD", "PUT"]),
        ("POST", "/api/v1/affiliates/a1", &["GET", "HEAD", "PUT"]),
        ("PUT", "/api/v1/offers", &["GET", "HEAD"]),
        ("POST", "/api/v1/stats", &["GET", "HEAD"]),
        ("DELETE", "/healthz", &["GET", "HEAD"]),
        ("OPTIONS", "/metrics", &["GET", "HEAD"]),
    ] {
        let what = format!("{method} {path}");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");

        // Act
        let response = app
            .client
            .request(method, format!("{}{path}", app.address))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent");

        // Assert
        assert_eq!(allowed_methods(&response), allowed, "{what}: Allow");
        let body = assert_rejected(response, 405, "method_not_allowed").await;
        assert!(
            body["detail"].as_str().unwrap_or("").contains(allowed[0]),
            "{what}: the detail names the allowed methods: {body}"
        );
    }
    assert_eq!(app.stored_click_ids().len(), 1, "only the arranged click");
    assert_nothing_credited(&app).await;
}

#[tokio::test]
async fn a_wrong_method_on_an_unknown_path_still_answers_404() {
    // Arrange
    let app = spawn_app().await;

    for path in ["/nope", "/postback/x", "/api/v1/nope"] {
        // Act
        let response = app
            .client
            .delete(format!("{}{path}", app.address))
            .send()
            .await
            .expect("request sent");

        // Assert
        assert_rejected(response, 404, "not_found").await;
    }
}

#[tokio::test]
async fn head_on_a_read_only_endpoint_answers_like_get_without_a_body() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/offers",
        "/api/v1/offers/o1",
        "/api/v1/affiliates/a1",
        "/api/v1/stats",
    ] {
        // Act
        let response = app
            .client
            .head(format!("{}{path}", app.address))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent");

        // Assert
        assert_eq!(response.status(), 200, "HEAD {path}");
        let body = response.bytes().await.expect("body");
        assert!(body.is_empty(), "HEAD {path}: no body");
    }
}

#[tokio::test]
async fn head_on_the_postback_answers_405_and_credits_nothing() {
    // Arrange: a GET postback credits, so HEAD, which must be safe, may not.
    let (app, click_id) = app_with_click().await;

    // Act
    let response = app
        .client
        .head(format!(
            "{}/postback?click_id={click_id}&token={OFFER_TOKEN}",
            app.address
        ))
        .send()
        .await
        .expect("request sent");

    // Assert
    assert_eq!(response.status(), 405);
    assert_eq!(allowed_methods(&response), ["GET", "POST"]);
    assert_nothing_credited(&app).await;
}

/// What a raw connection received: the bytes, and whether the server closed
/// the connection (rather than the wait running out).
struct RawAnswer {
    text: String,
    closed: bool,
}

impl RawAnswer {
    /// The status code of the first response line.
    fn status(&self) -> u16 {
        self.text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {:?}", self.text))
    }

    /// The value of a response header (first one, name case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        let head = self.text.split("\r\n\r\n").next()?;
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The response body as JSON.
    fn json(&self) -> Value {
        let body = self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {:?}", self.text))
    }
}

/// Writes `request` on a fresh connection without closing our side, then
/// reads until the server closes the connection or `within` has passed.
async fn raw_exchange(port: u16, request: &[u8], within: Duration) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    // The server may answer and close before reading everything; what it
    // answered is still there to read.
    let _ = stream.write_all(request).await;
    let deadline = tokio::time::Instant::now() + within;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    RawAnswer {
        text: String::from_utf8_lossy(&received).into_owned(),
        closed,
    }
}

#[tokio::test]
async fn a_request_the_http_parser_refuses_gets_its_status_and_a_closed_connection() {
    // Arrange: these are answered by actix-http's parser before any of
    // clickback's code runs, so they carry no JSON body (docs/API.md).
    let app = spawn_app().await;
    let many_headers: String = (0..120).map(|i| format!("X-H{i}: 1\r\n")).collect();
    let long_header = format!("X-Long: {}\r\n", "a".repeat(200 * 1024));

    for (what, request, status) in [
        ("garbage request line", "GARBAGE\r\n\r\n".to_owned(), 400),
        (
            "unknown HTTP version",
            "GET /healthz HTTP/9\r\nHost: a\r\n\r\n".to_owned(),
            400,
        ),
        (
            "header name with a space",
            "GET /healthz HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n".to_owned(),
            400,
        ),
        (
            "non-numeric Content-Length",
            "POST /postback HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n".to_owned(),
            400,
        ),
        (
            "too many headers",
            format!("GET /healthz HTTP/1.1\r\nHost: a\r\n{many_headers}\r\n"),
            431,
        ),
        (
            "overlong header line",
            format!("GET /healthz HTTP/1.1\r\nHost: a\r\n{long_header}\r\n"),
            431,
        ),
    ] {
        // Act
        let answer = raw_exchange(app.port, request.as_bytes(), Duration::from_secs(5)).await;

        // Assert
        assert_eq!(answer.status(), status, "{what}: {:?}", answer.text);
        assert!(answer.closed, "{what}: the server closes the connection");
    }
    assert_eq!(app.get("/healthz").await.status(), 200, "still serving");
}

#[tokio::test]
async fn a_body_slower_than_the_body_deadline_gets_408_json_and_a_closed_connection() {
    // Arrange
    let app = spawn_app_tweaked(|s| s.body_timeout = Duration::from_millis(200)).await;
    app.with_offer_and_affiliate().await;
    let admin = format!("Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json");

    for (what, head, first_bytes) in [
        (
            "form postback",
            "POST /postback HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100".to_owned(),
            "c",
        ),
        (
            "chunked postback",
            "POST /postback HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked".to_owned(),
            "1\r\nc\r\n",
        ),
        (
            "offer PUT",
            format!("PUT /api/v1/offers/o2 HTTP/1.1\r\nHost: a\r\n{admin}\r\nContent-Length: 100"),
            "{",
        ),
        (
            "affiliate PUT",
            format!("PUT /api/v1/affiliates/a2 HTTP/1.1\r\nHost: a\r\n{admin}\r\nContent-Length: 100"),
            "{",
        ),
    ] {
        // Act: the head and a first piece of the body, then nothing.
        let request = format!("{head}\r\n\r\n{first_bytes}");
        let answer = raw_exchange(app.port, request.as_bytes(), Duration::from_secs(5)).await;

        // Assert
        assert!(answer.closed, "{what}: the connection is closed within 5 s: {:?}", answer.text);
        assert_eq!(answer.status(), 408, "{what}: {:?}", answer.text);
        assert!(
            answer.header("content-type").is_some_and(|v| v.starts_with("application/json")),
            "{what}: JSON error body: {:?}",
            answer.text
        );
        let body = answer.json();
        assert_eq!(body["status"], "rejected", "{what}: {body}");
        assert_eq!(body["reason"], "request_timeout", "{what}: {body}");
    }
    assert_eq!(app.get("/healthz").await.status(), 200, "still serving");
    assert_eq!(
        app.admin_get("/api/v1/offers/o2").await.status(),
        404,
        "nothing written"
    );
}

#[tokio::test]
async fn a_body_that_cannot_be_decoded_or_grows_past_64_kb_answers_a_json_4xx() {
    // Arrange
    let app = spawn_app().await;
    let head = "POST /postback HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let big_chunk = format!("{:x}\r\n{}\r\n", 70 * 1024, "x".repeat(70 * 1024));

    for (what, body, status, reason) in [
        (
            "broken chunk size",
            "zz\r\n".to_owned(),
            400,
            "invalid_request",
        ),
        (
            "chunked body over 64 KB",
            big_chunk,
            413,
            "payload_too_large",
        ),
    ] {
        // Act
        let request = format!("{head}{body}");
        let answer = raw_exchange(app.port, request.as_bytes(), Duration::from_secs(5)).await;

        // Assert
        assert_eq!(answer.status(), status, "{what}: {:?}", answer.text);
        let body = answer.json();
        assert_eq!(body["status"], "rejected", "{what}: {body}");
        assert_eq!(body["reason"], reason, "{what}: {body}");
        assert!(answer.closed, "{what}: the connection is closed");
    }
    assert_nothing_credited(&app).await;
}

/// A `clickback` process started from its binary, its stderr read line by line.
struct RunningBinary {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl RunningBinary {
    /// Starts the real binary on the embedded store, on a free port, with a
    /// clean environment and `RUST_LOG` as given.
    fn start(rust_log: &str) -> Self {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clickback"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CLICKBACK_LISTEN", "127.0.0.1:0")
            .env("CLICKBACK_ADMIN_TOKEN", "an-admin-token-of-32-characters!")
            .env("CLICKBACK_DEMO", "0")
            .env("RUST_LOG", rust_log)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the clickback binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads stderr until a line satisfies `wanted` or `within` has passed;
    /// answers that line.
    fn wait_for_line(&mut self, within: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = std::time::Instant::now() + within;
        if let Some(line) = self.seen.iter().find(|l| wanted(l)) {
            return Some(line.clone());
        }
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if wanted(&line) {
                return Some(line);
            }
        }
    }

    /// Reads stderr until `count` lines satisfy `wanted` or `within` has passed;
    /// answers how many were seen.
    fn wait_for_lines(
        &mut self,
        count: usize,
        within: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> usize {
        let deadline = std::time::Instant::now() + within;
        loop {
            let seen = self.seen.iter().filter(|l| wanted(l)).count();
            if seen >= count {
                return seen;
            }
            let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
                return seen;
            };
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => return seen,
            }
        }
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn malformed_requests_are_logged_below_error_level() {
    // Arrange: the operator's default filter, with actix-http's own lines
    // shown so that the test sees each refusal being logged.
    let mut server = RunningBinary::start("info,actix_http=debug");
    let listening = server
        .wait_for_line(Duration::from_secs(30), |l| l.contains("listening on port"))
        .expect("clickback starts");
    let port: u16 = listening
        .rsplit(' ')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("a port in {listening:?}"));
    let many_headers: String = (0..120).map(|i| format!("X-H{i}: 1\r\n")).collect();
    let malformed = [
        "GARBAGE\r\n\r\n".to_owned(),
        "GET /healthz HTTP/9\r\nHost: a\r\n\r\n".to_owned(),
        "GET /healthz HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n".to_owned(),
        "POST /postback HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n".to_owned(),
        format!("GET /healthz HTTP/1.1\r\nHost: a\r\n{many_headers}\r\n"),
    ];

    // Act
    for request in &malformed {
        let answer = raw_exchange(port, request.as_bytes(), Duration::from_secs(5)).await;
        assert!((400..500).contains(&answer.status()), "{:?}", answer.text);
        assert!(answer.closed, "refused and closed: {:?}", answer.text);
    }
    let sentinel = raw_exchange(
        port,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;

    // Assert
    assert_eq!(sentinel.status(), 200, "still serving: {:?}", sentinel.text);
    let is_refusal = |l: &str| l.contains("request parse error");
    let logged = server.wait_for_lines(malformed.len(), Duration::from_secs(10), is_refusal);
    assert_eq!(
        logged,
        malformed.len(),
        "each refusal logged once: {:#?}",
        server.seen
    );
    let errors: Vec<&String> = server
        .seen
        .iter()
        .filter(|l| l.contains(" ERROR "))
        .collect();
    assert!(
        errors.is_empty(),
        "client errors logged at ERROR: {errors:#?}"
    );
}
