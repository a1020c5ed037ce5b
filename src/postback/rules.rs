//! The judge stage: the offer's rules, as a list, decide whether a new
//! conversion is accepted or recorded as rejected with a reason.
//!
//! A rule judges new conversions only: a decision, once recorded, is never
//! revisited by a retry or a status change. A new rule is a variant of
//! [`Rule`], a line in [`RULES`], and a [`RejectReason`] of its own.

use std::sync::Arc;

use super::claim::{ClaimKind, Claims};
use super::outcome::PostbackError;
use crate::caps;
use crate::domain::conversion::RejectReason;
use crate::domain::{AffiliateId, Click, ClickId, Day, Identity, Money, Offer};
use crate::store::{CapEntry, Store};

/// How long the claim of one postback deciding a new capped conversion lasts
/// if its holder dies before releasing it.
const DECISION_CLAIM_TTL_SECS: u64 = 30;

/// The rules, in the order they judge. The first that rejects decides.
pub const RULES: [Rule; 2] = [Rule::MinClickToConversion, Rule::Caps];

/// One rule of an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `min_ctc_secs`: a conversion sooner after the click is `too_fast`.
    MinClickToConversion,
    /// `caps`: a conversion over a daily, monthly or lifetime cap is
    /// `cap_reached`. Every cap counter moves, or none (one script).
    Caps,
}

/// What the rules look at.
pub struct Case<'a> {
    /// The converting click's offer.
    pub offer: &'a Offer,
    /// The converting click.
    pub click: &'a Click,
    /// The click's id and the conversion's identity.
    pub click_id: &'a ClickId,
    /// The conversion's identity within the click.
    pub identity: &'a Identity,
    /// The credited affiliate.
    pub aff: &'a AffiliateId,
    /// The payout the conversion would earn.
    pub payout: Money,
    /// Now, Unix seconds (the injected clock).
    pub now: u64,
}

/// The rules' decision on a new conversion.
pub enum Verdict {
    /// Accepted; the cap room it took is held until the conversion is written.
    Accept(Vec<CapReservation>),
    /// Recorded as rejected for this reason.
    Reject(RejectReason),
    /// An identical postback is deciding this conversion: look again shortly.
    Busy,
}

/// Runs every rule on a new conversion.
pub async fn judge(
    store: &Arc<dyn Store>,
    case: &Case<'_>,
    claims: &mut Claims,
) -> Result<Verdict, PostbackError> {
    let mut held = Vec::new();
    for rule in RULES {
        match rule.judge(store, case, claims).await {
            Ok(RuleVerdict::Pass(reservation)) => held.extend(reservation),
            Ok(RuleVerdict::Reject(reason)) => {
                release_all(held).await;
                return Ok(Verdict::Reject(reason));
            }
            Ok(RuleVerdict::Busy) => {
                release_all(held).await;
                return Ok(Verdict::Busy);
            }
            Err(e) => {
                release_all(held).await;
                return Err(e);
            }
        }
    }
    Ok(Verdict::Accept(held))
}

async fn release_all(held: Vec<CapReservation>) {
    for reservation in held {
        reservation.release().await;
    }
}

/// One rule's answer.
enum RuleVerdict {
    Pass(Option<CapReservation>),
    Reject(RejectReason),
    Busy,
}

impl Rule {
    async fn judge(
        self,
        store: &Arc<dyn Store>,
        case: &Case<'_>,
        claims: &mut Claims,
    ) -> Result<RuleVerdict, PostbackError> {
        match self {
            Self::MinClickToConversion => {
                if case.now.saturating_sub(case.click.created_at) < case.offer.min_ctc_secs {
                    Ok(RuleVerdict::Reject(RejectReason::TooFast))
                } else {
                    Ok(RuleVerdict::Pass(None))
                }
            }
            Self::Caps => {
                if case.offer.caps.is_empty() {
                    return Ok(RuleVerdict::Pass(None));
                }
                // Identical postbacks racing here would each reserve cap
                // room, and one that found the cap full of the others'
                // reservations could record the conversion as cap_reached
                // although the cap has room. One of them decides; the
                // others wait for its conversion and answer duplicate.
                let decision = format!("{}|{}", case.click_id.as_str(), case.identity.key_suffix());
                if !claims
                    .take(decision, DECISION_CLAIM_TTL_SECS, ClaimKind::Decision)
                    .await?
                {
                    return Ok(RuleVerdict::Busy);
                }
                let today = Day::from_unix(case.now);
                let entries = caps::entries(case.offer, case.aff, case.payout, today);
                match store.reserve_caps(&case.offer.id, &entries).await? {
                    Some(_) => Ok(RuleVerdict::Reject(RejectReason::CapReached)),
                    None => Ok(RuleVerdict::Pass(Some(CapReservation {
                        store: Arc::clone(store),
                        offer: case.offer.id.clone(),
                        entries,
                    }))),
                }
            }
        }
    }
}

/// Cap room taken for a new conversion: kept when the conversion is
/// created, given back otherwise (it existed already, or writing it failed).
/// A crash between the two steps can leave a unit of a cap unused; it can
/// never let a cap be exceeded.
pub struct CapReservation {
    store: Arc<dyn Store>,
    offer: crate::domain::OfferId,
    entries: Vec<CapEntry>,
}

impl CapReservation {
    /// The conversion was created: the room stays taken.
    pub fn keep(mut self) {
        self.entries.clear();
    }

    /// Gives the room back.
    pub async fn release(mut self) {
        let entries = std::mem::take(&mut self.entries);
        give_back(self.store.as_ref(), &self.offer, &entries).await;
    }
}

/// Gives cap room back; a failure leaves a unit of the cap unused, never
/// exceeded, so it is only logged.
async fn give_back(store: &dyn Store, offer: &crate::domain::OfferId, entries: &[CapEntry]) {
    if let Err(e) = store.release_caps(offer, entries).await {
        log::warn!("cap reservation of offer {offer} not released: {e}");
    }
}

impl Drop for CapReservation {
    fn drop(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        let (store, offer, entries) = (
            Arc::clone(&self.store),
            self.offer.clone(),
            std::mem::take(&mut self.entries),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { give_back(store.as_ref(), &offer, &entries).await });
        }
    }
}
