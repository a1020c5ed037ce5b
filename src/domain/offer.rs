//! Offers and affiliates: the configuration a network operator manages
//! through the admin API, and that every redirect and postback consults from
//! the in-process cache.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::cap::Cap;
use super::click::AdClickIds;
use super::destination::{Destination, DestinationKind, DestinationSpec};
use super::net::IpNet;
use super::postback_mapping::PostbackMapping;
use super::postback_url::PostbackTemplate;
use super::redirect::RedirectTemplate;
use super::{AdvertiserId, AffiliateId, Currency, DomainError, Money, OfferId};

/// Whether an offer or affiliate takes traffic. Paused ones answer 404 to
/// clicks; postbacks for clicks already made are still honoured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Takes traffic.
    #[default]
    Active,
    /// Refuses new clicks.
    Paused,
}

/// Thirty days, the industry's default attribution window.
pub const DEFAULT_ATTRIBUTION_WINDOW_SECS: u64 = 30 * 86_400;
/// The longest attribution window clickback accepts (400 days).
pub const MAX_ATTRIBUTION_WINDOW_SECS: u64 = 400 * 86_400;

/// Most per-offer postback URLs one affiliate may have: the affiliate is
/// part of the config every instance holds in memory.
pub const MAX_OFFER_POSTBACK_URLS: usize = 1000;

/// The body of `PUT /api/v1/offers/{offer_id}`, exactly as API.md §3 shows it.
///
/// `url`, `currency` and one of `payout` / `payout_percent` are required; they
/// are `Option`s so that [`Offer::from_input`] can name every missing one in a
/// single answer rather than the first one serde trips over.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferInput {
    /// Accepted so that a `GET` result can be `PUT` back; must match the path.
    #[serde(default)]
    pub id: Option<String>,
    /// A human name for dashboards.
    #[serde(default)]
    pub name: String,
    /// The advertiser's landing page, absolute http(s), optionally with macros.
    #[serde(default)]
    pub url: Option<String>,
    /// The query parameter that carries the click id when `url` has no macros.
    #[serde(default)]
    pub click_id_param: Option<String>,
    /// Fixed payout per approved conversion.
    #[serde(default)]
    pub payout: Option<Money>,
    /// Payout as a percentage of the postback's `amount` (revenue share).
    #[serde(default)]
    pub payout_percent: Option<Money>,
    /// Fixed revenue per conversion (what the advertiser pays the network);
    /// when absent, the postback's `amount` counts as revenue.
    #[serde(default)]
    pub revenue: Option<Money>,
    /// The currency of payout, revenue and amounts.
    #[serde(default)]
    pub currency: Option<Currency>,
    /// How long after a click a conversion is still attributed to it.
    #[serde(default)]
    pub attribution_window_secs: Option<u64>,
    /// The shared secret advertisers put in their postbacks.
    #[serde(default)]
    pub postback_token: Option<String>,
    /// Active or paused.
    #[serde(default)]
    pub status: Status,
    /// Conversions sooner than this after their click are rejected `too_fast`.
    #[serde(default)]
    pub min_ctc_secs: Option<u64>,
    /// IPs / CIDR blocks allowed to send postbacks; empty allows any.
    #[serde(default)]
    pub postback_ips: Option<Vec<String>>,
    /// When set, postbacks must be signed with HMAC-SHA256 under this secret.
    #[serde(default)]
    pub postback_signing_secret: Option<String>,
    /// Where clicks go while a cap is full (else the global fallback).
    #[serde(default)]
    pub fallback_url: Option<String>,
    /// Daily / monthly / lifetime limits on conversions or payout.
    #[serde(default)]
    pub caps: Option<Vec<Cap>>,
    /// How this offer's advertiser names postback parameters, statuses and
    /// amounts, where the global names do not say.
    #[serde(default)]
    pub postback_mapping: Option<PostbackMapping>,
    /// The advertiser whose offer this is; its keys see the offer's rows.
    #[serde(default)]
    pub advertiser_id: Option<AdvertiserId>,
    /// Where the offer's conversions are forwarded server-side (GA4, Meta,
    /// TikTok, signed webhooks; docs/destinations.md). A destination given
    /// without its credential keeps the one stored under its id.
    #[serde(default)]
    pub destinations: Option<Vec<DestinationSpec>>,
}

/// How an offer pays its affiliates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayoutRule {
    /// The same amount for every approved conversion (CPA).
    Fixed(Money),
    /// A percentage of the sale amount the advertiser reports (RevShare).
    Percent(Money),
}

/// A validated offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The operator's identifier, used in tracking links.
    pub id: OfferId,
    /// A human name.
    pub name: String,
    /// The parsed landing-page URL that every click of this offer lands on.
    pub redirect: RedirectTemplate,
    /// The query parameter that carries the click id.
    pub click_id_param: String,
    /// Fixed or percentage payout.
    pub payout: PayoutRule,
    /// Fixed revenue per conversion, if the operator set one.
    pub revenue: Option<Money>,
    /// Currency of all amounts of this offer.
    pub currency: Currency,
    /// Click lifetime: the click record's TTL in the store.
    pub attribution_window_secs: u64,
    /// Secret the advertiser's postbacks must carry.
    pub postback_token: String,
    /// Active or paused.
    pub status: Status,
    /// Minimum click-to-conversion time, seconds (0: none).
    pub min_ctc_secs: u64,
    /// Who may send postbacks; empty allows anyone with the token.
    pub postback_ips: Vec<IpNet>,
    /// HMAC key of signed postbacks, if they are required.
    pub postback_signing_secret: Option<String>,
    /// Landing page while a cap is full, normalised like the offer URL.
    pub fallback_url: Option<String>,
    /// The offer's caps.
    pub caps: Vec<Cap>,
    /// The advertiser's postback dialect; `None` reads the global names only.
    pub postback_mapping: Option<PostbackMapping>,
    /// The advertiser whose offer this is, if the operator named one: its
    /// keys see this offer's rows, conversions and postback log.
    pub advertiser_id: Option<AdvertiserId>,
    /// Where its conversions are forwarded server-side, in the given order.
    pub destinations: Vec<Destination>,
}

/// The JSON form of an offer, as the admin API answers it and as it is stored.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OfferView {
    /// The offer id.
    pub id: OfferId,
    /// A human name.
    pub name: String,
    /// Landing-page URL, normalised (punycode host, non-ASCII percent-encoded):
    /// the URL clicks are sent to.
    pub url: String,
    /// Click-id query parameter.
    pub click_id_param: String,
    /// Fixed payout, or `null` for percentage offers.
    pub payout: Option<Money>,
    /// Percentage payout, or `null` for fixed offers.
    pub payout_percent: Option<Money>,
    /// Fixed revenue, if any.
    pub revenue: Option<Money>,
    /// Currency code.
    pub currency: Currency,
    /// Attribution window in seconds.
    pub attribution_window_secs: u64,
    /// Advertiser postback secret.
    pub postback_token: String,
    /// Active or paused.
    pub status: Status,
    /// Minimum click-to-conversion time, seconds.
    #[serde(default)]
    pub min_ctc_secs: u64,
    /// Postback IP allow-list.
    #[serde(default)]
    pub postback_ips: Vec<String>,
    /// Secret of signed postbacks, or `null`.
    #[serde(default)]
    pub postback_signing_secret: Option<String>,
    /// Landing page while a cap is full, or `null`.
    #[serde(default)]
    pub fallback_url: Option<String>,
    /// Caps.
    #[serde(default)]
    pub caps: Vec<Cap>,
    /// The advertiser's postback dialect; left out when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postback_mapping: Option<PostbackMapping>,
    /// The advertiser; left out when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertiser_id: Option<AdvertiserId>,
    /// The destinations, credentials included: this is the stored form.
    /// API answers go through [`Offer::answer`], which leaves them out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<DestinationSpec>,
}

impl Offer {
    /// Validates an admin `PUT` body for the offer at `id` (a new offer, or
    /// one whose destinations all carry their credentials).
    pub fn from_input(id: OfferId, input: OfferInput) -> Result<Self, DomainError> {
        Self::replacing(id, input, None, true)
    }

    /// Validates an admin `PUT` body that replaces `previous` (if any): a
    /// destination given without its credential keeps the one `previous`
    /// has under the same id, so a `GET` answer can be `PUT` back.
    /// `allow_private` lets webhooks name internal addresses
    /// (`CLICKBACK_ALLOW_PRIVATE_TARGETS`).
    pub fn replacing(
        id: OfferId,
        input: OfferInput,
        previous: Option<&Offer>,
        allow_private: bool,
    ) -> Result<Self, DomainError> {
        let missing: Vec<&str> = [
            ("url", input.url.is_none()),
            (
                "payout or payout_percent",
                input.payout.is_none() && input.payout_percent.is_none(),
            ),
            ("currency", input.currency.is_none()),
        ]
        .into_iter()
        .filter_map(|(field, absent)| absent.then_some(field))
        .collect();
        let (url, currency) = match (input.url, input.currency) {
            (Some(url), Some(currency)) if missing.is_empty() => (url, currency),
            _ => {
                let plural = if missing.len() == 1 { "" } else { "s" };
                return Err(DomainError::invalid(format!(
                    "missing field{plural}: {}",
                    missing.join(", ")
                )));
            }
        };
        super::check_id_and_name(id.as_str(), input.id.as_deref(), &input.name)?;
        let click_id_param = input
            .click_id_param
            .unwrap_or_else(|| "click_id".to_owned());
        let redirect = RedirectTemplate::parse(&url, &click_id_param)?;
        let payout = match (input.payout, input.payout_percent) {
            (Some(_), Some(_)) => {
                return Err(DomainError::invalid(
                    "set either payout or payout_percent, not both",
                ))
            }
            (_, Some(percent)) if percent > Money::parse("100").unwrap_or(Money::ZERO) => {
                return Err(DomainError::invalid(
                    "payout_percent must be between 0 and 100",
                ))
            }
            (_, Some(percent)) => PayoutRule::Percent(percent),
            (Some(fixed), None) => PayoutRule::Fixed(fixed),
            (None, None) => {
                return Err(DomainError::invalid(
                    "missing field: payout or payout_percent",
                ))
            }
        };
        let window = input
            .attribution_window_secs
            .unwrap_or(DEFAULT_ATTRIBUTION_WINDOW_SECS);
        if window == 0 || window > MAX_ATTRIBUTION_WINDOW_SECS {
            return Err(DomainError::invalid(format!(
                "attribution_window_secs must be between 1 and {MAX_ATTRIBUTION_WINDOW_SECS}"
            )));
        }
        let postback_token = match input.postback_token {
            Some(token) => {
                if token.len() < 8
                    || token.len() > 128
                    || !token.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(DomainError::invalid(
                        "postback_token must be 8-128 printable ASCII characters",
                    ));
                }
                token
            }
            None => super::ids::base64url(uuid::Uuid::new_v4().as_bytes()),
        };
        let min_ctc_secs = input.min_ctc_secs.unwrap_or(0);
        if min_ctc_secs >= window {
            return Err(DomainError::invalid(
                "min_ctc_secs must be shorter than attribution_window_secs",
            ));
        }
        let postback_ips = input
            .postback_ips
            .unwrap_or_default()
            .iter()
            .map(|raw| raw.parse::<IpNet>().map_err(|e| e.in_field("postback_ips")))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(secret) = &input.postback_signing_secret {
            if secret.len() < 16
                || secret.len() > 256
                || !secret.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(DomainError::invalid(
                    "postback_signing_secret must be 16-256 printable ASCII characters",
                ));
            }
        }
        let fallback_url = match &input.fallback_url {
            None => None,
            Some(url) => Some(
                RedirectTemplate::parse(url, "click_id")
                    .map_err(|e| DomainError::invalid(format!("fallback_{}", e.detail)))?
                    .as_str()
                    .to_owned(),
            ),
        };
        let caps = input.caps.unwrap_or_default();
        for cap in &caps {
            cap.validate()?;
        }
        for (i, cap) in caps.iter().enumerate() {
            if caps[..i]
                .iter()
                .any(|c| (c.scope, c.period, c.metric) == (cap.scope, cap.period, cap.metric))
            {
                return Err(DomainError::invalid(
                    "two caps with the same scope, period and metric",
                ));
            }
        }
        if caps.len() > 12 {
            return Err(DomainError::invalid("at most 12 caps per offer"));
        }
        let postback_mapping = match input.postback_mapping {
            Some(mapping) => mapping.validate()?,
            None => None,
        };
        let destinations = Destination::from_specs(
            input.destinations.unwrap_or_default(),
            previous.map_or(&[][..], |p| p.destinations.as_slice()),
            allow_private,
        )?;
        Ok(Self {
            id,
            name: input.name,
            redirect,
            click_id_param,
            payout,
            revenue: input.revenue,
            currency,
            attribution_window_secs: window,
            postback_token,
            status: input.status,
            min_ctc_secs,
            postback_ips,
            postback_signing_secret: input.postback_signing_secret,
            fallback_url,
            caps,
            postback_mapping,
            advertiser_id: input.advertiser_id,
            destinations,
        })
    }

    /// The JSON form of this offer.
    pub fn view(&self) -> OfferView {
        let (payout, payout_percent) = match self.payout {
            PayoutRule::Fixed(m) => (Some(m), None),
            PayoutRule::Percent(p) => (None, Some(p)),
        };
        OfferView {
            id: self.id.clone(),
            name: self.name.clone(),
            url: self.redirect.as_str().to_owned(),
            click_id_param: self.click_id_param.clone(),
            payout,
            payout_percent,
            revenue: self.revenue,
            currency: self.currency.clone(),
            attribution_window_secs: self.attribution_window_secs,
            postback_token: self.postback_token.clone(),
            status: self.status,
            min_ctc_secs: self.min_ctc_secs,
            postback_ips: self.postback_ips.iter().map(ToString::to_string).collect(),
            postback_signing_secret: self.postback_signing_secret.clone(),
            fallback_url: self.fallback_url.clone(),
            caps: self.caps.clone(),
            postback_mapping: self.postback_mapping.clone(),
            advertiser_id: self.advertiser_id.clone(),
            destinations: self.destinations.iter().map(Destination::stored).collect(),
        }
    }

    /// The ad platforms' click ids of a tracking link (in the order of
    /// [`AdClickIds::NAMES`]) that this offer keeps with a click: each only
    /// when one of its destinations sends it on — `fbclid` to Meta, `ttclid`
    /// to TikTok, `ga_client_id` to GA4, `gclid` to webhooks (for Google
    /// Ads' offline conversion import). An offer without destinations keeps
    /// none: nothing is stored that nothing uses.
    pub fn kept_ad_ids(&self, ids: [&str; 4]) -> AdClickIds {
        if ids.iter().all(|id| id.is_empty()) {
            return AdClickIds::default();
        }
        let consumers = [
            DestinationKind::Webhook,
            DestinationKind::Meta,
            DestinationKind::TikTok,
            DestinationKind::Ga4,
        ];
        let mut kept = [""; 4];
        for ((slot, id), kind) in kept.iter_mut().zip(ids).zip(consumers) {
            if self.destinations.iter().any(|d| d.kind() == kind) {
                *slot = id;
            }
        }
        AdClickIds::from_fields(kept)
    }

    /// The offer as API answers and the audit log show it: its stored form
    /// with every destination credential left out (write-only).
    pub fn answer(&self) -> serde_json::Value {
        let mut view = serde_json::to_value(self.view()).unwrap_or_default();
        if let Some(fields) = view.as_object_mut() {
            if self.destinations.is_empty() {
                fields.remove("destinations");
            } else {
                fields.insert(
                    "destinations".into(),
                    self.destinations
                        .iter()
                        .map(Destination::redacted)
                        .collect(),
                );
            }
        }
        view
    }

    /// Rebuilds an offer from its stored JSON form, re-validating it.
    pub fn from_view(view: OfferView) -> Result<Self, DomainError> {
        let id = view.id.clone();
        Self::from_input(
            id,
            OfferInput {
                id: None,
                name: view.name,
                url: Some(view.url),
                click_id_param: Some(view.click_id_param),
                payout: view.payout,
                payout_percent: view.payout_percent,
                revenue: view.revenue,
                currency: Some(view.currency),
                attribution_window_secs: Some(view.attribution_window_secs),
                postback_token: Some(view.postback_token),
                status: view.status,
                min_ctc_secs: Some(view.min_ctc_secs),
                postback_ips: Some(view.postback_ips),
                postback_signing_secret: view.postback_signing_secret,
                fallback_url: view.fallback_url,
                caps: Some(view.caps),
                postback_mapping: view.postback_mapping,
                advertiser_id: view.advertiser_id,
                destinations: Some(view.destinations),
            },
        )
    }
}

/// The body of `PUT /api/v1/affiliates/{aff_id}`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AffiliateInput {
    /// Accepted so that a `GET` result can be `PUT` back; must match the path.
    #[serde(default)]
    pub id: Option<String>,
    /// A human name.
    #[serde(default)]
    pub name: String,
    /// Active or paused.
    #[serde(default)]
    pub status: Status,
    /// Where the affiliate wants to hear about its conversions (API.md §6).
    #[serde(default)]
    pub postback_url: Option<String>,
    /// Offer id → postback URL, overriding `postback_url` for that offer.
    #[serde(default)]
    pub offer_postback_urls: BTreeMap<String, String>,
}

/// A validated affiliate, also its stored and answered JSON form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Affiliate {
    /// The affiliate id used in tracking links (`aff_id`).
    pub id: AffiliateId,
    /// A human name.
    pub name: String,
    /// Active or paused.
    pub status: Status,
    /// The affiliate's own postback URL for all its offers, if any.
    pub postback_url: Option<String>,
    /// Offer id → postback URL, overriding `postback_url` for that offer.
    #[serde(default)]
    pub offer_postback_urls: BTreeMap<String, String>,
}

impl Affiliate {
    /// Validates an admin `PUT` body for the affiliate at `id`.
    pub fn from_input(id: AffiliateId, input: AffiliateInput) -> Result<Self, DomainError> {
        super::check_id_and_name(id.as_str(), input.id.as_deref(), &input.name)?;
        if let Some(url) = &input.postback_url {
            PostbackTemplate::parse(url).map_err(|e| e.in_field("postback_url"))?;
        }
        if input.offer_postback_urls.len() > MAX_OFFER_POSTBACK_URLS {
            return Err(DomainError::invalid(format!(
                "offer_postback_urls has more than {MAX_OFFER_POSTBACK_URLS} entries"
            )));
        }
        for (offer, url) in &input.offer_postback_urls {
            OfferId::parse(offer).map_err(|e| e.in_field("offer_postback_urls"))?;
            PostbackTemplate::parse(url)
                .map_err(|e| e.in_field(&format!("offer_postback_urls.{offer}")))?;
        }
        Ok(Self {
            id,
            name: input.name,
            status: input.status,
            postback_url: input.postback_url,
            offer_postback_urls: input.offer_postback_urls,
        })
    }

    /// The postback URL for conversions of `offer`: its own entry in
    /// `offer_postback_urls`, else `postback_url`.
    pub fn postback_target(&self, offer: &OfferId) -> Option<&str> {
        self.offer_postback_urls
            .get(offer.as_str())
            .or(self.postback_url.as_ref())
            .map(String::as_str)
    }

    /// Every postback URL configured, with the field it is in.
    pub fn postback_urls(&self) -> impl Iterator<Item = (String, &str)> {
        self.postback_url
            .iter()
            .map(|url| ("postback_url".to_owned(), url.as_str()))
            .chain(
                self.offer_postback_urls
                    .iter()
                    .map(|(offer, url)| (format!("offer_postback_urls.{offer}"), url.as_str())),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> Result<Offer, String> {
        let input: OfferInput = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Offer::from_input(OfferId::parse("o1").map_err(|e| e.detail)?, input).map_err(|e| e.detail)
    }

    #[test]
    fn the_api_md_example_is_accepted_and_round_trips() {
        let offer = input(r#"{"name":"Shop","url":"https://shop.example/","click_id_param":"click_id","payout":"2.50",
            "payout_percent":null,"revenue":null,"currency":"EUR","attribution_window_secs":2592000,
            "postback_token":"s3cr3t-token","status":"active"}"#)
        .expect("valid");
        assert_eq!(
            offer.payout,
            PayoutRule::Fixed(Money::from_micros(2_500_000))
        );
        let again = Offer::from_view(offer.view()).expect("round trip");
        assert_eq!(again, offer);
    }

    /// A valid body with the fields of `extra` set (JSON objects merged).
    fn with(extra: &str) -> String {
        let mut body: serde_json::Value =
            serde_json::from_str(r#"{"url":"https://a.example/","payout":"1","currency":"EUR"}"#)
                .expect("base body");
        let extra: serde_json::Value = serde_json::from_str(extra).expect("extra fields");
        for (k, v) in extra.as_object().expect("an object") {
            body[k] = v.clone();
        }
        body.to_string()
    }

    #[test]
    fn traffic_rules_round_trip() {
        let offer = input(&with(
            r#"{"url":"https://shop.example/","min_ctc_secs":30,"postback_ips":["203.0.113.7","10.0.0.0/8","2001:db8::/32"],
            "postback_signing_secret":"0123456789abcdef","fallback_url":"https://other.example/",
            "caps":[{"scope":"affiliate","period":"month","metric":"payout","limit":"100"}]}"#,
        ))
        .expect("valid");
        assert_eq!(
            offer.view().postback_ips,
            vec!["203.0.113.7", "10.0.0.0/8", "2001:db8::/32"]
        );
        assert_eq!(Offer::from_view(offer.view()).expect("round trip"), offer);
    }

    #[test]
    fn a_postback_mapping_round_trips_and_an_empty_one_is_none() {
        let offer = input(&with(
            r#"{"postback_mapping":{"params":{"r":"click_id"},"status_values":{"1":"approved"},
                "amount":{"scale":"cents"}}}"#,
        ))
        .expect("valid");
        assert!(offer.postback_mapping.is_some());
        assert_eq!(Offer::from_view(offer.view()).expect("round trip"), offer);
        let empty = input(&with(r#"{"postback_mapping":{}}"#)).expect("valid");
        assert_eq!(empty.postback_mapping, None);
        assert!(input(&with(r#"{"postback_mapping":{"params":{"cid":"txid"}}}"#)).is_err());
    }

    #[test]
    fn defaults_fill_what_the_operator_left_out() {
        let offer = input(&with("{}")).expect("valid");
        assert_eq!(offer.click_id_param, "click_id");
        assert_eq!(
            offer.attribution_window_secs,
            DEFAULT_ATTRIBUTION_WINDOW_SECS
        );
        assert!(offer.postback_token.len() >= 16, "a token is generated");
    }

    #[test]
    fn urls_are_kept_normalised() {
        let offer = input(&with(
            r#"{"url":"https://магазин.рф/l?q=\u2028&c={click_id}","fallback_url":"https://магазин.рф/\u2028"}"#,
        ))
        .expect("valid");
        let view = offer.view();
        assert_eq!(
            view.url,
            "https://xn--80aairftm.xn--p1ai/l?q=%E2%80%A8&c={click_id}"
        );
        assert_eq!(
            view.fallback_url.as_deref(),
            Some("https://xn--80aairftm.xn--p1ai/%E2%80%A8")
        );
        assert_eq!(Offer::from_view(view).expect("round trip"), offer);
    }

    #[test]
    fn names_every_missing_required_field() {
        for (body, detail) in [
            (
                r#"{"name":"x"}"#,
                "missing fields: url, payout or payout_percent, currency",
            ),
            (
                r#"{"url":"https://a.example/"}"#,
                "missing fields: payout or payout_percent, currency",
            ),
            (
                r#"{"url":"https://a.example/","payout":null,"payout_percent":null,"currency":"EUR"}"#,
                "missing field: payout or payout_percent",
            ),
            (
                r#"{"url":"https://a.example/","payout_percent":"5"}"#,
                "missing field: currency",
            ),
        ] {
            assert_eq!(input(body).expect_err(body), detail);
        }
        assert!(input(&with(r#"{"payout":null,"payout_percent":"5"}"#)).is_ok());
    }

    #[test]
    fn refuses_inconsistent_offers() {
        for bad in [
            r#"{"payout":"1","payout_percent":"5"}"#,
            r#"{"payout":null,"payout_percent":"101"}"#,
            r#"{"payout":"-1"}"#,
            r#"{"attribution_window_secs":0}"#,
            r#"{"postback_token":"short"}"#,
            r#"{"postback_token":"with space"}"#,
            r#"{"currency":"EURO"}"#,
            r#"{"status":"deleted"}"#,
            r#"{"surprise":true}"#,
            r#"{"id":"other"}"#,
            r#"{"url":"mailto:x@a.example"}"#,
            r#"{"min_ctc_secs":10,"attribution_window_secs":10}"#,
            r#"{"postback_ips":["10.0.0.0/33"]}"#,
            r#"{"postback_signing_secret":"short"}"#,
            r#"{"fallback_url":"/relative"}"#,
            r#"{"caps":[{"scope":"offer","period":"day","metric":"conversions","limit":"0.5"}]}"#,
        ] {
            assert!(input(&with(bad)).is_err(), "{bad} accepted");
        }
        let huge = r#"{"url":"https://a.example/","payout":1e400,"currency":"EUR"}"#;
        assert!(input(huge).is_err(), "{huge} accepted");
    }
}
