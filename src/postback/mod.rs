//! Crediting a conversion from an advertiser's server-to-server postback.
//!
//! A postback passes through stages, each with its own module:
//!
//! 1. **parse** ([`request`]): parameters become a [`PostbackRequest`];
//! 2. **look up**: one pipeline reads the click and any conversion with the
//!    same identity; the offer comes from the in-process cache, and an offer
//!    with a `postback_mapping` reads the parameters again (a second look-up
//!    when that names another conversion);
//! 3. **authenticate** ([`auth`]): IP allow-list, token, signature;
//! 4. **price** ([`price`]): payout and revenue in exact micro-units;
//! 5. **judge** ([`rules`]): the offer's rules decide a new conversion;
//! 6. **apply**: one Lua script creates or moves the conversion and its
//!    counters atomically — however many identical postbacks race, exactly
//!    one credits — or writes nothing at all;
//! 7. **answer** ([`outcome`]): one table maps the outcome to HTTP, the JSON
//!    reason and the metric label.
//!
//! Claims taken on the way (a signature, a decision) are held by
//! [`claim::Claims`] and given back whenever the postback fails. Every
//! answered postback is filed in its offer's troubleshooting log ([`log`]).

pub mod auth;
pub mod claim;
pub mod log;
pub mod outcome;
pub mod price;
pub mod request;
pub mod rules;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::delivery::{DeliveryWake, DELIVERY_RETENTION_SECS};
use crate::domain::conversion::{ConversionCommand, ConversionEntry, ConversionOutcome};
use crate::domain::delivery::{DeliveryContext, DeliveryOrder, DestinationOrder};
use crate::domain::ids::base64url;
use crate::domain::query::Params;
use crate::domain::{AffiliateId, Click, ConversionStatus, Day, Identity, Offer, OfferId};
use crate::offers::ConfigCache;
use crate::store::Store;

use self::claim::Claims;
pub use self::outcome::{PostbackAnswer, PostbackError, PostbackResult};
pub use self::request::PostbackRequest;
use self::rules::{Case, Verdict};

/// How long a conversion is remembered after its click's attribution window,
/// so that late retries and late status changes still find it.
pub const CONVERSION_RETENTION_EXTRA_SECS: u64 = 90 * 86_400;

/// Fresh look-ups after the conversion's day moved under a status change (a
/// race over UTC midnight); a window that small needs few.
const MAX_RETRIES: u32 = 3;
/// Pause between looks while an identical postback decides a capped conversion.
const DECISION_WAIT: Duration = Duration::from_millis(10);
/// Looks before answering 503 `in_progress` (about two seconds): the sender retries.
const MAX_DECISION_WAITS: u32 = 200;

/// What the route knows about the request beyond its parameters.
#[derive(Debug, Clone, Copy)]
pub struct PostbackContext<'a> {
    /// The sender's IP (the advertiser's server), for the offer's allow-list.
    pub remote_ip: Option<IpAddr>,
    /// Every parameter received, for signature verification.
    pub params: &'a Params,
}

/// A postback's result, with the offer it concerned when that became known
/// (the troubleshooting log files it under that offer).
#[derive(Debug)]
pub struct PostbackOutcome {
    /// The answer, or why there is none.
    pub result: Result<PostbackAnswer, PostbackError>,
    /// The click's offer, once the click or conversion was found.
    pub offer_id: Option<OfferId>,
    /// The postback as its offer's `postback_mapping` read it, if it has one.
    pub mapped: Option<PostbackRequest>,
}

/// The postback service: what crediting needs, and nothing else.
#[derive(Clone)]
pub struct Postbacks {
    /// Clicks, conversions, counters, claims and caps.
    store: Arc<dyn Store>,
    /// Offers, never read from the store per postback.
    cache: Arc<ConfigCache>,
    /// Windows, signature skew, the conversion's day.
    clock: Arc<dyn Clock>,
    /// Wakes this instance's delivery worker when a postback queued a delivery.
    deliveries: DeliveryWake,
}

/// Bounds the two loops of the pipeline.
#[derive(Default)]
struct Attempts {
    retries: u32,
    waits: u32,
}

impl Attempts {
    fn retry(&mut self) -> Result<(), PostbackError> {
        self.retries += 1;
        if self.retries >= MAX_RETRIES {
            return Err(PostbackError::Contended);
        }
        Ok(())
    }

    async fn wait(&mut self) -> Result<(), PostbackError> {
        self.waits += 1;
        if self.waits > MAX_DECISION_WAITS {
            return Err(PostbackError::InFlight);
        }
        tokio::time::sleep(DECISION_WAIT).await;
        Ok(())
    }
}

/// Whether the credit step queued the affiliate postback it was given: a
/// new approved or pending conversion, or a status change.
fn queued_a_delivery(applied: &Result<ConversionOutcome, crate::store::StoreError>) -> bool {
    match applied {
        Ok(ConversionOutcome::Created(record)) => record.status != ConversionStatus::Rejected,
        Ok(ConversionOutcome::Updated { .. }) => true,
        _ => false,
    }
}

impl Postbacks {
    /// A service over this store, config cache and clock, waking `deliveries`.
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<ConfigCache>,
        clock: Arc<dyn Clock>,
        deliveries: DeliveryWake,
    ) -> Self {
        Self {
            store,
            cache,
            clock,
            deliveries,
        }
    }

    /// What the conversion keeps about its click and itself: the click's
    /// subs and source (after the click has expired, the store keeps the
    /// ones captured when the conversion was created), the identity and the
    /// currency.
    fn context(offer: &Offer, request: &PostbackRequest, click: Option<&Click>) -> DeliveryContext {
        let (txid, goal) = match &request.identity {
            Identity::Txid(txid) => (txid.clone(), String::new()),
            Identity::Goal(goal) => (String::new(), goal.clone()),
        };
        DeliveryContext {
            subs: click.map(|c| c.subs.clone()).unwrap_or_default(),
            source: click.map(|c| c.source.clone()).unwrap_or_default(),
            txid,
            goal,
            currency: offer.currency.as_str().to_owned(),
            ad_ids: click.map(|c| c.ad_ids.clone()).unwrap_or_default(),
            click_at: click.map_or(0, |c| c.created_at),
        }
    }

    /// The deliveries to queue with a change of a conversion of `offer` to
    /// `status`: the affiliate's postback if the affiliate has a postback
    /// URL for the offer (API.md §6), and each of the offer's destinations
    /// that fires for `status` (docs/destinations.md). `None` when there is
    /// nothing to send.
    fn delivery_order(
        &self,
        offer: &Offer,
        aff: &AffiliateId,
        amount: Option<crate::domain::Money>,
        status: ConversionStatus,
    ) -> Option<DeliveryOrder> {
        let affiliate = self
            .cache
            .affiliate(aff.as_str())
            .is_some_and(|a| a.postback_target(&offer.id).is_some());
        let destinations: Vec<DestinationOrder> = offer
            .destinations
            .iter()
            .filter(|d| d.fires_for(status))
            .map(|d| DestinationOrder {
                id: d.id.as_str().to_owned(),
                kind: d.kind(),
            })
            .collect();
        if !affiliate && destinations.is_empty() {
            return None;
        }
        Some(DeliveryOrder {
            amount,
            now_ms: self.clock.now_ms(),
            retention_secs: DELIVERY_RETENTION_SECS,
            affiliate,
            destinations,
        })
    }

    /// An advertiser's manual status change of an existing conversion
    /// (`PATCH /api/v1/me/conversions/{id}`): the same store step as a
    /// status-change postback, so the counters, the status table
    /// ([`ConversionStatus::can_move_to`]) and the affiliate postback follow
    /// alike. Never creates a conversion: one gone meanwhile answers
    /// `None`. Payout and revenue stay as they are.
    pub async fn change_status(
        &self,
        entry: &ConversionEntry,
        status: ConversionStatus,
    ) -> Result<Option<PostbackAnswer>, PostbackError> {
        let record = &entry.record;
        let offer = self
            .cache
            .offer(record.offer_id.as_str())
            .ok_or(PostbackError::UnknownClick)?;
        let mut seen_day = record.day;
        let mut attempts = Attempts::default();
        loop {
            let now = self.clock.now();
            let command = ConversionCommand {
                click_id: entry.click_id.clone(),
                identity: entry.identity.clone(),
                offer_id: record.offer_id.clone(),
                aff_id: record.aff_id.clone(),
                status,
                payout: None,
                revenue: None,
                new_conversion_id: record.conversion_id.clone(),
                today: Day::from_unix(now),
                seen_day: Some(seen_day),
                retention_secs: offer.attribution_window_secs + CONVERSION_RETENTION_EXTRA_SECS,
                reason: None,
                now,
                delivery: self.delivery_order(&offer, &record.aff_id, None, status),
                seen_conversion_id: Some(record.conversion_id.clone()),
                context: entry.context.clone(),
                must_exist: true,
            };
            let applied = self.store.apply_conversion(&command).await;
            if command.delivery.is_some() && queued_a_delivery(&applied) {
                self.deliveries.wake();
            }
            match applied? {
                ConversionOutcome::Missing => return Ok(None),
                ConversionOutcome::TooLarge => return Err(PostbackError::TooLarge),
                ConversionOutcome::Retry => {
                    attempts.retry()?;
                    // The conversion moved days or was replaced: read it again.
                    let lookup = self
                        .store
                        .lookup_conversion(&entry.click_id, &entry.identity, now)
                        .await?;
                    match lookup.conversion {
                        Some(now_stored) if now_stored.conversion_id == record.conversion_id => {
                            seen_day = now_stored.day;
                        }
                        _ => return Ok(None),
                    }
                }
                outcome => {
                    return PostbackAnswer::from_outcome(entry.click_id.as_str(), &offer, outcome)
                        .map(Some)
                        .ok_or(PostbackError::Contended)
                }
            }
        }
    }

    /// Credits, updates, de-duplicates or rejects one conversion. Every claim
    /// taken is given back if the postback fails.
    pub async fn handle(
        &self,
        request: &PostbackRequest,
        context: PostbackContext<'_>,
    ) -> PostbackOutcome {
        let mut claims = Claims::new(Arc::clone(&self.store));
        let mut offer_id = None;
        let mut mapped = None;
        let result = self
            .run(request, context, &mut claims, &mut offer_id, &mut mapped)
            .await;
        match &result {
            Ok(_) => claims.settle().await,
            Err(_) => claims.release_all().await,
        }
        PostbackOutcome {
            result,
            offer_id,
            mapped,
        }
    }

    async fn run(
        &self,
        global: &PostbackRequest,
        context: PostbackContext<'_>,
        claims: &mut Claims,
        seen_offer: &mut Option<OfferId>,
        mapped: &mut Option<PostbackRequest>,
    ) -> Result<PostbackAnswer, PostbackError> {
        let mut attempts = Attempts::default();
        loop {
            let request = mapped.as_ref().unwrap_or(global);
            let now = self.clock.now();
            // Look up.
            let lookup = self
                .store
                .lookup_conversion(&request.click_id, &request.identity, now)
                .await?;
            let (offer_id, aff_id) = match (&lookup.click, &lookup.conversion) {
                (Some(click), _) => (click.offer_id.clone(), click.aff_id.clone()),
                (None, Some(record)) => (record.offer_id.clone(), record.aff_id.clone()),
                (None, None) => return Err(PostbackError::UnknownClick),
            };
            *seen_offer = Some(offer_id.clone());
            let offer: Arc<Offer> = self
                .cache
                .offer(offer_id.as_str())
                .ok_or(PostbackError::UnknownClick)?;
            // Parse, second half: the offer's own names, statuses, amounts.
            if let Some(remapped) = request.for_offer(&offer, context.params)? {
                let other_conversion = remapped.identity != request.identity;
                *mapped = Some(remapped);
                if other_conversion {
                    continue;
                }
            }
            let request = mapped.as_ref().unwrap_or(global);

            auth::authenticate(
                &offer,
                request,
                context.remote_ip,
                context.params,
                now,
                claims,
            )
            .await?;
            let price = price::price(&offer, request, lookup.conversion.is_some())?;

            // Judge new conversions only: a decision, once recorded, is never
            // revisited by a retry.
            let mut status = request.status;
            let mut reason = None;
            let mut reservations = Vec::new();
            if let (Some(click), None) = (&lookup.click, &lookup.conversion) {
                if request.status != ConversionStatus::Rejected {
                    let case = Case {
                        offer: &offer,
                        click,
                        click_id: &request.click_id,
                        identity: &request.identity,
                        aff: &aff_id,
                        payout: price.payout.unwrap_or_default(),
                        now,
                    };
                    match rules::judge(&self.store, &case, claims).await? {
                        Verdict::Accept(held) => reservations = held,
                        Verdict::Reject(why) => {
                            status = ConversionStatus::Rejected;
                            reason = Some(why);
                        }
                        Verdict::Busy => {
                            attempts.wait().await?;
                            continue;
                        }
                    }
                }
            }

            // Apply.
            let context = Self::context(&offer, request, lookup.click.as_ref());
            let delivery = self.delivery_order(&offer, &aff_id, request.amount, status);
            let seen_conversion_id = lookup.conversion.as_ref().map(|r| r.conversion_id.clone());
            let command = ConversionCommand {
                click_id: request.click_id.clone(),
                identity: request.identity.clone(),
                offer_id,
                aff_id,
                status,
                payout: price.payout,
                revenue: price.revenue,
                new_conversion_id: base64url(uuid::Uuid::new_v4().as_bytes()),
                today: Day::from_unix(now),
                seen_day: lookup.conversion.as_ref().map(|r| r.day),
                retention_secs: offer.attribution_window_secs + CONVERSION_RETENTION_EXTRA_SECS,
                reason,
                now,
                delivery,
                seen_conversion_id,
                context,
                must_exist: false,
            };
            let applied = self.store.apply_conversion(&command).await;
            if command.delivery.is_some() && queued_a_delivery(&applied) {
                self.deliveries.wake();
            }
            let created = matches!(applied, Ok(ConversionOutcome::Created(_)));
            for reservation in reservations {
                if created {
                    reservation.keep();
                } else {
                    reservation.release().await;
                }
            }
            // Decided: from now on a look-up finds the conversion, or after a
            // failure the next postback decides afresh.
            claims.release(claim::ClaimKind::Decision).await;

            // Answer.
            match applied? {
                ConversionOutcome::Retry => {
                    attempts.retry()?;
                    continue;
                }
                ConversionOutcome::TooLarge => return Err(PostbackError::TooLarge),
                outcome => {
                    return PostbackAnswer::from_outcome(request.click_id.as_str(), &offer, outcome)
                        .ok_or(PostbackError::Contended)
                }
            }
        }
    }
}
