//! `GET /api/v1/stats`: reports for analysts and the operator (API.md §3),
//! as JSON or CSV.

use actix_web::{web, HttpRequest, HttpResponse};

use super::admin::Admin;
use super::conversions::Visible;
use super::csv::{self, Column};
use super::schemas::{BadRequest, BearerFailures, FormatParams, NotFound, StatsParams};
use crate::domain::query::Params;
use crate::error::ApiError;
use crate::metrics::StoreOperation;
use crate::state::AppState;
use crate::stats::{report, StatsQuery, StatsRow};

/// `{"rows":[..]}`, row fields in their documented order.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct StatsAnswer {
    /// Sorted by day, hour, offer, affiliate, status, value, currency.
    #[schema(value_type = Vec<StatsRow>)]
    rows: Vec<serde_json::Value>,
}

/// The CSV columns of a report: its grouping keys, the currency, and the
/// counters, without the money the viewer may not see.
pub(super) fn columns(query: &StatsQuery, visible: Visible) -> Vec<Column> {
    let mut columns = Vec::new();
    if query.by_day {
        columns.push(Column::text("day"));
    }
    if query.by_hour {
        columns.push(Column::number("hour"));
    }
    if query.by_offer {
        columns.push(Column::text("offer_id"));
    }
    if query.by_affiliate {
        columns.push(Column::text("aff_id"));
    }
    if query.by_status {
        columns.push(Column::text("status"));
    }
    if let Some(dimension) = query.dimension {
        columns.push(Column::text(dimension.name()));
        columns.push(Column::text("other"));
    }
    columns.push(Column::text("currency"));
    for (name, shown) in [
        ("clicks", true),
        ("conversions", true),
        ("payout", visible.payout),
        ("revenue", visible.revenue),
        ("pending_conversions", true),
        ("pending_payout", visible.payout),
        ("rejected_conversions", true),
        ("declined_clicks", true),
        ("unique_clicks", true),
        ("capped_clicks", true),
    ] {
        if shown {
            columns.push(Column::number(name));
        }
    }
    columns
}

/// The rows as JSON objects, without the money the viewer may not see.
pub(super) fn visible_rows(rows: &[StatsRow], visible: Visible) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|row| {
            let mut value = serde_json::to_value(row).unwrap_or_default();
            if let Some(fields) = value.as_object_mut() {
                if !visible.revenue {
                    fields.remove("revenue");
                }
                if !visible.payout {
                    fields.remove("payout");
                    fields.remove("pending_payout");
                }
            }
            value
        })
        .collect()
}

/// Answers a report's rows as JSON or, when asked for, CSV.
pub(super) fn answer(
    query: &StatsQuery,
    rows: &[StatsRow],
    visible: Visible,
    as_csv: bool,
) -> Result<HttpResponse, ApiError> {
    let rows = visible_rows(rows, visible);
    if as_csv {
        return csv::answer("stats.csv", &columns(query, visible), &rows);
    }
    Ok(HttpResponse::Ok().json(StatsAnswer { rows }))
}

/// Counters grouped by any of offer, affiliate, day, hour, status and one
/// of the sub-IDs, source and goal, in UTC or `tz`.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/stats",
    tag = "reports",
    operation_id = "stats",
    summary = "Counters grouped by offer, affiliate, day, hour, status or a sub-ID",
    params(StatsParams, FormatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The report's rows (a grouping key appears only when grouped by); CSV with format=csv or Accept: text/csv", content(
            (StatsAnswer = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn stats(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let as_csv = csv::wanted(&req, &params)?;
    let query = StatsQuery::from_params(&params, state.clock.now())?;
    let rows = report(state.store.as_ref(), &state.cache.snapshot().offers, &query)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::ReadCounters))?;
    answer(&query, &rows, Visible::ALL, as_csv)
}
