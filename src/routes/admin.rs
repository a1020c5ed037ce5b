//! `/api/v1/offers`, `/api/v1/affiliates` and `/api/v1/postbacks`: the
//! operator's admin API (API.md §3), and [`Admin`], the proof that a caller
//! is an admin. The affiliate postback log and retry live in `deliveries`;
//! advertisers in `advertisers`, keys in `keys`.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;

use super::schemas::{
    BadRequest, BearerFailures, ErrorBody, FormatParams, NotFound, PayloadTooLarge,
    PostbackLogParams, RequestTimeout, TooManyFailures, Unauthorized,
};
use crate::access::{self, Principal};
use crate::audit::{self, json_of, Action};
use crate::domain::offer::OfferView;
use crate::domain::offer::{AffiliateInput, OfferInput};
use crate::domain::postback_url::PostbackTemplate;
use crate::domain::query::Params;
use crate::domain::{Affiliate, AffiliateId, Offer, OfferId};
use crate::error::ApiError;
use crate::metrics::StoreOperation;
use crate::postback::log::merge_newest_first;
use crate::state::AppState;
use crate::store::PostbackLogKind;

/// Proof that the request carried the admin token or an admin key: taking
/// it as a handler argument is what makes a handler an admin handler. A
/// scoped key gets `404`, as if the route did not exist.
pub struct Admin(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(super::auth::authenticate(req).and_then(|principal| {
            if principal.is_admin() {
                Ok(Admin(principal))
            } else {
                Err(access::out_of_scope())
            }
        }))
    }
}

/// Reads a JSON request body.
pub(super) fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

/// A path parameter (empty when absent).
pub(super) fn path_id<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.match_info().get(name).unwrap_or("")
}

/// `{"offers":[..]}`, fields in their documented order.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct OfferList {
    offers: Vec<serde_json::Value>,
}

/// `{"affiliates":[..]}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct AffiliateList {
    affiliates: Vec<Affiliate>,
}

/// `PUT /api/v1/offers/{offer_id}`: creates or replaces an offer.
#[utoipa::path(
    put,
    path = "/api/v1/offers/{offer_id}",
    tag = "admin",
    operation_id = "put_offer",
    summary = "Creates or replaces an offer",
    params(("offer_id" = OfferId, Path, description = "The offer")),
    request_body(content = OfferInput, description = "The whole offer: a PUT replaces it"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stored offer", body = OfferView, links(
            ("GetOffer" = (operation_id = "get_offer", parameters(("offer_id" = "$response.body#/id")))),
            ("ClickOffer" = (operation_id = "click", parameters(("offer_id" = "$response.body#/id")))),
            ("OfferStats" = (operation_id = "stats", parameters(("offer_id" = "$response.body#/id")))),
            ("OfferConversions" = (operation_id = "conversions", parameters(("offer_id" = "$response.body#/id")))),
            ("OfferPostbacks" = (operation_id = "postback_log", parameters(("offer_id" = "$response.body#/id")))),
            ("OfferDeliveries" = (operation_id = "offer_deliveries", parameters(("offer_id" = "$response.body#/id")))),
        )),
        (status = 400, description = "invalid_request: a field breaks a rule (detail names it), or advertiser_id names no advertiser; private_target: a webhook destination names an internal address", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 404, response = NotFound),
        (status = 409, description = "currency_immutable: the offer exists with another currency", body = ErrorBody),
        BearerFailures,
    )
)]
pub async fn put_offer(
    Admin(who): Admin,
    req: HttpRequest,
    body: super::RequestBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = OfferId::parse(path_id(&req, "offer_id"))?;
    let input = json_body::<OfferInput>(&body)?;
    let before = state.cache.offer(id.as_str());
    // Internal webhook targets are answered `private_target` below, like
    // the affiliates' postback URLs.
    let offer = Offer::replacing(id, input, before.as_deref(), true)?;
    if !state.allow_private_targets {
        if let Some(detail) = crate::domain::destination::private_target(&offer.destinations) {
            return Err(private_target(detail));
        }
    }
    if let Some(advertiser) = &offer.advertiser_id {
        if state.cache.advertiser(advertiser.as_str()).is_none() {
            return Err(ApiError::invalid(format!(
                "advertiser_id: no advertiser {advertiser}; create it with PUT /api/v1/advertisers/{advertiser}"
            )));
        }
    }
    if let Some(existing) = &before {
        // Reports take an offer's currency from the offer: money counted in
        // one currency must never be shown in another.
        if existing.currency != offer.currency {
            return Err(ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                "currency_immutable",
                format!(
                    "this offer's money is counted in {}; its currency cannot change. Create a new offer for {}",
                    existing.currency.as_str(),
                    offer.currency.as_str()
                ),
            ));
        }
    }
    state
        .store
        .put_offer(&offer)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::PutOffer))?;
    // Read-your-writes on this instance; the others follow within a second.
    state.cache.reload(state.store.as_ref()).await?;
    audit::record(
        &state,
        &who.actor,
        Action::PutOffer,
        offer.id.as_str(),
        json_of(&before.map(|o| o.answer())),
        json_of(&offer.answer()),
    )
    .await;
    Ok(HttpResponse::Ok().json(offer.answer()))
}

/// `GET /api/v1/offers`: every offer, sorted by id.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/offers",
    tag = "admin",
    operation_id = "list_offers",
    summary = "Every offer, sorted by id",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every offer", body = OfferList),
        (status = 404, response = NotFound),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyFailures),
    )
)]
pub async fn list_offers(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let snapshot = state.cache.snapshot();
    let mut offers: Vec<_> = snapshot.offers.values().collect();
    offers.sort_by(|a, b| a.id.cmp(&b.id));
    let offers = offers.into_iter().map(|o| o.answer()).collect();
    HttpResponse::Ok().json(OfferList { offers })
}

/// `GET /api/v1/offers/{offer_id}`.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/offers/{offer_id}",
    tag = "admin",
    operation_id = "get_offer",
    summary = "One offer",
    params(("offer_id" = String, Path, description = "The offer")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The offer", body = OfferView),
        (status = 404, description = "unknown_offer, or not_found for a scoped key", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyFailures),
    )
)]
pub async fn get_offer(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let offer = state
        .cache
        .offer(path_id(&req, "offer_id"))
        .ok_or_else(|| ApiError::not_found("unknown_offer", "no offer with this id"))?;
    Ok(HttpResponse::Ok().json(offer.answer()))
}

/// `PUT /api/v1/affiliates/{aff_id}`: creates or replaces an affiliate.
#[utoipa::path(
    put,
    path = "/api/v1/affiliates/{aff_id}",
    tag = "admin",
    operation_id = "put_affiliate",
    summary = "Creates or replaces an affiliate",
    params(("aff_id" = AffiliateId, Path, description = "The affiliate")),
    request_body(content = AffiliateInput, description = "The whole affiliate: a PUT replaces it"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stored affiliate", body = Affiliate, links(
            ("GetAffiliate" = (operation_id = "get_affiliate", parameters(("aff_id" = "$response.body#/id")))),
            ("AffiliateDeliveries" = (operation_id = "affiliate_deliveries", parameters(("aff_id" = "$response.body#/id")))),
            ("AffiliateStats" = (operation_id = "stats", parameters(("aff_id" = "$response.body#/id")))),
        )),
        (status = 400, description = "invalid_request: a field breaks a rule; private_target: a postback URL names an internal address", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn put_affiliate(
    Admin(who): Admin,
    req: HttpRequest,
    body: super::RequestBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = AffiliateId::parse(path_id(&req, "aff_id"))?;
    let affiliate = Affiliate::from_input(id, json_body::<AffiliateInput>(&body)?)?;
    if !state.allow_private_targets {
        refuse_internal_targets(&affiliate)?;
    }
    state
        .store
        .put_affiliate(&affiliate)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::PutAffiliate))?;
    let before = state.cache.affiliate(affiliate.id.as_str());
    state.cache.reload(state.store.as_ref()).await?;
    audit::record(
        &state,
        &who.actor,
        Action::PutAffiliate,
        affiliate.id.as_str(),
        json_of(&before.as_deref()),
        json_of(&affiliate),
    )
    .await;
    Ok(HttpResponse::Ok().json(affiliate))
}

/// The 400 `private_target` answer: a URL clickback would call (a postback
/// URL, a webhook) names an internal address.
fn private_target(detail: String) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::BAD_REQUEST,
        "private_target",
        detail,
    )
}

/// 400 `private_target` when a postback URL names an internal address
/// literally (or `localhost`): clickback would be made to call into its own
/// network. Names that resolve to such addresses are refused at delivery.
fn refuse_internal_targets(affiliate: &Affiliate) -> Result<(), ApiError> {
    for (field, url) in affiliate.postback_urls() {
        let internal = PostbackTemplate::parse(url)
            .ok()
            .and_then(|t| t.internal_host());
        if let Some(ip) = internal {
            return Err(private_target(format!(
                "{field}: {ip} is an internal address (loopback, private, link-local, CGNAT, multicast or metadata); set CLICKBACK_ALLOW_PRIVATE_TARGETS=1 on a private network"
            )));
        }
    }
    Ok(())
}

/// `GET /api/v1/affiliates`: every affiliate, sorted by id.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/affiliates",
    tag = "admin",
    operation_id = "list_affiliates",
    summary = "Every affiliate, sorted by id",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every affiliate", body = AffiliateList),
        (status = 404, response = NotFound),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyFailures),
    )
)]
pub async fn list_affiliates(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let snapshot = state.cache.snapshot();
    let mut affiliates: Vec<_> = snapshot
        .affiliates
        .values()
        .map(|a| a.as_ref().clone())
        .collect();
    affiliates.sort_by(|a, b| a.id.cmp(&b.id));
    HttpResponse::Ok().json(AffiliateList { affiliates })
}

/// `GET /api/v1/affiliates/{aff_id}`.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/affiliates/{aff_id}",
    tag = "admin",
    operation_id = "get_affiliate",
    summary = "One affiliate",
    params(("aff_id" = String, Path, description = "The affiliate")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The affiliate", body = Affiliate),
        (status = 404, description = "unknown_affiliate, or not_found for a scoped key", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyFailures),
    )
)]
pub async fn get_affiliate(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let affiliate = state
        .cache
        .affiliate(path_id(&req, "aff_id"))
        .ok_or_else(|| ApiError::not_found("unknown_affiliate", "no affiliate with this id"))?;
    Ok(HttpResponse::Ok().json(affiliate.as_ref()))
}

/// `{"offer_id":..,"kind":..,"postbacks":[..]}`, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct PostbackLogAnswer {
    /// The offer read, `null` for postbacks without a known offer (or all
    /// of an advertiser's offers).
    pub(super) offer_id: Option<String>,
    /// The entries read.
    #[schema(value_type = super::schemas::PostbackLogKindParam)]
    pub(super) kind: &'static str,
    /// Newest first.
    #[schema(value_type = Vec<crate::postback::log::PostbackLogEntry>)]
    pub(super) postbacks: Vec<Box<serde_json::value::RawValue>>,
}

/// `GET /api/v1/postbacks?offer_id=..&kind=..&limit=..`: the latest
/// postbacks of an offer with their outcome and reason, for troubleshooting
/// an advertiser's integration. `kind` is `accepted` (answered 200),
/// `refused` (answered 4xx/5xx) or `all` (both, merged; the default).
/// Without `offer_id`: postbacks whose offer could not be determined
/// (unknown click ids, unreadable requests).
#[utoipa::path(
    method(get, head),
    path = "/api/v1/postbacks",
    tag = "admin",
    operation_id = "postback_log",
    summary = "An offer's latest postbacks with their outcome",
    params(PostbackLogParams, FormatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The log, newest first; CSV with format=csv or Accept: text/csv", content(
            (PostbackLogAnswer = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn postback_log(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let offer = params
        .get_nonempty(&["offer_id"])?
        .map(OfferId::parse)
        .transpose()?;
    let (limit, kinds) = log_params(&state, &params)?;
    let as_csv = super::csv::wanted(&req, &params)?;
    let postbacks = read_postback_logs(&state, std::slice::from_ref(&offer), limit, kinds).await?;
    if as_csv {
        return super::csv::postback_log(&postbacks, true);
    }
    Ok(HttpResponse::Ok().json(PostbackLogAnswer {
        offer_id: offer.map(|o| o.as_str().to_owned()),
        kind: kinds_label(kinds),
        postbacks,
    }))
}

/// `limit` and `kind` of a postback log read.
pub(super) fn log_params(
    state: &AppState,
    params: &Params,
) -> Result<(usize, &'static [PostbackLogKind]), ApiError> {
    let keep = state.postback_log.keep();
    let limit = match params.get_nonempty(&["limit"])? {
        None => 100.min(keep),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=keep.max(1)).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!("limit must be a whole number from 1 to {keep}"))
            })?,
    };
    let kinds: &'static [PostbackLogKind] = match params.get_nonempty(&["kind"])? {
        None | Some("all") => &[PostbackLogKind::Accepted, PostbackLogKind::Refused],
        Some("accepted") => &[PostbackLogKind::Accepted],
        Some("refused") => &[PostbackLogKind::Refused],
        Some(_) => return Err(ApiError::invalid("kind must be accepted, refused or all")),
    };
    Ok((limit, kinds))
}

/// The answer's `kind`.
pub(super) fn kinds_label(kinds: &[PostbackLogKind]) -> &'static str {
    match kinds {
        [PostbackLogKind::Accepted] => "accepted",
        [PostbackLogKind::Refused] => "refused",
        _ => "all",
    }
}

/// The newest `limit` entries of the logs of `offers` (`None`: postbacks
/// without a known offer) of each of `kinds`, merged newest first.
pub(super) async fn read_postback_logs(
    state: &AppState,
    offers: &[Option<OfferId>],
    limit: usize,
    kinds: &[PostbackLogKind],
) -> Result<Vec<Box<serde_json::value::RawValue>>, ApiError> {
    let mut entries = Vec::new();
    for offer in offers {
        for kind in kinds {
            entries.extend(
                state
                    .store
                    .read_postback_log(offer.as_ref(), *kind, limit)
                    .await
                    .inspect_err(|_| state.metrics.store_error(StoreOperation::ReadPostbackLog))?,
            );
        }
    }
    let entries = merge_newest_first(entries, limit);
    Ok(entries
        .into_iter()
        .filter_map(|entry| serde_json::value::RawValue::from_string(entry).ok())
        .collect())
}
