//! `/healthz`, `/readyz` and `/metrics` (API.md §4).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::schemas::StoreUnavailable;
use crate::error::ApiError;
use crate::metrics::StoreOperation;
use crate::state::AppState;

/// The answer of a probe: `ok` or `ready`.
#[derive(utoipa::ToSchema)]
pub struct Probe {
    /// `ok` (liveness) or `ready` (readiness).
    pub status: String,
}

/// 200 while the process serves HTTP (liveness).
#[utoipa::path(
    method(get, head),
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses((status = 200, description = "The process serves HTTP", body = Probe, example = json!({"status": "ok"})))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 when the store answers, else 503 (readiness: take this instance out
/// of the load balancer; it would still redirect, but not record clicks).
#[utoipa::path(
    method(get, head),
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, description = "The store answers", body = Probe, example = json!({"status": "ready"})),
        (status = 503, response = StoreUnavailable),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .store
        .ping()
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::Ping))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}

/// Prometheus text exposition.
#[utoipa::path(
    method(get, head),
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String))
)]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state.metrics.render().map_err(|e| {
        log::error!("cannot render metrics: {e}");
        ApiError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "cannot render metrics",
        )
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(text))
}
