//! `/api/v1/offers` and `/api/v1/affiliates`: the operator's admin API (API.md §3).
//! The affiliate postback log and retry live in `deliveries`.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;

use crate::domain::offer::{AffiliateInput, OfferInput};
use crate::domain::postback_url::PostbackTemplate;
use crate::domain::query::Params;
use crate::domain::signature::constant_time_eq;
use crate::domain::{Affiliate, AffiliateId, Offer, OfferId};
use crate::error::ApiError;
use crate::metrics::StoreOperation;
use crate::postback::log::merge_newest_first;
use crate::state::AppState;
use crate::store::PostbackLogKind;

/// Proof that the request carried the admin bearer token. Taking it as a
/// handler argument is what makes a handler an admin handler.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authorize(req))
    }
}

fn authorize(req: &HttpRequest) -> Result<Admin, ApiError> {
    let configured = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.admin_token.clone())
        .ok_or_else(|| {
            ApiError::unauthorized("the admin API is disabled: set CLICKBACK_ADMIN_TOKEN")
        })?;
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <admin token>"))?;
    if constant_time_eq(presented.trim().as_bytes(), configured.as_bytes()) {
        Ok(Admin)
    } else {
        Err(ApiError::unauthorized("the admin token is wrong"))
    }
}

fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

fn path_id<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.match_info().get(name).unwrap_or("")
}

/// `{"offers":[..]}`, fields in their documented order.
#[derive(serde::Serialize)]
struct OfferList {
    offers: Vec<crate::domain::offer::OfferView>,
}

/// `{"affiliates":[..]}`.
#[derive(serde::Serialize)]
struct AffiliateList {
    affiliates: Vec<Affiliate>,
}

/// `PUT /api/v1/offers/{offer_id}`: creates or replaces an offer.
pub async fn put_offer(
    _: Admin,
    req: HttpRequest,
    body: super::RequestBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = OfferId::parse(path_id(&req, "offer_id"))?;
    let offer = Offer::from_input(id, json_body::<OfferInput>(&body)?)?;
    if let Some(existing) = state.cache.offer(offer.id.as_str()) {
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
    Ok(HttpResponse::Ok().json(offer.view()))
}

/// `GET /api/v1/offers`: every offer, sorted by id.
pub async fn list_offers(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let snapshot = state.cache.snapshot();
    let mut offers: Vec<_> = snapshot.offers.values().map(|o| o.view()).collect();
    offers.sort_by(|a, b| a.id.cmp(&b.id));
    HttpResponse::Ok().json(OfferList { offers })
}

/// `GET /api/v1/offers/{offer_id}`.
pub async fn get_offer(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let offer = state
        .cache
        .offer(path_id(&req, "offer_id"))
        .ok_or_else(|| ApiError::not_found("unknown_offer", "no offer with this id"))?;
    Ok(HttpResponse::Ok().json(offer.view()))
}

/// `PUT /api/v1/affiliates/{aff_id}`: creates or replaces an affiliate.
pub async fn put_affiliate(
    _: Admin,
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
    state.cache.reload(state.store.as_ref()).await?;
    Ok(HttpResponse::Ok().json(affiliate))
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
            return Err(ApiError::new(
                actix_web::http::StatusCode::BAD_REQUEST,
                "private_target",
                format!(
                    "{field}: {ip} is an internal address (loopback, private, link-local, CGNAT, multicast or metadata); set CLICKBACK_ALLOW_PRIVATE_TARGETS=1 on a private network"
                ),
            ));
        }
    }
    Ok(())
}

/// `GET /api/v1/affiliates`: every affiliate, sorted by id.
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
#[derive(serde::Serialize)]
struct PostbackLogAnswer {
    offer_id: Option<String>,
    kind: &'static str,
    postbacks: Vec<Box<serde_json::value::RawValue>>,
}

/// `GET /api/v1/postbacks?offer_id=..&kind=..&limit=..`: the latest
/// postbacks of an offer with their outcome and reason, for troubleshooting
/// an advertiser's integration. `kind` is `accepted` (answered 200),
/// `refused` (answered 4xx/5xx) or `all` (both, merged; the default).
/// Without `offer_id`: postbacks whose offer could not be determined
/// (unknown click ids, unreadable requests).
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
    let kinds: &[PostbackLogKind] = match params.get_nonempty(&["kind"])? {
        None | Some("all") => &[PostbackLogKind::Accepted, PostbackLogKind::Refused],
        Some("accepted") => &[PostbackLogKind::Accepted],
        Some("refused") => &[PostbackLogKind::Refused],
        Some(_) => return Err(ApiError::invalid("kind must be accepted, refused or all")),
    };
    let mut entries = Vec::new();
    for kind in kinds {
        entries.extend(
            state
                .store
                .read_postback_log(offer.as_ref(), *kind, limit)
                .await
                .inspect_err(|_| state.metrics.store_error(StoreOperation::ReadPostbackLog))?,
        );
    }
    let entries = merge_newest_first(entries, limit);
    let postbacks = entries
        .into_iter()
        .filter_map(|entry| serde_json::value::RawValue::from_string(entry).ok())
        .collect();
    Ok(HttpResponse::Ok().json(PostbackLogAnswer {
        offer_id: offer.map(|o| o.as_str().to_owned()),
        kind: match kinds {
            [PostbackLogKind::Accepted] => "accepted",
            [PostbackLogKind::Refused] => "refused",
            _ => "all",
        },
        postbacks,
    }))
}
