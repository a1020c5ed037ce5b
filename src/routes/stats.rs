//! `GET /api/v1/stats`: reports for analysts and the operator (API.md §3).

use actix_web::{web, HttpRequest, HttpResponse};

use super::admin::Admin;
use crate::domain::query::Params;
use crate::domain::Day;
use crate::error::ApiError;
use crate::metrics::StoreOperation;
use crate::state::AppState;
use crate::stats::{report, StatsQuery};

/// `{"rows":[..]}`, row fields in their documented order.
#[derive(serde::Serialize)]
struct StatsAnswer {
    rows: Vec<crate::stats::StatsRow>,
}

/// Counters grouped by any of offer, affiliate and day.
pub async fn stats(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let query = StatsQuery::from_params(&params, Day::from_unix(state.clock.now()))?;
    let rows = report(state.store.as_ref(), &state.cache.snapshot().offers, &query)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::ReadCounters))?;
    Ok(HttpResponse::Ok().json(StatsAnswer { rows }))
}
