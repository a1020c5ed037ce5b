//! `/api/v1/affiliates/{aff_id}/deliveries`,
//! `/api/v1/offers/{offer_id}/deliveries`, `/api/v1/deliveries` and
//! `/api/v1/deliveries/{id}/retry`: the delivery logs (affiliate postbacks,
//! API.md §6; destinations, docs/destinations.md) and the operator's retry.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::admin::Admin;
use super::csv::{self, Column, Pages};
use super::schemas::{
    BadRequest, BearerFailures, DeliveryStateParams, ErrorBody, FormatParams, NotFound, PageParams,
};
use crate::delivery::DELIVERY_RETENTION_SECS;
use crate::domain::delivery::{Delivery, DeliveryId, DeliveryState};
use crate::domain::query::Params;
use crate::domain::{AffiliateId, Money, OfferId};
use crate::error::ApiError;
use crate::metrics::StoreOperation;
use crate::state::AppState;
use crate::store::{DeliveryQuery, DeliveryScope, Position, RetryOutcome, StoreError};

/// Entries per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;
/// Entries per page at most.
const MAX_LIMIT: usize = 1000;

/// One delivery as the API shows it. Times are Unix seconds. The URL is the
/// template as the affiliate configured it (with any secret it holds), not
/// the expanded one; for a destination, the endpoint called, without its
/// query (where GA4 takes its API secret).
#[derive(Serialize, utoipa::ToSchema)]
struct DeliveryView<'a> {
    id: &'a str,
    conversion_id: &'a str,
    click_id: &'a str,
    offer_id: &'a str,
    aff_id: &'a str,
    /// The offer's destination; `null` for the affiliate's postback.
    destination: Option<&'a str>,
    #[schema(value_type = crate::domain::ConversionStatus)]
    status: &'static str,
    #[schema(value_type = DeliveryState)]
    state: &'static str,
    payout: Money,
    currency: &'a str,
    amount: Option<Money>,
    attempts: u32,
    last_http_status: Option<u16>,
    last_error: Option<&'a str>,
    created_at: u64,
    last_attempt_at: Option<u64>,
    next_attempt_at: Option<u64>,
    url: Option<&'a str>,
}

impl<'a> DeliveryView<'a> {
    fn of(d: &'a Delivery) -> Self {
        let secs = |ms: u64| ms / 1000;
        Self {
            id: d.id.as_str(),
            conversion_id: &d.conversion_id,
            click_id: &d.click_id,
            offer_id: d.offer_id.as_str(),
            aff_id: d.aff_id.as_str(),
            destination: d.destination.as_ref().map(|(id, _)| id.as_str()),
            status: d.status.as_str(),
            state: d.state.as_str(),
            payout: d.payout,
            currency: &d.context.currency,
            amount: d.amount,
            attempts: d.attempts,
            last_http_status: d.last_http_status,
            last_error: d.last_error.as_deref(),
            created_at: secs(d.created_at_ms),
            last_attempt_at: d.last_attempt_at_ms.map(secs),
            next_attempt_at: d
                .next_attempt_at_ms
                .filter(|_| d.state == DeliveryState::Pending)
                .map(secs),
            url: d.url.as_deref(),
        }
    }
}

/// `{"deliveries":[..],"next_cursor":..}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeliveryList<'a> {
    deliveries: Vec<DeliveryView<'a>>,
    /// Pass as `cursor` for the next page; `null` at the end.
    next_cursor: Option<String>,
}

/// `limit` and `cursor` of a listing.
fn page(params: &Params) -> Result<(usize, Option<Position>), ApiError> {
    let limit = match params.get_nonempty(&["limit"])? {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let cursor = params
        .get_nonempty(&["cursor"])?
        .map(|raw| {
            Position::from_cursor(raw)
                .filter(|position| DeliveryId::parse(&position.id).is_ok())
                .ok_or_else(|| {
                    ApiError::invalid("cursor is not one this API handed out (next_cursor)")
                })
        })
        .transpose()?;
    Ok((limit, cursor))
}

/// The CSV columns of a delivery list.
fn columns() -> Vec<Column> {
    let text = Column::text;
    let number = Column::number;
    vec![
        text("id"),
        text("conversion_id"),
        text("click_id"),
        text("offer_id"),
        text("aff_id"),
        text("destination"),
        text("status"),
        text("state"),
        number("payout"),
        text("currency"),
        number("amount"),
        number("attempts"),
        number("last_http_status"),
        text("last_error"),
        number("created_at"),
        number("last_attempt_at"),
        number("next_attempt_at"),
        text("url"),
    ]
}

/// The deliveries of a listing, a page at a time, for a CSV export.
struct DeliveryPages {
    state: web::Data<AppState>,
    query: DeliveryQuery,
    /// The last page has been read.
    done: bool,
}

impl Pages for DeliveryPages {
    async fn next_page(&mut self) -> Result<Option<Vec<serde_json::Value>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .state
            .store
            .list_deliveries(&self.query)
            .await
            .inspect_err(|_| {
                self.state
                    .metrics
                    .store_error(StoreOperation::ReadDeliveries)
            })?;
        let rows = page
            .deliveries
            .iter()
            .map(|d| serde_json::to_value(DeliveryView::of(d)).unwrap_or_default())
            .collect();
        self.done = page.next.is_none();
        self.query.after = page.next;
        Ok(Some(rows))
    }
}

/// A page of deliveries as JSON or (CSV asked for) every delivery of the
/// scope from the cursor on, streamed.
pub(super) async fn list(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    scope: DeliveryScope,
    params: &Params,
) -> Result<HttpResponse, ApiError> {
    let (limit, after) = page(params)?;
    let mut query = DeliveryQuery {
        scope,
        limit,
        after,
    };
    if csv::wanted(req, params)? {
        query.limit = MAX_LIMIT;
        let pages = DeliveryPages {
            state: state.clone(),
            query,
            done: false,
        };
        return Ok(csv::stream("deliveries.csv", columns(), pages));
    }
    let page = state
        .store
        .list_deliveries(&query)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::ReadDeliveries))?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        deliveries: page.deliveries.iter().map(DeliveryView::of).collect(),
        next_cursor: page.next.as_ref().map(Position::to_cursor),
    }))
}

/// `GET /api/v1/affiliates/{aff_id}/deliveries?limit=..&cursor=..`: the
/// affiliate's deliveries, newest first.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/affiliates/{aff_id}/deliveries",
    tag = "admin",
    operation_id = "affiliate_deliveries",
    summary = "An affiliate's postback deliveries, newest first",
    params(("aff_id" = AffiliateId, Path, description = "The affiliate"), PageParams, FormatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of deliveries; with format=csv (or Accept: text/csv) every match from the cursor on, streamed as CSV", content(
            (DeliveryList<'_> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = BadRequest),
        (status = 404, description = "unknown_affiliate, or not_found for a scoped key", body = ErrorBody),
        BearerFailures,
    )
)]
pub async fn affiliate_deliveries(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let raw = req.match_info().get("aff_id").unwrap_or("");
    let aff = AffiliateId::parse(raw)?;
    if state.cache.affiliate(aff.as_str()).is_none() {
        return Err(ApiError::not_found(
            "unknown_affiliate",
            "no affiliate with this id",
        ));
    }
    list(&state, &req, DeliveryScope::Affiliate(aff), &params).await
}

/// `GET /api/v1/offers/{offer_id}/deliveries?limit=..&cursor=..`: every
/// delivery of the offer's conversions, to its affiliates and to its
/// destinations, newest first.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/offers/{offer_id}/deliveries",
    tag = "admin",
    operation_id = "offer_deliveries",
    summary = "Every delivery of an offer's conversions (affiliate postbacks and destinations), newest first",
    params(("offer_id" = OfferId, Path, description = "The offer"), PageParams, FormatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of deliveries; with format=csv (or Accept: text/csv) every match from the cursor on, streamed as CSV", content(
            (DeliveryList<'_> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = BadRequest),
        (status = 404, description = "unknown_offer, or not_found for a scoped key", body = ErrorBody),
        BearerFailures,
    )
)]
pub async fn offer_deliveries(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let offer = OfferId::parse(req.match_info().get("offer_id").unwrap_or(""))?;
    if state.cache.offer(offer.as_str()).is_none() {
        return Err(ApiError::not_found(
            "unknown_offer",
            "no offer with this id",
        ));
    }
    list(&state, &req, DeliveryScope::Offer(offer), &params).await
}

/// `GET /api/v1/deliveries?state=dead|pending&limit=..&cursor=..`: across
/// affiliates, the dead ones (most recently dead first) or the pending ones
/// (newest first).
#[utoipa::path(
    method(get, head),
    path = "/api/v1/deliveries",
    tag = "admin",
    operation_id = "deliveries",
    summary = "Dead or pending deliveries across affiliates",
    params(DeliveryStateParams, PageParams, FormatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of deliveries; with format=csv (or Accept: text/csv) every match from the cursor on, streamed as CSV", content(
            (DeliveryList<'_> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn deliveries(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let scope = match params.get_nonempty(&["state"])? {
        Some("dead") => DeliveryScope::Dead,
        Some("pending") => DeliveryScope::Pending,
        _ => {
            return Err(ApiError::invalid(
                "state must be dead or pending (an affiliate's deliveries in every state: /api/v1/affiliates/{aff_id}/deliveries)",
            ))
        }
    };
    list(&state, &req, scope, &params).await
}

/// `{"id":..,"state":"pending"}`.
#[derive(Serialize, utoipa::ToSchema)]
struct Retried<'a> {
    id: &'a str,
    #[schema(value_type = DeliveryState)]
    state: &'static str,
}

/// `POST /api/v1/deliveries/{id}/retry`: queues a dead or pending delivery
/// again, due now, with the whole retry schedule ahead of it.
#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{id}/retry",
    tag = "admin",
    operation_id = "retry_delivery",
    summary = "Queues a dead or pending delivery again, due now",
    params(("id" = String, Path, description = "The delivery")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Queued", body = Retried<'_>),
        (status = 404, description = "unknown_delivery, or not_found for a scoped key", body = ErrorBody),
        (status = 409, description = "already_delivered: it got its 2xx already", body = ErrorBody),
        BearerFailures,
    )
)]
pub async fn retry(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let unknown = || ApiError::not_found("unknown_delivery", "no delivery with this id");
    let id = DeliveryId::parse(req.match_info().get("id").unwrap_or("")).map_err(|_| unknown())?;
    let outcome = state
        .store
        .retry_delivery(&id, state.clock.now_ms(), DELIVERY_RETENTION_SECS)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::ReadDeliveries))?;
    match outcome {
        RetryOutcome::Queued => {
            state.deliveries.wake();
            Ok(HttpResponse::Ok().json(Retried {
                id: id.as_str(),
                state: DeliveryState::Pending.as_str(),
            }))
        }
        RetryOutcome::AlreadyDelivered => Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "already_delivered",
            "this delivery got its 2xx already",
        )),
        RetryOutcome::NotFound => Err(unknown()),
    }
}
