//! `GET /api/v1/conversions`: the list of conversions to pay from and to
//! reconcile with (admin), and what the scoped `/api/v1/me/conversions`
//! shares with it: the query, the view, which money a viewer may see, and
//! the streamed CSV export.

use std::collections::BTreeSet;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::admin::Admin;
use super::audit::page;
use super::csv::{self, Column, Pages};
use super::schemas::{
    BadRequest, BearerFailures, ConversionParams, ErrorBody, FormatParams, PageParams,
};
use crate::domain::conversion::{ConversionEntry, StatusChange};
use crate::domain::query::Params;
use crate::domain::{AdvertiserId, AffiliateId, ConversionStatus, Day, Identity, Money, OfferId};
use crate::error::ApiError;
use crate::metrics::StoreOperation;
use crate::offers::Snapshot;
use crate::state::AppState;
use crate::store::{ConversionFilter, ConversionQuery, StoreError};

/// Days a listing covers when `from` is not given: the 30 days up to `to`.
const DEFAULT_DAYS: i64 = 30;
/// Longest range of one listing, days (as for stats).
const MAX_DAYS: i64 = crate::stats::MAX_RANGE_DAYS;

/// Which money a viewer sees.
#[derive(Clone, Copy, Debug)]
pub(super) struct Visible {
    /// The affiliate's payout (hidden from advertisers the network does
    /// not show it to).
    pub payout: bool,
    /// The network's revenue (never shown to affiliates).
    pub revenue: bool,
}

impl Visible {
    /// Everything: the operator.
    pub const ALL: Self = Self {
        payout: true,
        revenue: true,
    };
}

/// One status of a conversion's history.
#[derive(Serialize, utoipa::ToSchema)]
struct HistoryView {
    status: ConversionStatus,
    at: u64,
}

/// One conversion as the list shows it. Times are Unix seconds.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ConversionView<'a> {
    id: &'a str,
    click_id: &'a str,
    offer_id: &'a str,
    aff_id: &'a str,
    status: ConversionStatus,
    /// Why clickback rejected it (`too_fast`, `cap_reached`), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::postback::outcome::RejectReasonName>)]
    reason: Option<&'static str>,
    goal: Option<&'a str>,
    txid: Option<&'a str>,
    sub1: Option<&'a str>,
    sub2: Option<&'a str>,
    sub3: Option<&'a str>,
    sub4: Option<&'a str>,
    sub5: Option<&'a str>,
    source: Option<&'a str>,
    created_at: u64,
    /// When its status last moved (its creation if it never did).
    updated_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    payout: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revenue: Option<Money>,
    currency: String,
    history: Vec<HistoryView>,
}

impl<'a> ConversionView<'a> {
    /// The view of `entry` for a viewer who sees `visible`.
    pub(super) fn of(entry: &'a ConversionEntry, visible: Visible, snapshot: &Snapshot) -> Self {
        let record = &entry.record;
        let context = &entry.context;
        let text = |s: &'a str| Some(s).filter(|s| !s.is_empty());
        let currency = text(&context.currency)
            .map(str::to_owned)
            .or_else(|| {
                snapshot
                    .offers
                    .get(record.offer_id.as_str())
                    .map(|o| o.currency.as_str().to_owned())
            })
            .unwrap_or_default();
        Self {
            id: &record.conversion_id,
            click_id: entry.click_id.as_str(),
            offer_id: record.offer_id.as_str(),
            aff_id: record.aff_id.as_str(),
            status: record.status,
            reason: record.reason.map(|r| r.as_str()),
            goal: match &entry.identity {
                Identity::Goal(goal) => Some(goal.as_str()),
                Identity::Txid(_) => text(&context.goal),
            },
            txid: match &entry.identity {
                Identity::Txid(txid) => Some(txid.as_str()),
                Identity::Goal(_) => None,
            },
            sub1: text(&context.subs[0]),
            sub2: text(&context.subs[1]),
            sub3: text(&context.subs[2]),
            sub4: text(&context.subs[3]),
            sub5: text(&context.subs[4]),
            source: text(&context.source),
            created_at: entry.created_at,
            updated_at: entry
                .history
                .last()
                .map_or(entry.created_at, |change| change.at),
            payout: visible.payout.then_some(record.payout),
            revenue: visible.revenue.then_some(record.revenue),
            currency,
            history: entry
                .history
                .iter()
                .map(|&StatusChange { status, at }| HistoryView { status, at })
                .collect(),
        }
    }
}

/// `{"conversions":[..],"next_cursor":..}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ConversionList<'a> {
    conversions: Vec<ConversionView<'a>>,
    /// Pass as `cursor` for the next page; `null` at the end.
    next_cursor: Option<String>,
}

/// The parties a listing asked for, to be checked against the caller's scope.
#[derive(Debug, Default)]
pub(super) struct Requested {
    /// `offer_id`.
    pub offer_id: Option<OfferId>,
    /// `aff_id`.
    pub aff_id: Option<AffiliateId>,
    /// `advertiser_id`.
    pub advertiser_id: Option<AdvertiserId>,
}

/// Reads `from`, `to` (UTC days, inclusive; `to` defaults to today, `from`
/// to 30 days up to `to`), `status`, `goal`, `limit` and `cursor`, and the
/// parties asked for. The query's filter names no party yet.
pub(super) fn parse(params: &Params, today: Day) -> Result<(ConversionQuery, Requested), ApiError> {
    let day = |name: &str| -> Result<Option<Day>, ApiError> {
        Ok(params
            .get_nonempty(&[name])?
            .map(Day::parse)
            .transpose()
            .map_err(|e| e.in_field(name))?)
    };
    let to = day("to")?.unwrap_or(today);
    let from = day("from")?.unwrap_or(to.minus(DEFAULT_DAYS - 1));
    if from > to {
        return Err(ApiError::invalid("from is after to"));
    }
    if to.index() - from.index() >= MAX_DAYS {
        return Err(ApiError::invalid(format!(
            "the range covers more than {MAX_DAYS} days"
        )));
    }
    let start = |day: Day| u64::try_from(day.index()).unwrap_or(0) * 86_400;
    let status = params
        .get_nonempty(&["status"])?
        .map(ConversionStatus::parse)
        .transpose()
        .map_err(|e| e.in_field("status"))?;
    let goal = params.get_nonempty(&["goal"])?.map(str::to_owned);
    let (limit, after) = page(params)?;
    let requested = Requested {
        offer_id: params
            .get_nonempty(&["offer_id"])?
            .map(OfferId::parse)
            .transpose()?,
        aff_id: params
            .get_nonempty(&["aff_id"])?
            .map(AffiliateId::parse)
            .transpose()?,
        advertiser_id: params
            .get_nonempty(&["advertiser_id"])?
            .map(AdvertiserId::parse)
            .transpose()?,
    };
    let query = ConversionQuery {
        from: start(from),
        to: start(to.succ()),
        filter: ConversionFilter {
            offers: None,
            aff_id: None,
            status,
            goal,
        },
        limit,
        after,
    };
    Ok((query, requested))
}

/// Narrows a filter to `offers` (intersected with any narrowing before).
pub(super) fn only_offers(filter: &mut ConversionFilter, offers: BTreeSet<OfferId>) {
    filter.offers = Some(match filter.offers.take() {
        None => offers,
        Some(before) => before.intersection(&offers).cloned().collect(),
    });
}

/// Entries per store read of a CSV export: the largest page.
const CSV_PAGE: usize = 1000;

/// The CSV columns of the list, without the money the viewer may not see.
fn columns(visible: Visible) -> Vec<Column> {
    let mut columns = [
        "id", "click_id", "offer_id", "aff_id", "status", "reason", "goal", "txid", "sub1", "sub2",
        "sub3", "sub4", "sub5", "source",
    ]
    .map(Column::text)
    .to_vec();
    columns.extend([Column::number("created_at"), Column::number("updated_at")]);
    if visible.payout {
        columns.push(Column::number("payout"));
    }
    if visible.revenue {
        columns.push(Column::number("revenue"));
    }
    columns.extend([Column::text("currency"), Column::text("history")]);
    columns
}

/// The conversions of a listing, a page at a time, for a CSV export.
struct ConversionPages {
    state: web::Data<AppState>,
    query: ConversionQuery,
    visible: Visible,
    /// The last page has been read.
    done: bool,
}

impl Pages for ConversionPages {
    async fn next_page(&mut self) -> Result<Option<Vec<serde_json::Value>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .state
            .store
            .list_conversions(&self.query)
            .await
            .inspect_err(|_| self.state.metrics.store_error(StoreOperation::Conversions))?;
        let snapshot = self.state.cache.snapshot();
        let rows = page
            .conversions
            .iter()
            .map(|entry| {
                let mut row =
                    serde_json::to_value(ConversionView::of(entry, self.visible, &snapshot))
                        .unwrap_or_default();
                // One cell: `pending:1795946400 approved:1795946460`.
                if let Some(history) = row.get_mut("history") {
                    *history = entry
                        .history
                        .iter()
                        .map(|change| format!("{}:{}", change.status.as_str(), change.at))
                        .collect::<Vec<_>>()
                        .join(" ")
                        .into();
                }
                row
            })
            .collect();
        self.done = page.next.is_none();
        self.query.after = page.next;
        Ok(Some(rows))
    }
}

/// Runs a listing and answers it for a viewer who sees `visible`: a page
/// of JSON, or (CSV asked for) every matching conversion from the cursor
/// on, streamed.
pub(super) async fn answer(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    params: &Params,
    mut query: ConversionQuery,
    visible: Visible,
) -> Result<HttpResponse, ApiError> {
    if csv::wanted(req, params)? {
        query.limit = CSV_PAGE;
        let pages = ConversionPages {
            state: state.clone(),
            query,
            visible,
            done: false,
        };
        return Ok(csv::stream("conversions.csv", columns(visible), pages));
    }
    let page = state
        .store
        .list_conversions(&query)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::Conversions))?;
    let snapshot = state.cache.snapshot();
    Ok(HttpResponse::Ok().json(ConversionList {
        conversions: page
            .conversions
            .iter()
            .map(|entry| ConversionView::of(entry, visible, &snapshot))
            .collect(),
        next_cursor: page.next.map(|p| p.to_cursor()),
    }))
}

/// `GET /api/v1/conversions?from&to&offer_id&aff_id&advertiser_id&status&goal&limit&cursor`:
/// conversions newest first.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/conversions",
    tag = "reports",
    operation_id = "conversions",
    summary = "Conversions newest first, to pay from and reconcile with",
    params(ConversionParams, PageParams, FormatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of conversions; with format=csv (or Accept: text/csv) every match from the cursor on, streamed as CSV", content(
            (ConversionList<'_> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = BadRequest),
        (status = 404, description = "unknown_advertiser, or not_found for a scoped key", body = ErrorBody),
        BearerFailures,
    )
)]
pub async fn conversions(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())?;
    let (mut query, requested) = parse(&params, Day::from_unix(state.clock.now()))?;
    if let Some(offer) = requested.offer_id {
        only_offers(&mut query.filter, BTreeSet::from([offer]));
    }
    if let Some(advertiser) = &requested.advertiser_id {
        let snapshot = state.cache.snapshot();
        if !snapshot.advertisers.contains_key(advertiser.as_str()) {
            return Err(ApiError::not_found(
                "unknown_advertiser",
                "no advertiser with this id",
            ));
        }
        let offers = snapshot
            .offers_of(advertiser)
            .iter()
            .map(|o| o.id.clone())
            .collect();
        only_offers(&mut query.filter, offers);
    }
    query.filter.aff_id = requested.aff_id;
    answer(&state, &req, &params, query, Visible::ALL).await
}
