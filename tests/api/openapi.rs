//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document describes exactly
//! the routes clickback serves, so that a route added without documenting
//! it (or documented but not mounted) fails here.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::spawn_app;

/// The methods an OpenAPI path item can hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every `(method, path)` operation of a document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| ((*method).to_owned(), path.clone()))
        })
        .collect()
}

/// The served document, read without credentials.
async fn fetch_document(app: &crate::helpers::TestApp) -> Value {
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200, "the document is public");
    assert!(response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json")));
    response.json().await.expect("the document is JSON")
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_exactly_the_served_routes() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let doc = fetch_document(&app).await;

    // Assert
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "OpenAPI 3.1, got {}",
        doc["openapi"]
    );
    let served: BTreeSet<(String, String)> = clickback::routes::ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    let documented = operations(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in the document: {undocumented:?}"
    );
    assert!(
        not_served.is_empty(),
        "in the document but not served: {not_served:?}"
    );
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    // Arrange: every operation, its path parameters filled in, sent without
    // credentials or parameters.
    let app = spawn_app().await;
    let doc = fetch_document(&app).await;

    for (method, path) in operations(&doc) {
        let concrete = path.replace('{', "x").replace('}', "");
        let method =
            reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("an HTTP method");

        // Act
        let response = app
            .client
            .request(method.clone(), format!("{}{concrete}", app.address))
            .send()
            .await
            .expect("request sent");

        // Assert: a handler answered (whatever it thought of the request),
        // not the router's 405 or its 404 for an unknown path.
        let status = response.status().as_u16();
        assert_ne!(status, 405, "{method} {path}: the method is not mounted");
        if status == 404 && method != reqwest::Method::HEAD {
            let body: Value = response.json().await.expect("a JSON error");
            assert_ne!(
                body["reason"], "not_found",
                "{method} {path}: no such route is mounted"
            );
        }
    }
}

#[tokio::test]
async fn every_error_answer_is_described_by_the_shared_error_schema() {
    // Arrange
    let app = spawn_app().await;
    let doc = fetch_document(&app).await;

    // Act
    let reasons: Vec<&str> = doc["components"]["schemas"]["ErrorBody"]["properties"]["reason"]
        ["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| doc["components"]["schemas"][name]["enum"].as_array())
        .expect("reason is a named enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();

    // Assert
    assert_eq!(reasons, clickback::error::REASONS);
    let unauthenticated = app.get("/api/v1/offers").await;
    let body: Value = unauthenticated.json().await.expect("a JSON error");
    assert_eq!(body["status"], "rejected");
    assert!(reasons.contains(&body["reason"].as_str().unwrap_or("")));
}
