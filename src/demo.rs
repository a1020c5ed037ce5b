//! `CLICKBACK_DEMO=1`: seeds one offer and one affiliate and prints the whole
//! flow as copy-paste commands, so a newcomer sees a click credited in a minute.

use crate::config::Settings;
use crate::domain::offer::{AffiliateInput, OfferInput};
use crate::domain::{Affiliate, AffiliateId, Currency, Money, Offer, OfferId};
use crate::offers::ConfigCache;
use crate::store::Store;

/// The demo offer's id.
pub const DEMO_OFFER: &str = "demo";
/// The demo affiliate's id.
pub const DEMO_AFFILIATE: &str = "demo-aff";
/// The demo offer's postback token.
pub const DEMO_TOKEN: &str = "demo-postback-token";

/// Creates the demo offer and affiliate unless they exist, and logs how to use them.
pub async fn seed(store: &dyn Store, cache: &ConfigCache, settings: &Settings, port: u16) {
    let result = async {
        let offer_id = OfferId::parse(DEMO_OFFER)?;
        let aff_id = AffiliateId::parse(DEMO_AFFILIATE)?;
        if cache.offer(DEMO_OFFER).is_none() {
            let offer = Offer::from_input(
                offer_id,
                OfferInput {
                    id: None,
                    name: "Demo shop".into(),
                    url: Some("https://shop.example/landing?utm_source=clickback".into()),
                    click_id_param: None,
                    payout: Some(Money::parse("2.50")?),
                    payout_percent: None,
                    revenue: Some(Money::parse("4")?),
                    currency: Some(Currency::parse("USD")?),
                    attribution_window_secs: None,
                    postback_token: Some(DEMO_TOKEN.into()),
                    status: Default::default(),
                    min_ctc_secs: None,
                    postback_ips: None,
                    postback_signing_secret: None,
                    fallback_url: None,
                    caps: None,
                    postback_mapping: None,
                    advertiser_id: None,
                    destinations: None,
                },
            )?;
            store.put_offer(&offer).await.map_err(|e| e.to_string())?;
        }
        if cache.affiliate(DEMO_AFFILIATE).is_none() {
            let affiliate = Affiliate::from_input(
                aff_id,
                AffiliateInput {
                    id: None,
                    name: "Demo affiliate".into(),
                    status: Default::default(),
                    postback_url: None,
                    offer_postback_urls: Default::default(),
                },
            )?;
            store
                .put_affiliate(&affiliate)
                .await
                .map_err(|e| e.to_string())?;
        }
        cache.reload(store).await.map_err(|e| e.to_string())?;
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    if let Err(e) = result {
        log::error!("demo data could not be seeded: {e}");
        return;
    }
    let base = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://localhost:{port}"));
    log::info!("demo: offer {DEMO_OFFER:?} and affiliate {DEMO_AFFILIATE:?} are ready");
    log::info!("demo: 1. click a tracking link (the 302 Location carries the click id):");
    log::info!("demo:    curl -si '{base}/c/{DEMO_OFFER}?aff_id={DEMO_AFFILIATE}&sub1=newsletter' | grep -i ^location");
    log::info!("demo: 2. report the conversion, as the advertiser's server would:");
    log::info!(
        "demo:    curl -s '{base}/postback?click_id=<CLICK_ID>&token={DEMO_TOKEN}&txid=order-1'"
    );
    log::info!("demo:    or both at once:");
    log::info!(
        "demo:    CID=$(curl -s -o /dev/null -w '%{{redirect_url}}' '{base}/c/{DEMO_OFFER}?aff_id={DEMO_AFFILIATE}' | sed 's/.*click_id=//'); curl -s \"{base}/postback?click_id=$CID&token={DEMO_TOKEN}&txid=order-1\""
    );
    log::info!(
        "demo: 3. see it counted: curl -s {base}/metrics | grep clickback_conversions_total"
    );
}
