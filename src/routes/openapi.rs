//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route.
//!
//! Generated from the code so that it cannot drift: each handler carries a
//! `#[utoipa::path]` naming its parameters, body and every status it
//! answers; the types it reads and answers derive `ToSchema`; [`ApiDoc`]
//! lists the handlers. A test compares the document's operations with
//! [`super::ROUTES`], the list the routes are mounted from, so a route that
//! is served but not documented (or the reverse) fails the build's tests.
//!
//! What the handlers' attributes name — the shared error body, the error
//! answers, the query parameters handlers read through `Params`, and the
//! schemas of types whose JSON form is written by hand — lives in
//! [`super::schemas`], so handlers depend on it and this document on them.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};

use super::schemas::{
    BadRequest, ErrorBody, NotFound, PayloadTooLarge, Reason, RequestTimeout, StoreUnavailable,
    TooManyFailures, Unauthorized,
};

/// The document: every operation, the shared schemas and responses, and the
/// two ways to authenticate.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "clickback",
        description = "Server-to-server (postback) affiliate tracker: click redirects, exactly-once conversion crediting, stats and metrics. The contract in prose: docs/API.md."
    ),
    paths(
        super::click::click,
        super::postback::postback_get,
        super::postback::postback_post,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        openapi_json,
        super::admin::list_offers,
        super::admin::get_offer,
        super::admin::put_offer,
        super::admin::list_affiliates,
        super::admin::get_affiliate,
        super::admin::put_affiliate,
        super::admin::postback_log,
        super::deliveries::affiliate_deliveries,
        super::deliveries::offer_deliveries,
        super::deliveries::deliveries,
        super::deliveries::retry,
        super::stats::stats,
        super::advertisers::list_advertisers,
        super::advertisers::get_advertiser,
        super::advertisers::put_advertiser,
        super::keys::list_keys,
        super::keys::create_key,
        super::keys::revoke_key,
        super::audit::audit_log,
        super::conversions::conversions,
        super::me::me,
        super::me::offers,
        super::me::stats,
        super::me::conversions,
        super::me::change_status,
        super::me::deliveries,
        super::me::postbacks,
    ),
    components(
        schemas(ErrorBody, Reason),
        responses(
            BadRequest,
            Unauthorized,
            NotFound,
            TooManyFailures,
            StoreUnavailable,
            PayloadTooLarge,
            RequestTimeout
        )
    ),
    modifiers(&Security, &PostbackAliases, &HeadOperations, &EitherView),
    tags(
        (name = "tracking", description = "Click redirects and advertisers' postbacks (API.md §1, §2, §9)"),
        (name = "admin", description = "The operator's API: offers, affiliates, advertisers, keys, logs (API.md §3, §6, §8)"),
        (name = "reports", description = "Stats and conversion lists, as JSON or CSV (API.md §3, §8)"),
        (name = "scoped", description = "What an affiliate's or an advertiser's own key sees (API.md §8)"),
        (name = "operations", description = "Health, readiness, metrics and this document (API.md §4)")
    )
)]
pub struct ApiDoc;

/// The document as served: built once, on first use.
static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(ApiDoc::openapi())
        .expect("the OpenAPI document is plain data and always serialises");
    camel_case_links(&mut doc);
    Bytes::from(doc.to_string())
});

/// utoipa 5 writes a Link Object's fields in snake_case (`operation_id`);
/// OpenAPI spells them `operationId`, `operationRef`, `requestBody`, and
/// tools ignore links without them.
fn camel_case_links(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(links)) = map.get_mut("links") {
                for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
                    for (from, to) in [
                        ("operation_id", "operationId"),
                        ("operation_ref", "operationRef"),
                        ("request_body", "requestBody"),
                    ] {
                        if let Some(field) = link.remove(from) {
                            link.insert(to.to_owned(), field);
                        }
                    }
                }
            }
            map.values_mut().for_each(camel_case_links);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(camel_case_links),
        _ => {}
    }
}

/// The OpenAPI 3.1 document of every route clickback serves: public, so
/// that clients and test tools can read it before they hold a key.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(DOCUMENT.clone())
}

/// The postback paths of other platforms (see `super::ROUTES`): the same
/// operations as `/postback`, under each path, with their own operation ids.
pub const POSTBACK_ALIASES: [&str; 3] = ["/aff_lsr", "/aff_goal", "/click.php"];

/// Copies `/postback` to each of [`POSTBACK_ALIASES`].
struct PostbackAliases;

impl Modify for PostbackAliases {
    fn modify(&self, doc: &mut Document) {
        let Some(postback) = doc.paths.paths.get("/postback").cloned() else {
            return;
        };
        for alias in POSTBACK_ALIASES {
            let mut item: PathItem = postback.clone();
            let suffix = alias.trim_start_matches('/').replace('.', "_");
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                rename(operation, &suffix, alias);
            }
            doc.paths.paths.insert(alias.to_owned(), item);
        }
    }
}

/// An alias's copy of a postback operation: its own id, and a summary
/// naming the platform path.
fn rename(operation: &mut Operation, suffix: &str, alias: &str) {
    if let Some(id) = &operation.operation_id {
        operation.operation_id = Some(format!("{id}_{suffix}"));
    }
    operation.summary = Some(format!(
        "{alias}: the postback under another platform's path"
    ));
}

/// `HEAD` runs the `GET` handler without a body: its operations get ids of
/// their own, and answers without content (their statuses and headers stay).
struct HeadOperations;

impl Modify for HeadOperations {
    fn modify(&self, doc: &mut Document) {
        for item in doc.paths.paths.values_mut() {
            let Some(head) = item.head.as_mut() else {
                continue;
            };
            if let Some(id) = &head.operation_id {
                head.operation_id = Some(format!("{id}_head"));
            }
            for response in head.responses.responses.values_mut() {
                let bare = match response {
                    RefOr::T(inline) => {
                        let mut bare = ResponseBuilder::new()
                            .description(inline.description.clone())
                            .build();
                        bare.headers = inline.headers.clone();
                        bare
                    }
                    RefOr::Ref(reference) => ResponseBuilder::new()
                        .description(reference.ref_location.rsplit('/').next().unwrap_or(""))
                        .build(),
                };
                *response = RefOr::T(bare);
            }
        }
    }
}

/// `MyOffers` is one of two views, and an empty list is both: `anyOf`,
/// where the derive writes `oneOf` (which no empty list could satisfy).
struct EitherView;

impl Modify for EitherView {
    fn modify(&self, doc: &mut Document) {
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        if let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get("MyOffers") {
            let mut any_of = utoipa::openapi::schema::AnyOf::new();
            any_of.items = one_of.items.clone();
            any_of.description = one_of.description.clone();
            components
                .schemas
                .insert("MyOffers".to_owned(), Schema::AnyOf(any_of).into());
        }
    }
}

/// The bearer secret of `/api/v1` (admin token or API key) and the
/// postback's `token`.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "CLICKBACK_ADMIN_TOKEN, or an API key's secret (`cbk_…`, POST /api/v1/keys). Admin routes take the token or an admin key; /api/v1/me… takes any key, and answers 404 where the key's role has no view.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "postback_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The offer's postback_token. Also accepted in a POST body, and under an offer's postback_mapping name.",
            ))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::conversion::RejectReason;
    use crate::error::REASONS;
    use crate::postback::outcome::{PostbackResult, PostbackWarning};

    /// The values of a named enum schema of the document.
    fn enum_values(name: &str) -> Vec<String> {
        let doc: serde_json::Value =
            serde_json::from_slice(&DOCUMENT).expect("the document is JSON");
        doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is an enum schema"))
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn names_the_code_writes_are_the_names_the_document_lists() {
        let results = [
            PostbackResult::Credited,
            PostbackResult::Pending,
            PostbackResult::Duplicate,
            PostbackResult::Updated,
            PostbackResult::Rejected(RejectReason::TooFast),
        ];
        assert_eq!(
            enum_values("PostbackResultName"),
            results.map(|r| r.as_str()).to_vec()
        );
        let reasons = [
            RejectReason::TooFast,
            RejectReason::CapReached,
            RejectReason::ByAdvertiser,
        ];
        assert_eq!(
            enum_values("RejectReasonName"),
            reasons.map(|r| r.as_str()).to_vec()
        );
        assert_eq!(
            enum_values("WarningName"),
            PostbackWarning::ALL.map(|w| w.as_str()).to_vec()
        );
        assert_eq!(enum_values("Reason"), REASONS.to_vec());
    }

    #[test]
    fn the_document_is_openapi_3_1_and_names_every_mounted_route() {
        let doc: serde_json::Value =
            serde_json::from_slice(&DOCUMENT).expect("the document is JSON");
        assert!(doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")));
        for (method, path) in super::super::ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is served but not documented"
            );
        }
    }
}
