//! `/api/v1/advertisers`: the advertisers whose offers convert (admin only).
//! An offer names its advertiser in `advertiser_id`; the advertiser's keys
//! see that offer's rows, conversions and postback log.

use actix_web::{web, HttpRequest, HttpResponse};

use super::admin::{json_body, path_id, Admin};
use super::schemas::{
    BadRequest, BearerFailures, ErrorBody, NotFound, PayloadTooLarge, RequestTimeout,
    TooManyFailures, Unauthorized,
};
use crate::audit::{self, json_of, Action};
use crate::domain::party::AdvertiserInput;
use crate::domain::{Advertiser, AdvertiserId};
use crate::error::ApiError;
use crate::metrics::StoreOperation;
use crate::state::AppState;

/// `{"advertisers":[..]}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct AdvertiserList {
    advertisers: Vec<Advertiser>,
}

/// `PUT /api/v1/advertisers/{advertiser_id}`: creates or replaces an advertiser.
#[utoipa::path(
    put,
    path = "/api/v1/advertisers/{advertiser_id}",
    tag = "admin",
    operation_id = "put_advertiser",
    summary = "Creates or replaces an advertiser",
    params(("advertiser_id" = AdvertiserId, Path, description = "The advertiser")),
    request_body(content = AdvertiserInput, description = "The whole advertiser: a PUT replaces it"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stored advertiser", body = Advertiser, links(
            ("GetAdvertiser" = (operation_id = "get_advertiser", parameters(("advertiser_id" = "$response.body#/id")))),
            ("AdvertiserConversions" = (operation_id = "conversions", parameters(("advertiser_id" = "$response.body#/id")))),
        )),
        (status = 400, response = BadRequest),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn put_advertiser(
    Admin(who): Admin,
    req: HttpRequest,
    body: super::RequestBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = AdvertiserId::parse(path_id(&req, "advertiser_id"))?;
    let advertiser = Advertiser::from_input(id, json_body::<AdvertiserInput>(&body)?)?;
    let before = state.cache.advertiser(advertiser.id.as_str());
    state
        .store
        .put_advertiser(&advertiser)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::Access))?;
    state.cache.reload(state.store.as_ref()).await?;
    audit::record(
        &state,
        &who.actor,
        Action::PutAdvertiser,
        advertiser.id.as_str(),
        json_of(&before.as_deref()),
        json_of(&advertiser),
    )
    .await;
    Ok(HttpResponse::Ok().json(advertiser))
}

/// `GET /api/v1/advertisers`: every advertiser, sorted by id.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/advertisers",
    tag = "admin",
    operation_id = "list_advertisers",
    summary = "Every advertiser, sorted by id",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every advertiser", body = AdvertiserList),
        (status = 404, response = NotFound),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyFailures),
    )
)]
pub async fn list_advertisers(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let snapshot = state.cache.snapshot();
    let mut advertisers: Vec<_> = snapshot
        .advertisers
        .values()
        .map(|a| a.as_ref().clone())
        .collect();
    advertisers.sort_by(|a, b| a.id.cmp(&b.id));
    HttpResponse::Ok().json(AdvertiserList { advertisers })
}

/// `GET /api/v1/advertisers/{advertiser_id}`.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/advertisers/{advertiser_id}",
    tag = "admin",
    operation_id = "get_advertiser",
    summary = "One advertiser",
    params(("advertiser_id" = String, Path, description = "The advertiser")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The advertiser", body = Advertiser),
        (status = 404, description = "unknown_advertiser, or not_found for a scoped key", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyFailures),
    )
)]
pub async fn get_advertiser(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let advertiser = state
        .cache
        .advertiser(path_id(&req, "advertiser_id"))
        .ok_or_else(|| ApiError::not_found("unknown_advertiser", "no advertiser with this id"))?;
    Ok(HttpResponse::Ok().json(advertiser.as_ref()))
}
