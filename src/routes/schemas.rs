//! The pieces of the OpenAPI document that handlers' `#[utoipa::path]`
//! attributes name: the shared error body and its `reason`s, the error
//! answers, the query parameters handlers read through `Params`, and the
//! schemas of types whose JSON form is written by hand (money as a decimal
//! string, identifiers, days). The document itself, which lists the
//! handlers, is `super::openapi`.

use std::collections::BTreeMap;

use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, KnownFormat, Ref, RefOr};
use utoipa::{IntoParams, IntoResponses, PartialSchema, ToResponse, ToSchema};

use crate::domain::money::MoneyTotal;
use crate::domain::{AdvertiserId, AffiliateId, ClickId, Currency, Day, Money, OfferId};
use crate::error::REASONS;

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

/// What every route behind a bearer secret can answer, whatever it does:
/// `401` (no secret, or a wrong one), `429` (this address failed too often),
/// `503` (the store did not answer). One list, named once by each route.
pub struct BearerFailures;

impl IntoResponses for BearerFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("401", "Unauthorized"),
            ("429", "TooManyFailures"),
            ("503", "StoreUnavailable"),
        ]
        .into_iter()
        .map(|(status, name)| (status.to_owned(), RefOr::Ref(Ref::from_response_name(name))))
        .collect()
    }
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
