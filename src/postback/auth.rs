//! The authenticate stage: is this postback from the offer's advertiser?
//! The sender's IP against the offer's allow-list, the token in constant
//! time, and for offers with a signing secret, `ts`/`sig` verified and the
//! signature claimed once (a second use is a replay).

use std::net::IpAddr;

use super::claim::{ClaimKind, Claims};
use super::outcome::PostbackError;
use super::request::PostbackRequest;
use crate::domain::query::Params;
use crate::domain::signature::{self, constant_time_eq};
use crate::domain::Offer;

/// Checks the sender of `request` for `offer` at Unix time `now`, claiming
/// its signature in `claims` the first time round.
pub async fn authenticate(
    offer: &Offer,
    request: &PostbackRequest,
    remote_ip: Option<IpAddr>,
    params: &Params,
    now: u64,
    claims: &mut Claims,
) -> Result<(), PostbackError> {
    if !offer.postback_ips.is_empty()
        && !remote_ip.is_some_and(|ip| offer.postback_ips.iter().any(|net| net.contains(ip)))
    {
        return Err(PostbackError::IpNotAllowed);
    }
    let token_ok = request
        .token
        .as_deref()
        .is_some_and(|t| constant_time_eq(t.as_bytes(), offer.postback_token.as_bytes()));
    if !token_ok {
        return Err(PostbackError::InvalidToken);
    }
    let Some(secret) = &offer.postback_signing_secret else {
        return Ok(());
    };
    if claims.holds(ClaimKind::Signature) {
        // Verified and claimed on an earlier look-up of this same request.
        return Ok(());
    }
    signature::verify(secret, params.pairs(), now).map_err(PostbackError::InvalidSignature)?;
    let sig = params.get(&["sig"])?.unwrap_or("").to_ascii_lowercase();
    if !claims
        .take(sig, 2 * signature::MAX_SKEW_SECS, ClaimKind::Signature)
        .await?
    {
        return Err(PostbackError::Replayed);
    }
    Ok(())
}
