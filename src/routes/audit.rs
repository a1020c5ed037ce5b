//! `GET /api/v1/audit`: the audit log, newest first (admin only). What is
//! recorded and for how long: `crate::audit`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::admin::Admin;
use super::schemas::{BadRequest, BearerFailures, NotFound, PageParams};
use crate::domain::query::Params;
use crate::error::ApiError;
use crate::metrics::StoreOperation;
use crate::state::AppState;
use crate::store::Position;

/// `{"entries":[..],"next_cursor":..}`.
#[derive(Serialize, utoipa::ToSchema)]
struct AuditList {
    /// Newest first.
    #[schema(value_type = Vec<crate::audit::Entry<'_>>)]
    entries: Vec<Box<serde_json::value::RawValue>>,
    /// Pass as `cursor` for the next page; `null` at the end.
    next_cursor: Option<String>,
}

/// `limit` (1–1000, default 100) and `cursor` of a listing.
pub(super) fn page(params: &Params) -> Result<(usize, Option<Position>), ApiError> {
    const MAX: usize = 1000;
    let limit = match params.get_nonempty(&["limit"])? {
        None => 100,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!("limit must be a whole number from 1 to {MAX}"))
            })?,
    };
    let cursor = params
        .get_nonempty(&["cursor"])?
        .map(|raw| {
            Position::from_cursor(raw).ok_or_else(|| {
                ApiError::invalid("cursor is not one this API handed out (next_cursor)")
            })
        })
        .transpose()?;
    Ok((limit, cursor))
}

/// `GET /api/v1/audit?limit=..&cursor=..`.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/audit",
    tag = "admin",
    operation_id = "audit_log",
    summary = "The audit log, newest first",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of entries", body = AuditList),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn audit_log(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let (limit, after) = page(&params)?;
    let page = state
        .store
        .list_audit(limit, after.as_ref())
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::Audit))?;
    Ok(HttpResponse::Ok().json(AuditList {
        entries: page
            .entries
            .into_iter()
            .filter_map(|json| serde_json::value::RawValue::from_string(json).ok())
            .collect(),
        next_cursor: page.next.map(|p| p.to_cursor()),
    }))
}
