//! What every request handler shares, passed as `web::Data<AppState>`.

use std::net::IpAddr;
use std::sync::Arc;

use crate::access::Access;
use crate::click::Clicks;
use crate::clock::Clock;
use crate::delivery::DeliveryWake;
use crate::domain::net::IpNet;
use crate::metrics::Metrics;
use crate::offers::ConfigCache;
use crate::postback::log::PostbackLog;
use crate::postback::Postbacks;
use crate::store::Store;

/// Shared, read-mostly state of one clickback process. Handlers hand each
/// service only what it uses: the click path gets [`Clicks`], the postback
/// path [`Postbacks`].
pub struct AppState {
    /// The redirect service.
    pub clicks: Clicks,
    /// The crediting service.
    pub postbacks: Postbacks,
    /// Admin reads and writes (offers, affiliates, stats, the postback log).
    pub store: Arc<dyn Store>,
    /// Offers and affiliates, so requests never wait on the store for config.
    pub cache: Arc<ConfigCache>,
    /// Counters and histograms `/metrics` exports.
    pub metrics: Metrics,
    /// The admin bearer token; `None` keeps the admin API closed.
    pub admin_token: Option<String>,
    /// Proxies allowed to name the visitor's IP in `X-Forwarded-For`.
    pub trusted_proxies: TrustedProxies,
    /// Files postback log entries in the background, many per round trip.
    pub postback_log: Arc<PostbackLog>,
    /// Today, for reports and log entries.
    pub clock: Arc<dyn Clock>,
    /// Wakes the delivery worker after an operator's retry.
    pub deliveries: DeliveryWake,
    /// Whether affiliate postback URLs may name internal addresses
    /// (`CLICKBACK_ALLOW_PRIVATE_TARGETS`).
    pub allow_private_targets: bool,
    /// Failed-authentication limits and keys' last use.
    pub access: Arc<Access>,
    /// The base of tracking links shown to affiliates
    /// (`CLICKBACK_PUBLIC_URL`); without it, the request's own host.
    pub public_url: Option<String>,
}

impl AppState {
    /// The sender's IP (see [`TrustedProxies::client_ip`]).
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        self.trusted_proxies.client_ip(peer, forwarded_for)
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    /// The visitor's IP: the socket peer, unless the peer is a trusted proxy,
    /// in which case the right-most `X-Forwarded-For` entry that is not itself
    /// a trusted proxy. Left-most entries are ignored: anyone can write them.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        let trusted = |ip: IpAddr| self.0.iter().any(|net| net.contains(ip));
        if !trusted(peer) {
            return Some(peer);
        }
        let Some(chain) = forwarded_for else {
            return Some(peer);
        };
        let mut last = peer;
        for hop in chain.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted(ip) => last = ip,
                Ok(ip) => return Some(ip),
                Err(_) => return Some(last),
            }
        }
        Some(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(proxies: &[&str]) -> TrustedProxies {
        TrustedProxies(proxies.iter().map(|p| p.parse().expect("net")).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let s = state(&[]);
        assert_eq!(
            s.client_ip(Some(ip("198.51.100.1")), Some("1.2.3.4")),
            Some(ip("198.51.100.1"))
        );
    }

    #[test]
    fn trusted_proxies_name_the_rightmost_untrusted_hop() {
        let s = state(&["10.0.0.0/8"]);
        assert_eq!(
            s.client_ip(Some(ip("10.0.0.1")), Some("6.6.6.6, 1.2.3.4, 10.0.0.7")),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            s.client_ip(Some(ip("10.0.0.1")), None),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            s.client_ip(Some(ip("10.0.0.1")), Some("garbage")),
            Some(ip("10.0.0.1"))
        );
    }
}
