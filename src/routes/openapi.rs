//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route.
//!
//! Generated from the code so that it cannot drift: each handler carries a
//! `#[utoipa::path]` naming its parameters, body and every status it
//! answers; the types it reads and answers derive `ToSchema`; [`ApiDoc`]
//! lists the handlers. A test compares the document's operations with
//! [`super::ROUTES`], the list the routes are mounted from, so a route that
//! is served but not documented (or the reverse) fails the build's tests.
//!
//! Types whose JSON form is written by hand (money as a decimal string,
//! identifiers, days) get their schema here, next to the shared error body
//! and the query parameters that handlers read through `Params`.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, KnownFormat, OpenApi as Document, Ref, RefOr,
};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::domain::money::MoneyTotal;
use crate::domain::{AdvertiserId, AffiliateId, ClickId, Currency, Day, Money, OfferId};
use crate::error::REASONS;

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

/// The JSON body of every error answer (API.md): one shape everywhere,
/// also for the framework's own refusals (`405`, `413`, …).
#[derive(ToSchema)]
#[schema(example = json!({"status": "rejected", "reason": "invalid_request", "detail": "aff_id is required"}))]
pub struct ErrorBody {
    /// Always `rejected`.
    #[schema(inline)]
    pub status: Rejected,
    /// Stable, machine-readable.
    pub reason: Reason,
    /// Human explanation, safe to show; never a secret or an internal message.
    pub detail: String,
}

/// The constant `status` of an error body.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Rejected {
    /// The only value.
    Rejected,
}

/// Every `reason` an error body can carry: [`crate::error::REASONS`].
pub struct Reason;

impl PartialSchema for Reason {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(REASONS.iter().copied()))
            .description(Some("Why the request was refused (snake_case)."))
            .into()
    }
}

impl ToSchema for Reason {}

/// A string schema with a pattern, a description and an example.
fn text(pattern: Option<&str>, description: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(pattern)
        .description(Some(description))
        .examples([serde_json::Value::from(example)])
        .into()
}

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        text(
            Some(r"^[0-9]{1,12}(\.[0-9]{1,6})?$"),
            "Money: a non-negative decimal string with at most 6 fraction digits (never a JSON number).",
            "12.5",
        )
    }
}

impl ToSchema for Money {}

impl PartialSchema for MoneyTotal {
    fn schema() -> RefOr<Schema> {
        text(
            Some(r"^-?[0-9]+(\.[0-9]{1,6})?$"),
            "A sum of money: an exact decimal string (never a JSON number).",
            "1250.5",
        )
    }
}

impl ToSchema for MoneyTotal {}

impl PartialSchema for Currency {
    fn schema() -> RefOr<Schema> {
        text(
            Some("^[A-Za-z]{3}$"),
            "ISO 4217 code: three letters, any case in, uppercase out.",
            "EUR",
        )
    }
}

impl ToSchema for Currency {}

impl PartialSchema for Day {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
            .description(Some("A day, YYYY-MM-DD."))
            .into()
    }
}

impl ToSchema for Day {}

/// The identifier alphabet of operator-chosen ids.
const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

impl PartialSchema for OfferId {
    fn schema() -> RefOr<Schema> {
        text(Some(ID_PATTERN), "An offer id.", "o1")
    }
}

impl ToSchema for OfferId {}

impl PartialSchema for AffiliateId {
    fn schema() -> RefOr<Schema> {
        text(Some(ID_PATTERN), "An affiliate id.", "a1")
    }
}

impl ToSchema for AffiliateId {}

impl PartialSchema for AdvertiserId {
    fn schema() -> RefOr<Schema> {
        text(Some(ID_PATTERN), "An advertiser id.", "adv1")
    }
}

impl ToSchema for AdvertiserId {}

impl PartialSchema for ClickId {
    fn schema() -> RefOr<Schema> {
        text(
            None,
            "An opaque, URL-safe click id minted by the redirect.",
            "AAbCdEfGh0123456789_-xy",
        )
    }
}

impl ToSchema for ClickId {}

impl PartialSchema for crate::stats::DimensionValue {
    fn schema() -> RefOr<Schema> {
        let value = || {
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some(
                    "The value grouped by (`\"\"`: clicks without one); `null` with `other`.",
                ))
        };
        let mut object = ObjectBuilder::new().schema_type(Type::Object);
        for name in ["sub1", "sub2", "sub3", "sub4", "sub5", "source", "goal"] {
            object = object.property(name, value());
        }
        object
            .property(
                "other",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .description(Some(
                        "The row of values first seen after a day's 10,000 distinct ones.",
                    )),
            )
            .description(Some(
                "The grouped sub-ID, source or goal, when grouped by one.",
            ))
            .into()
    }
}

impl ToSchema for crate::stats::DimensionValue {}

/// A `200` text answer: the schema of a string, in `media`.
pub fn text_body(media: &str, description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            media,
            ContentBuilder::new()
                .schema(Some(Object::with_type(Type::String)))
                .build(),
        )
        .build()
}

/// An error answer with the shared body, and `Retry-After` where it has one.
fn error(description: &str, retry_after: bool) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Object::with_type(Type::Integer))
                .description(Some("Seconds to wait before trying again."))
                .build(),
        );
    }
    response.build().into()
}

macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident: $description:literal, $retry_after:literal;)+) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), error($description, $retry_after))
                }
            }
        )+
    };
}

error_responses! {
    /// `400`: a parameter or the body breaks a rule; `detail` names it.
    BadRequest: "invalid_request (or another reason naming the rule): the input breaks a rule; detail names the field", false;
    /// `401`: no secret, or a wrong or revoked one.
    Unauthorized: "unauthorized: send Authorization: Bearer <admin token or API key>", false;
    /// `404`: nothing with this id, or a route outside the key's scope.
    NotFound: "Nothing with this id (unknown_offer, unknown_affiliate, …), or not_found: a scoped key outside its scope, answered as for a path that does not exist", false;
    /// `429`: this address failed to authenticate too often.
    TooManyFailures: "too_many_failures: this address failed to authenticate too often; wait Retry-After seconds", true;
    /// `503`: the store did not answer; nothing was written.
    StoreUnavailable: "store_unavailable: the store is unreachable; nothing was recorded, retry after Retry-After seconds", true;
    /// `413`: the body is longer than 64 KiB.
    PayloadTooLarge: "payload_too_large: the body is longer than 65536 bytes", false;
    /// `408`: the body did not arrive in time.
    RequestTimeout: "request_timeout: the body did not arrive whole within CLICKBACK_BODY_TIMEOUT_MS", false;
}

/// The `role` of a new key.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum RoleName {
    /// The whole admin API.
    Admin,
    /// One affiliate's own data (`aff_id`).
    Affiliate,
    /// One advertiser's own data (`advertiser_id`).
    Advertiser,
}

/// A postback answer's `status`: `PostbackResult::as_str`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PostbackResultName {
    /// A new approved conversion: the affiliate is paid.
    Credited,
    /// A new pending conversion.
    Pending,
    /// The conversion exists and nothing changed.
    Duplicate,
    /// The conversion's status moved.
    Updated,
    /// A new conversion recorded as rejected.
    Rejected,
}

/// Why a conversion was recorded as rejected: `RejectReason::as_str`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum RejectReasonName {
    /// Sooner after the click than the offer's `min_ctc_secs`.
    TooFast,
    /// A cap of the offer was full.
    CapReached,
    /// The advertiser said `status=rejected`.
    RejectedByAdvertiser,
}

/// A postback log entry's `warning`: `PostbackWarning::as_str`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum WarningName {
    /// Answered duplicate while carrying an unread parameter that looks like
    /// an event or an order id.
    IgnoredEventParam,
}

/// `limit` and `cursor` of a listing (conversions, deliveries, the audit log).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Entries per page.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// `format` of a report or list that can also answer CSV.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatParams {
    /// `csv` for CSV (also `Accept: text/csv`), `json` (the default) for JSON.
    #[param(inline)]
    pub format: Option<Format>,
}

/// The answer's media type.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Format {
    /// `text/csv; charset=utf-8`, RFC 4180, formula cells escaped.
    Csv,
    /// JSON.
    Json,
}

/// The query of `GET /api/v1/stats` and `/api/v1/me/stats`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Comma-separated: any of `offer`, `affiliate` (or `aff`), `day`,
    /// `hour`, `status`, and at most one of `sub1`…`sub5`, `source`, `goal`.
    #[param(
        pattern = r"^(offer|affiliate|aff|day|hour|status|sub[1-5]|source|goal)(,(offer|affiliate|aff|day|hour|status|sub[1-5]|source|goal))*$",
        example = "offer,day"
    )]
    pub group_by: Option<String>,
    /// First day, inclusive (default: `to`).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// Last day, inclusive (default: today in `tz`).
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
    /// Only this offer.
    pub offer_id: Option<OfferId>,
    /// Only this affiliate.
    pub aff_id: Option<AffiliateId>,
    /// An IANA time zone for days and hours (default `UTC`).
    #[param(example = "Europe/Berlin")]
    pub tz: Option<String>,
}

/// The query of `GET /api/v1/conversions` and `/api/v1/me/conversions`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversionParams {
    /// First UTC day, inclusive (default: 30 days up to `to`).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// Last UTC day, inclusive (default: today). At most 366 days in all.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
    /// Only this offer.
    pub offer_id: Option<OfferId>,
    /// Only this affiliate.
    pub aff_id: Option<AffiliateId>,
    /// Only this advertiser's offers.
    pub advertiser_id: Option<AdvertiserId>,
    /// Only conversions whose current status is this.
    #[param(inline)]
    pub status: Option<crate::domain::ConversionStatus>,
    /// Only conversions of this goal.
    pub goal: Option<String>,
}

/// The query of the postback log.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PostbackLogParams {
    /// The offer whose log to read; without it, postbacks whose offer could
    /// not be determined (admin) or all the advertiser's offers (scoped).
    pub offer_id: Option<OfferId>,
    /// Which entries.
    #[param(inline)]
    pub kind: Option<PostbackLogKindParam>,
    /// Entries to read, newest first (at most the log's length).
    #[param(minimum = 1, default = 100)]
    pub limit: Option<u32>,
}

/// Which postback log entries to read.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum PostbackLogKindParam {
    /// Answered 200.
    Accepted,
    /// Answered 4xx or 5xx.
    Refused,
    /// Both, merged (the default).
    All,
}

/// `state` of `GET /api/v1/deliveries`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryStateParams {
    /// `dead`: most recently dead first; `pending`: newest first.
    #[param(inline)]
    pub state: DeliveryListState,
}

/// The deliveries a cross-affiliate listing shows.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum DeliveryListState {
    /// Every retry failed.
    Dead,
    /// Waiting for an attempt.
    Pending,
}

/// The tracking link's query (API.md §1).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClickParams {
    /// The affiliate sending the visitor.
    pub aff_id: AffiliateId,
    /// The affiliate's own value, kept with the click (at most 255 bytes).
    #[param(max_length = 255)]
    pub sub1: Option<String>,
    /// As `sub1`.
    #[param(max_length = 255)]
    pub sub2: Option<String>,
    /// As `sub1`.
    #[param(max_length = 255)]
    pub sub3: Option<String>,
    /// As `sub1`.
    #[param(max_length = 255)]
    pub sub4: Option<String>,
    /// As `sub1`.
    #[param(max_length = 255)]
    pub sub5: Option<String>,
    /// The traffic source (at most 255 bytes).
    #[param(max_length = 255)]
    pub source: Option<String>,
    /// `0`: the visitor declined tracking; redirected without a click id.
    pub consent: Option<String>,
}

/// The postback's optional fields in the query. Other platforms' names are
/// accepted too (API.md §9).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PostbackParams {
    /// The advertiser's transaction id: one conversion per click and txid.
    pub txid: Option<String>,
    /// The event (default `default`): one conversion per click and goal.
    pub goal: Option<String>,
    /// The sale amount (revenue share, revenue): a decimal.
    pub amount: Option<String>,
    /// The amount's currency; must be the offer's.
    pub currency: Option<String>,
    /// `approved` (default), `pending` or `rejected`, or a word of the
    /// offer's postback_mapping.
    pub status: Option<String>,
    /// Signed postbacks: Unix seconds of signing.
    pub ts: Option<String>,
    /// Signed postbacks: HMAC-SHA256 of the parameters.
    pub sig: Option<String>,
}

/// A postback as a form or a JSON object (members: strings or numbers;
/// others are listed in the log's `ignored_params`).
#[derive(ToSchema)]
pub struct PostbackBody {
    /// The click id the redirect handed the advertiser.
    #[schema(min_length = 1)]
    pub click_id: String,
    /// The advertiser's transaction id: one conversion per click and txid.
    pub txid: Option<String>,
    /// The event (default `default`): one conversion per click and goal.
    pub goal: Option<String>,
    /// The sale amount (revenue share, revenue): a decimal.
    pub amount: Option<String>,
    /// The amount's currency; must be the offer's.
    pub currency: Option<String>,
    /// `approved` (default), `pending` or `rejected`, or a word of the
    /// offer's postback_mapping.
    pub status: Option<String>,
    /// Signed postbacks: Unix seconds of signing.
    pub ts: Option<String>,
    /// Signed postbacks: HMAC-SHA256 of the parameters.
    pub sig: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::conversion::RejectReason;
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
