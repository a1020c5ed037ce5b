//! Tracking a click: from a tracking-link request to the redirect target.
//!
//! The hot path. Offer and affiliate come from the in-process cache; the only
//! I/O the visitor waits for is one Redis round trip (one pipeline) that
//! decides whether the click is a duplicate, stores it and counts it. If
//! that fails, the visitor is still sent to the offer (without a click id)
//! and the failure is counted: traffic is never dropped.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::StatusCode;

use crate::caps::CapWatch;
use crate::clock::Clock;
use crate::domain::bots::is_bot_user_agent;
use crate::domain::click::{AdClickIds, MAX_AD_CLICK_ID_LEN, MAX_SUB_LEN};
use crate::domain::counter::Counter;
use crate::domain::query::Params;
use crate::domain::redirect::RedirectValues;
use crate::domain::visitor::VisitorHasher;
use crate::domain::{AffiliateId, Click, ClickId, Day, DomainError, Offer, Status};
use crate::error::ApiError;
use crate::metrics::{Metrics, StoreOperation};
use crate::offers::ConfigCache;
use crate::store::Store;

/// Why a click could not be redirected at all.
#[derive(Debug, thiserror::Error)]
pub enum ClickError {
    /// The link is malformed (missing `aff_id`, oversized sub, bad encoding).
    #[error("{0}")]
    Invalid(#[from] DomainError),
    /// No active offer with this id.
    #[error("no active offer with this id")]
    UnknownOffer,
    /// No active affiliate with this id.
    #[error("no active affiliate with this id")]
    UnknownAffiliate,
}

impl ClickError {
    /// The one table of click refusals: HTTP status, JSON reason, and the
    /// `result` label of `clickback_clicks_total`.
    pub fn mapping(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request", "invalid"),
            Self::UnknownOffer => (StatusCode::NOT_FOUND, "unknown_offer", "unknown_offer"),
            Self::UnknownAffiliate => (
                StatusCode::NOT_FOUND,
                "unknown_affiliate",
                "unknown_affiliate",
            ),
        }
    }

    /// The human explanation, safe to show.
    pub fn detail(&self) -> String {
        match self {
            Self::Invalid(e) => e.detail.clone(),
            Self::UnknownOffer => "no active offer with this id".into(),
            Self::UnknownAffiliate => "no active affiliate with this aff_id".into(),
        }
    }
}

impl From<&ClickError> for ApiError {
    fn from(error: &ClickError) -> Self {
        let (status, reason, _) = error.mapping();
        ApiError::new(status, reason, error.detail())
    }
}

/// Moves the click metrics for one outcome: the only place they move.
/// `offer` is the offer's id when it exists, else empty (anyone can invent
/// ids, and each would become a time series).
pub fn observe(metrics: &Metrics, offer: &str, outcome: &Result<ClickResult, &ClickError>) {
    let label = match outcome {
        Ok(result) => result.label(),
        Err(error) => error.mapping().2,
    };
    metrics.clicks.with_label_values(&[offer, label]).inc();
    if matches!(outcome, Ok(ClickResult::Duplicate)) {
        metrics.duplicate_clicks.with_label_values(&[offer]).inc();
    }
}

/// What the visitor's request says about them, read from HTTP by the route.
#[derive(Debug, Default)]
pub struct Visitor<'a> {
    /// The visitor's IP as far as it can be trusted; hashed, never stored.
    pub ip: Option<IpAddr>,
    /// The user agent; hashed, never stored.
    pub user_agent: &'a str,
    /// `Sec-GPC: 1` (Global Privacy Control) was sent.
    pub global_privacy_control: bool,
    /// Not a person (a HEAD probe, a link preview): redirected, not recorded.
    pub is_bot: bool,
}

/// How a click ended, for the response and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickResult {
    /// Stored; the redirect carries the click id.
    Tracked,
    /// The visitor declined tracking; nothing about them was stored.
    Declined,
    /// The store failed; the visitor was redirected without a click id.
    StoreError,
    /// A bot or link preview; redirected without recording anything.
    Bot,
    /// Stored, but the visitor clicked this offer and affiliate recently.
    Duplicate,
    /// A cap is full; sent to the fallback URL, nothing stored about the visitor.
    Capped,
}

impl ClickResult {
    /// The `result` label of `clickback_clicks_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Tracked => "tracked",
            Self::Declined => "declined",
            Self::StoreError => "store_error",
            Self::Bot => "bot",
            // Stored and redirected with a click id like any other; the
            // repeat is counted apart in clickback_duplicate_clicks_total.
            Self::Duplicate => "tracked",
            Self::Capped => "capped",
        }
    }
}

/// A redirect decision.
#[derive(Debug)]
pub struct Redirect {
    /// The `Location` to send the visitor to.
    pub location: String,
    /// What happened.
    pub result: ClickResult,
    /// The offer clicked (for metric labels).
    pub offer: Arc<Offer>,
}

/// Reads the tracking-link parameters: `aff_id`, `sub1`…`sub5`, `source`,
/// `consent`, and the ad platforms' click ids.
struct LinkParams<'a> {
    aff_id: AffiliateId,
    subs: [&'a str; 5],
    source: &'a str,
    declined: bool,
    /// `gclid`, `fbclid`, `ttclid`, `ga_client_id`; empty when absent or
    /// longer than [`MAX_AD_CLICK_ID_LEN`] (no such id is that long, and a
    /// click is never refused over one).
    ad_ids: [&'a str; 4],
}

fn read_link(params: &Params) -> Result<LinkParams<'_>, DomainError> {
    let aff_raw = params
        .get_nonempty(&["aff_id"])?
        .ok_or_else(|| DomainError::invalid("aff_id is required"))?;
    let aff_id = AffiliateId::parse(aff_raw)?;
    let bounded = |name: &'static str| -> Result<&str, DomainError> {
        let value = params.get(&[name])?.unwrap_or("");
        if value.len() > MAX_SUB_LEN {
            return Err(DomainError::invalid(format!(
                "{name} is longer than {MAX_SUB_LEN} bytes"
            )));
        }
        Ok(value)
    };
    let subs = [
        bounded("sub1")?,
        bounded("sub2")?,
        bounded("sub3")?,
        bounded("sub4")?,
        bounded("sub5")?,
    ];
    let source = bounded("source")?;
    let declined = matches!(
        params.get(&["consent"])?,
        Some("0") | Some("false") | Some("no")
    );
    let ad_id = |name: &'static str| -> Result<&str, DomainError> {
        Ok(params
            .get(&[name])?
            .filter(|v| v.len() <= MAX_AD_CLICK_ID_LEN)
            .unwrap_or(""))
    };
    let [gclid, fbclid, ttclid, ga_client_id] = AdClickIds::NAMES;
    let ad_ids = [
        ad_id(gclid)?,
        ad_id(fbclid)?,
        ad_id(ttclid)?,
        ad_id(ga_client_id)?,
    ];
    Ok(LinkParams {
        aff_id,
        subs,
        source,
        declined,
        ad_ids,
    })
}

/// The click service: what a redirect needs, and nothing else.
pub struct Clicks {
    /// Where clicks and their counters are recorded.
    pub store: Arc<dyn Store>,
    /// Offers and affiliates, never read from the store per click.
    pub cache: Arc<ConfigCache>,
    /// Which caps are full, so capped clicks go to the fallback without asking Redis.
    pub caps: Arc<CapWatch>,
    /// Turns IP + user agent into an anonymous visitor hash.
    pub hasher: VisitorHasher,
    /// The click's time and day.
    pub clock: Arc<dyn Clock>,
    /// Store failures are counted (the visitor is redirected regardless).
    pub metrics: Metrics,
    /// Duplicate-click window, seconds (0: off).
    pub unique_click_window_secs: u64,
    /// Global landing page while a cap is full.
    pub fallback_url: Option<String>,
    /// Hash buckets per shard and hour for click records.
    pub click_buckets: u16,
}

/// Counts a click that is not tracked; a failure only costs the count.
async fn count_untracked(
    state: &Clicks,
    offer: &Offer,
    aff: &AffiliateId,
    at: u64,
    counter: Counter,
) {
    if let Err(e) = state
        .store
        .count_untracked_click(&offer.id, aff, at, counter)
        .await
    {
        state
            .metrics
            .store_error(StoreOperation::CountUntrackedClick);
        log::debug!("untracked click not counted: {e}");
    }
}

/// Records a click (unless declined) and decides where the visitor goes.
pub async fn track(
    state: &Clicks,
    offer_id: &str,
    query: &[u8],
    visitor: Visitor<'_>,
) -> Result<Redirect, ClickError> {
    let params = Params::parse(query)?;
    // One snapshot for both look-ups: one lock, and offer and affiliate from
    // the same configuration version.
    let config = state.cache.snapshot();
    let offer = config
        .offers
        .get(offer_id)
        .filter(|o| o.status == Status::Active)
        .cloned()
        .ok_or(ClickError::UnknownOffer)?;
    let link = read_link(&params)?;
    config
        .affiliates
        .get(link.aff_id.as_str())
        .filter(|a| a.status == Status::Active)
        .ok_or(ClickError::UnknownAffiliate)?;

    let mut values = RedirectValues {
        click_id: None,
        offer_id: offer.id.as_str(),
        aff_id: link.aff_id.as_str(),
        subs: link.subs,
        source: link.source,
        ad_ids: link.ad_ids,
    };
    let now = state.clock.now();
    let day = Day::from_unix(now);

    if visitor.is_bot || is_bot_user_agent(visitor.user_agent) {
        return Ok(Redirect {
            location: offer.redirect.build(&values),
            result: ClickResult::Bot,
            offer,
        });
    }

    if !offer.caps.is_empty() && state.caps.is_full(&offer.id, &link.aff_id) {
        if let Some(fallback) = offer.fallback_url.as_ref().or(state.fallback_url.as_ref()) {
            count_untracked(state, &offer, &link.aff_id, now, Counter::Capped).await;
            return Ok(Redirect {
                location: fallback.clone(),
                result: ClickResult::Capped,
                offer,
            });
        }
    }

    if link.declined || visitor.global_privacy_control {
        count_untracked(state, &offer, &link.aff_id, now, Counter::Declined).await;
        return Ok(Redirect {
            location: offer.redirect.build(&values),
            result: ClickResult::Declined,
            offer,
        });
    }

    let ip = visitor.ip.map(|ip| ip.to_string()).unwrap_or_default();
    let visitor_hash = state.hasher.hash(day, &ip, visitor.user_agent);
    // The visitor hash picks the shard, so the duplicate-click marker of this
    // visitor lives in the same hash slot as the click.
    let shard = visitor_hash.chars().next().unwrap_or('A');
    let click = Click {
        id: ClickId::mint(shard, now, state.click_buckets),
        offer_id: offer.id.clone(),
        aff_id: link.aff_id.clone(),
        subs: link.subs.map(str::to_owned),
        source: link.source.to_owned(),
        created_at: now,
        expires_at: now.saturating_add(offer.attribution_window_secs),
        visitor: visitor_hash,
        ad_ids: offer.kept_ad_ids(link.ad_ids),
    };
    let recorded = state
        .store
        .record_click(&click, state.unique_click_window_secs)
        .await;
    let result = match recorded {
        Ok(unique) => {
            values.click_id = Some(click.id.as_str());
            if unique {
                ClickResult::Tracked
            } else {
                ClickResult::Duplicate
            }
        }
        Err(e) => {
            state.metrics.store_error(StoreOperation::RecordClick);
            log::debug!("click not recorded, redirecting without a click id: {e}");
            ClickResult::StoreError
        }
    };
    let location = offer.redirect.build(&values);
    Ok(Redirect {
        location,
        result,
        offer,
    })
}
