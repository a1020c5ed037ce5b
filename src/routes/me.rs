//! `/api/v1/me…`: what an affiliate's or an advertiser's own API key sees.
//!
//! - An affiliate: its offers with ready tracking links, its own stats
//!   rows and conversions (never revenue), its postback deliveries.
//! - An advertiser: its offers, their stats rows and conversions (affiliate
//!   payouts only if the network set `show_payouts`), their postback log,
//!   and approving or rejecting its conversions.
//!
//! Anything outside the key's scope — another party's id in a parameter, an
//! endpoint for the other role, an admin key on a scoped view — is a `404`
//! like an unknown path, so that ids do not leak.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::admin::{
    json_body, kinds_label, log_params, path_id, read_postback_logs, PostbackLogAnswer,
};
use super::conversions::{self, only_offers, Visible};
use super::schemas::{
    BadRequest, BearerFailures, ConversionParams, ErrorBody, FormatParams, NotFound, PageParams,
    PayloadTooLarge, PostbackLogParams, RequestTimeout, StatsParams, TooManyFailures, Unauthorized,
};
use crate::access::{out_of_scope, Principal};
use crate::audit::{self, Action};
use crate::domain::query::Params;
use crate::domain::{
    AdvertiserId, AffiliateId, ConversionStatus, Currency, Day, KeyRole, Money, Offer, OfferId,
    Status,
};
use crate::error::ApiError;
use crate::metrics::StoreOperation;
use crate::offers::Snapshot;
use crate::state::AppState;
use crate::stats::{report, StatsQuery};
use crate::store::DeliveryScope;

/// The party of a scoped key.
enum Party {
    Affiliate(AffiliateId),
    Advertiser {
        id: AdvertiserId,
        /// Whether the network shows it affiliate payouts.
        show_payouts: bool,
    },
}

impl Party {
    /// The scoped key's party; an admin (who has no own scope) gets `404`.
    fn of(principal: &Principal, snapshot: &Snapshot) -> Result<Self, ApiError> {
        match &principal.role {
            KeyRole::Affiliate { aff_id } => Ok(Self::Affiliate(aff_id.clone())),
            KeyRole::Advertiser { advertiser_id } => Ok(Self::Advertiser {
                show_payouts: snapshot
                    .advertisers
                    .get(advertiser_id.as_str())
                    .is_some_and(|a| a.show_payouts),
                id: advertiser_id.clone(),
            }),
            KeyRole::Admin => Err(out_of_scope()),
        }
    }

    /// Which money this party sees.
    fn visible(&self) -> Visible {
        match self {
            Self::Affiliate(_) => Visible {
                payout: true,
                revenue: false,
            },
            Self::Advertiser { show_payouts, .. } => Visible {
                payout: *show_payouts,
                revenue: true,
            },
        }
    }
}

/// The ids of an advertiser's offers.
fn offer_ids(snapshot: &Snapshot, advertiser: &AdvertiserId) -> BTreeSet<OfferId> {
    snapshot
        .offers_of(advertiser)
        .iter()
        .map(|o| o.id.clone())
        .collect()
}

/// `GET /api/v1/me`: who the key is.
#[derive(Serialize, utoipa::ToSchema)]
struct Me<'a> {
    #[serde(flatten)]
    role: &'a KeyRole,
    /// The key's id; `bootstrap` for the admin token.
    key_id: &'a str,
}

/// `GET /api/v1/me`: the key's role, party and id (`bootstrap` for the admin token).
#[utoipa::path(
    method(get, head),
    path = "/api/v1/me",
    tag = "scoped",
    operation_id = "me",
    summary = "Who the key is",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key's role, party and id", body = Me<'_>),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyFailures),
    )
)]
pub async fn me(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        role: &principal.role,
        key_id: principal.actor.as_str(),
    })
}

/// An offer as its affiliate sees it: what it pays and the link to send
/// traffic to; never revenue or the advertiser's postback secrets.
#[derive(Serialize, utoipa::ToSchema)]
struct AffiliateOffer<'a> {
    id: &'a OfferId,
    name: &'a str,
    payout: Option<Money>,
    payout_percent: Option<Money>,
    currency: &'a Currency,
    tracking_link: String,
}

/// An offer as its advertiser sees it: no postback secrets; the payout
/// only if the network shows it.
#[derive(Serialize, utoipa::ToSchema)]
struct AdvertiserOffer<'a> {
    id: &'a OfferId,
    name: &'a str,
    url: &'a str,
    status: Status,
    currency: &'a Currency,
    revenue: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payout: Option<Option<Money>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payout_percent: Option<Option<Money>>,
}

/// `{"offers":[..]}`: an affiliate's or an advertiser's view of its offers.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum MyOffers<'a> {
    /// An affiliate's key.
    Affiliate {
        /// Every active offer, sorted by id.
        offers: Vec<AffiliateOffer<'a>>,
    },
    /// An advertiser's key.
    Advertiser {
        /// Its own offers.
        offers: Vec<AdvertiserOffer<'a>>,
    },
}

/// The base of tracking links: `CLICKBACK_PUBLIC_URL`, else the scheme and
/// host this request came to.
fn link_base(state: &AppState, req: &HttpRequest) -> String {
    match &state.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

/// `GET /api/v1/me/offers`: an affiliate's active offers with its tracking
/// link; an advertiser's own offers.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/me/offers",
    tag = "scoped",
    operation_id = "my_offers",
    summary = "An affiliate's active offers with its tracking links; an advertiser's own offers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The offers the key may see", body = MyOffers<'_>),
        (status = 404, response = NotFound),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyFailures),
    )
)]
pub async fn offers(
    principal: Principal,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.cache.snapshot();
    match Party::of(&principal, &snapshot)? {
        Party::Affiliate(aff) => {
            let base = link_base(&state, &req);
            let mut offers: Vec<&Arc<Offer>> = snapshot
                .offers
                .values()
                .filter(|o| o.status == Status::Active)
                .collect();
            offers.sort_by(|a, b| a.id.cmp(&b.id));
            let offers = offers
                .into_iter()
                .map(|offer| {
                    let view = offer.view();
                    AffiliateOffer {
                        id: &offer.id,
                        name: &offer.name,
                        payout: view.payout,
                        payout_percent: view.payout_percent,
                        currency: &offer.currency,
                        tracking_link: format!("{base}/c/{}?aff_id={aff}", offer.id),
                    }
                })
                .collect();
            Ok(HttpResponse::Ok().json(MyOffers::Affiliate { offers }))
        }
        Party::Advertiser { id, show_payouts } => {
            let offers = snapshot.offers_of(&id);
            let views: Vec<_> = offers.iter().map(|o| o.view()).collect();
            let offers = offers
                .iter()
                .zip(&views)
                .map(|(offer, view)| AdvertiserOffer {
                    id: &offer.id,
                    name: &offer.name,
                    url: &view.url,
                    status: offer.status,
                    currency: &offer.currency,
                    revenue: offer.revenue,
                    payout: show_payouts.then_some(view.payout),
                    payout_percent: show_payouts.then_some(view.payout_percent),
                })
                .collect();
            Ok(HttpResponse::Ok().json(MyOffers::Advertiser { offers }))
        }
    }
}

/// `GET /api/v1/me/stats`: `/api/v1/stats` (same parameters, same rows)
/// over the party's own rows; money it may not see is left out of the rows.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/me/stats",
    tag = "scoped",
    operation_id = "my_stats",
    summary = "/api/v1/stats over the party's own rows",
    params(StatsParams, FormatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The report's rows, without the money the party may not see; CSV with format=csv or Accept: text/csv", content(
            (super::stats::StatsAnswer = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn stats(
    principal: Principal,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.cache.snapshot();
    let party = Party::of(&principal, &snapshot)?;
    let params = Params::parse(req.query_string().as_bytes())?;
    let as_csv = super::csv::wanted(&req, &params)?;
    let mut query = StatsQuery::from_params(&params, state.clock.now())?;
    match &party {
        Party::Affiliate(aff) => {
            if query.aff_id.as_ref().is_some_and(|asked| asked != aff) {
                return Err(out_of_scope());
            }
            query.aff_id = Some(aff.clone());
        }
        Party::Advertiser { id, .. } => {
            let own = offer_ids(&snapshot, id);
            if query
                .offer_id
                .as_ref()
                .is_some_and(|asked| !own.contains(asked))
            {
                return Err(out_of_scope());
            }
            query.offers = Some(own);
        }
    }
    let rows = report(state.store.as_ref(), &snapshot.offers, &query)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::ReadCounters))?;
    super::stats::answer(&query, &rows, party.visible(), as_csv)
}

/// `GET /api/v1/me/conversions`: `/api/v1/conversions` over the party's own
/// conversions.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/me/conversions",
    tag = "scoped",
    operation_id = "my_conversions",
    summary = "/api/v1/conversions over the party's own conversions",
    params(ConversionParams, PageParams, FormatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of conversions, without the money the party may not see; with format=csv (or Accept: text/csv) every match from the cursor on, streamed as CSV", content(
            (super::conversions::ConversionList<'_> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn conversions(
    principal: Principal,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.cache.snapshot();
    let party = Party::of(&principal, &snapshot)?;
    let params = Params::parse(req.query_string().as_bytes())?;
    let (mut query, requested) = conversions::parse(&params, Day::from_unix(state.clock.now()))?;
    if let Some(offer) = requested.offer_id {
        only_offers(&mut query.filter, BTreeSet::from([offer]));
    }
    query.filter.aff_id = requested.aff_id.clone();
    match &party {
        Party::Affiliate(aff) => {
            if requested.aff_id.as_ref().is_some_and(|asked| asked != aff)
                || requested.advertiser_id.is_some()
            {
                return Err(out_of_scope());
            }
            query.filter.aff_id = Some(aff.clone());
        }
        Party::Advertiser { id, .. } => {
            let own = offer_ids(&snapshot, id);
            if requested
                .advertiser_id
                .as_ref()
                .is_some_and(|asked| asked != id)
                || query
                    .filter
                    .offers
                    .as_ref()
                    .is_some_and(|asked| !asked.is_subset(&own))
            {
                return Err(out_of_scope());
            }
            only_offers(&mut query.filter, own);
        }
    }
    conversions::answer(&state, &req, &params, query, party.visible()).await
}

/// `GET /api/v1/me/deliveries?limit&cursor`: an affiliate's postback
/// deliveries, newest first.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/me/deliveries",
    tag = "scoped",
    operation_id = "my_deliveries",
    summary = "An affiliate's postback deliveries, newest first",
    params(PageParams, FormatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of deliveries; with format=csv (or Accept: text/csv) every match from the cursor on, streamed as CSV", content(
            (super::deliveries::DeliveryList<'_> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn deliveries(
    principal: Principal,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Party::Affiliate(aff) = Party::of(&principal, &state.cache.snapshot())? else {
        return Err(out_of_scope());
    };
    let params = Params::parse(req.query_string().as_bytes())?;
    super::deliveries::list(&state, &req, DeliveryScope::Affiliate(aff), &params).await
}

/// `GET /api/v1/me/postbacks?offer_id&kind&limit`: the postback log of an
/// advertiser's offers (one offer, or all of them merged), newest first.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/me/postbacks",
    tag = "scoped",
    operation_id = "my_postbacks",
    summary = "The postback log of an advertiser's offers",
    params(PostbackLogParams, FormatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The log, newest first; CSV with format=csv or Accept: text/csv", content(
            (super::admin::PostbackLogAnswer = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn postbacks(
    principal: Principal,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.cache.snapshot();
    let Party::Advertiser { id, show_payouts } = Party::of(&principal, &snapshot)? else {
        return Err(out_of_scope());
    };
    let params = Params::parse(req.query_string().as_bytes())?;
    let own = offer_ids(&snapshot, &id);
    let asked = params
        .get_nonempty(&["offer_id"])?
        .map(OfferId::parse)
        .transpose()?;
    let offers: Vec<Option<OfferId>> = match &asked {
        Some(offer) if own.contains(offer) => vec![Some(offer.clone())],
        Some(_) => return Err(out_of_scope()),
        None => own.into_iter().map(Some).collect(),
    };
    let (limit, kinds) = log_params(&state, &params)?;
    let as_csv = super::csv::wanted(&req, &params)?;
    let mut postbacks = read_postback_logs(&state, &offers, limit, kinds).await?;
    if !show_payouts {
        postbacks = postbacks
            .into_iter()
            .filter_map(|raw| {
                let mut entry: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
                entry.as_object_mut()?.remove("payout");
                serde_json::value::to_raw_value(&entry).ok()
            })
            .collect();
    }
    if as_csv {
        return super::csv::postback_log(&postbacks, show_payouts);
    }
    Ok(HttpResponse::Ok().json(PostbackLogAnswer {
        offer_id: asked.map(|o| o.as_str().to_owned()),
        kind: kinds_label(kinds),
        postbacks,
    }))
}

/// The body of `PATCH /api/v1/me/conversions/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    /// `approved`, `pending` or `rejected`.
    #[schema(value_type = crate::domain::ConversionStatus)]
    status: String,
}

/// `PATCH /api/v1/me/conversions/{id}` with `{"status":".."}`: an
/// advertiser approves or rejects one of its conversions, by the rules of a
/// status-change postback (pending → approved or rejected, approved →
/// rejected; anything else answers `duplicate` and changes nothing). The
/// answer is a postback's; the change is audited.
#[utoipa::path(
    patch,
    path = "/api/v1/me/conversions/{id}",
    tag = "scoped",
    operation_id = "change_conversion_status",
    summary = "An advertiser approves or rejects one of its conversions",
    params(("id" = String, Path, description = "The conversion id")),
    request_body(content = StatusBody),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A postback's answer: updated, or duplicate when the move is not allowed", body = crate::postback::PostbackAnswer),
        (status = 400, response = BadRequest),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 404, description = "unknown_conversion (unknown, or not the advertiser's), or not_found for a key that is not an advertiser's", body = ErrorBody),
        (status = 503, description = "store_unavailable, or in_progress: nothing was changed, retry", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds"))),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyFailures),
    )
)]
pub async fn change_status(
    principal: Principal,
    req: HttpRequest,
    body: super::RequestBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = state.cache.snapshot();
    let Party::Advertiser { id, show_payouts } = Party::of(&principal, &snapshot)? else {
        return Err(out_of_scope());
    };
    let status = ConversionStatus::parse(&json_body::<StatusBody>(&body)?.status)
        .map_err(|e| e.in_field("status"))?;
    let unknown = || ApiError::not_found("unknown_conversion", "no conversion with this id");
    let conversion_id = path_id(&req, "id");
    let entry = state
        .store
        .find_conversion(conversion_id)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::Conversions))?
        .filter(|entry| offer_ids(&snapshot, &id).contains(&entry.record.offer_id))
        .ok_or_else(unknown)?;
    let answer = state
        .postbacks
        .change_status(&entry, status)
        .await
        .map_err(|e| ApiError::from(&e))?
        .ok_or_else(unknown)?;
    if answer.result == crate::postback::PostbackResult::Updated {
        audit::record(
            &state,
            &principal.actor,
            Action::ChangeConversionStatus,
            &entry.record.conversion_id,
            serde_json::json!({ "status": entry.record.status }),
            serde_json::json!({ "status": answer.conversion_status }),
        )
        .await;
    }
    let mut value = serde_json::to_value(&answer).unwrap_or_default();
    if !show_payouts {
        if let Some(fields) = value.as_object_mut() {
            fields.remove("payout");
        }
    }
    Ok(HttpResponse::Ok().json(value))
}
