//! The affiliate's postback URL: where clickback reports each conversion to
//! the affiliate's own server (API.md §6).
//!
//! The template is parsed once when the affiliate is saved, so a delivery only
//! concatenates pre-split pieces. Every `{name}` must be one of [`MACROS`]; an
//! unknown one is refused with its name, so a typo shows up when the URL is
//! saved rather than as an empty value at the affiliate's tracker. Macros may
//! stand in the path, query and fragment only, never in the scheme, host or
//! port, and every substituted value is percent-encoded: nothing a conversion
//! carries can change which server is called.
//!
//! Unlike an offer URL, the template is kept verbatim, not normalised: what the
//! affiliate typed is what they see back, and their tracker may expect its
//! query exactly as written. It often carries the affiliate's secret token,
//! so it is shown to its owner but never logged.
//!
//! [`PostbackTemplate::internal_host`] names an address inside the network
//! (loopback, private, link-local, metadata…) when the host is one already as
//! written, so such a URL can be refused when it is saved; names are checked
//! again when they are resolved at delivery time.

use std::net::{IpAddr, Ipv4Addr};

use super::net::is_internal;
use super::redirect::{check_url_head, percent_encode_into};
use super::DomainError;

/// The names a postback URL may use between braces, in the order the docs
/// list them.
pub const MACROS: &[&str] = &[
    "click_id",
    "conversion_id",
    "offer_id",
    "aff_id",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
    "source",
    "txid",
    "goal",
    "status",
    "payout",
    "currency",
    "amount",
];

/// A value a macro stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Macro {
    ClickId,
    ConversionId,
    OfferId,
    AffId,
    Sub(usize),
    Source,
    Txid,
    Goal,
    Status,
    Payout,
    Currency,
    Amount,
}

impl Macro {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "click_id" => Self::ClickId,
            "conversion_id" => Self::ConversionId,
            "offer_id" => Self::OfferId,
            "aff_id" => Self::AffId,
            "sub1" => Self::Sub(0),
            "sub2" => Self::Sub(1),
            "sub3" => Self::Sub(2),
            "sub4" => Self::Sub(3),
            "sub5" => Self::Sub(4),
            "source" => Self::Source,
            "txid" => Self::Txid,
            "goal" => Self::Goal,
            "status" => Self::Status,
            "payout" => Self::Payout,
            "currency" => Self::Currency,
            "amount" => Self::Amount,
            _ => return None,
        })
    }

    fn value<'a>(self, values: &PostbackValues<'a>) -> &'a str {
        match self {
            Self::ClickId => values.click_id,
            Self::ConversionId => values.conversion_id,
            Self::OfferId => values.offer_id,
            Self::AffId => values.aff_id,
            Self::Sub(i) => values.subs.get(i).copied().unwrap_or(""),
            Self::Source => values.source,
            Self::Txid => values.txid,
            Self::Goal => values.goal,
            Self::Status => values.status,
            Self::Payout => values.payout,
            Self::Currency => values.currency,
            Self::Amount => values.amount,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Macro),
}

/// A parsed postback URL, ready to be expanded for each conversion.
///
/// `Debug` shows the URL with its secret: keep the template out of logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostbackTemplate {
    /// The URL as the affiliate configured it, macros included.
    raw: String,
    /// `raw` split at its macros, so expanding is one loop.
    pieces: Vec<Piece>,
    /// The host as the `url` crate reads it, the key of per-host limits.
    host: String,
    /// The internal address the host is, when it is one as written.
    internal: Option<IpAddr>,
}

/// What one conversion contributes to its postback URL; empty strings for
/// what it lacks.
#[derive(Clone, Copy, Debug, Default)]
pub struct PostbackValues<'a> {
    /// The click the conversion was credited to.
    pub click_id: &'a str,
    /// clickback's id of the conversion.
    pub conversion_id: &'a str,
    /// The offer converted on.
    pub offer_id: &'a str,
    /// The affiliate being told.
    pub aff_id: &'a str,
    /// `sub1`…`sub5` of the click.
    pub subs: [&'a str; 5],
    /// The traffic source of the click.
    pub source: &'a str,
    /// The advertiser's transaction id.
    pub txid: &'a str,
    /// The goal converted, for multi-goal offers.
    pub goal: &'a str,
    /// The conversion's status (`approved`, `pending`, `rejected`…).
    pub status: &'a str,
    /// The affiliate's payout, as a decimal.
    pub payout: &'a str,
    /// The payout's currency code.
    pub currency: &'a str,
    /// The sale amount the advertiser reported, as a decimal.
    pub amount: &'a str,
}

impl PostbackTemplate {
    /// Validates a postback URL and splits it at its macros.
    ///
    /// The URL must be absolute `http(s)` with a non-empty host, at most 2048
    /// bytes, carry no credentials (`user:pass@`), no ASCII whitespace,
    /// control characters or backslashes, no macro before the path, and only
    /// known, closed macros.
    pub fn parse(url: &str) -> Result<Self, DomainError> {
        let invalid = |why: &str| DomainError::invalid(format!("url {why}"));
        check_url_head(url)?;

        let pieces = split_macros(url)?;

        // Macros only stand after the authority, so a placeholder of plain
        // letters leaves the host exactly as the `url` crate would see it.
        let mut probe = String::with_capacity(url.len());
        for piece in &pieces {
            match piece {
                Piece::Text(text) => probe.push_str(text),
                Piece::Value(_) => probe.push('m'),
            }
        }
        let parsed = url::Url::parse(&probe).map_err(|e| match e {
            url::ParseError::EmptyHost => invalid("must name a host"),
            e => invalid(&format!("is not a valid URL ({e})")),
        })?;
        let (host, internal) = match parsed.host() {
            None => return Err(invalid("must name a host")),
            Some(url::Host::Domain("")) => return Err(invalid("must name a host")),
            Some(url::Host::Domain(name)) => {
                let name = name.to_ascii_lowercase();
                let internal = is_localhost(&name).then_some(IpAddr::V4(Ipv4Addr::LOCALHOST));
                (name, internal)
            }
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), internal_ip(IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), internal_ip(IpAddr::V6(ip))),
        };

        Ok(Self {
            raw: url.to_owned(),
            pieces,
            host,
            internal,
        })
    }

    /// The URL as configured, kept verbatim with its secrets: what the
    /// affiliate is shown and what is stored.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The URL to call for one conversion, each value percent-encoded so it
    /// cannot change the URL's structure.
    pub fn expand(&self, values: &PostbackValues<'_>) -> String {
        let mut out = String::with_capacity(self.raw.len() + 128);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Value(m) => percent_encode_into(m.value(values), &mut out),
            }
        }
        out
    }

    /// The host to call, lowercased, the key of the per-host concurrency
    /// limit: a name in punycode, an IPv4 address in dotted decimal (however it
    /// was written), an IPv6 address without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The internal address the host already is as written, so the URL can be
    /// refused when it is saved: an IP literal in an internal range (see
    /// [`is_internal`]), or `localhost` / `*.localhost` (answered as
    /// `127.0.0.1`). `None` for any other name; those are checked when
    /// resolved at delivery time.
    pub fn internal_host(&self) -> Option<IpAddr> {
        self.internal
    }
}

fn internal_ip(ip: IpAddr) -> Option<IpAddr> {
    is_internal(ip).then_some(ip)
}

/// `localhost` and its subdomains always mean this machine (RFC 6761).
fn is_localhost(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name == "localhost" || name.ends_with(".localhost")
}

/// Splits `url` at its macros; every `{` must open a known macro.
fn split_macros(url: &str) -> Result<Vec<Piece>, DomainError> {
    let mut pieces = Vec::new();
    let mut rest = url;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| {
            DomainError::invalid(format!(
                "url has a `{{` that no `}}` closes; known macros: {}",
                known_macros()
            ))
        })?;
        let name = &after[..close];
        let m = Macro::from_name(name).ok_or_else(|| {
            DomainError::invalid(format!(
                "unknown macro {{{}}}; known: {}",
                shorten(name),
                known_macros()
            ))
        })?;
        pieces.push(Piece::Value(m));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

/// A macro name short enough to quote in an error.
fn shorten(name: &str) -> String {
    const MAX_CHARS: usize = 40;
    if name.chars().count() <= MAX_CHARS {
        name.to_owned()
    } else {
        let mut short: String = name.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

/// `{click_id} {conversion_id} …`, for error messages.
fn known_macros() -> String {
    MACROS
        .iter()
        .map(|m| format!("{{{m}}}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> PostbackTemplate {
        PostbackTemplate::parse(url).expect(url)
    }

    fn refusal(url: &str) -> String {
        PostbackTemplate::parse(url).expect_err(url).detail
    }

    #[test]
    fn every_macro_is_substituted_and_percent_encoded() {
        let template = parse(
            "https://tracker.example/postback?cid={click_id}&conv={conversion_id}&o={offer_id}\
             &a={aff_id}&s1={sub1}&s2={sub2}&s3={sub3}&s4={sub4}&s5={sub5}&src={source}\
             &tx={txid}&g={goal}&st={status}&p={payout}&cur={currency}&amt={amount}",
        );
        let values = PostbackValues {
            click_id: "CID",
            conversion_id: "conv-1",
            offer_id: "summer",
            aff_id: "aff_7",
            subs: ["a b", "x&y=z", "fb/ads", "é", "#frag"],
            source: "日本",
            txid: "T?1",
            goal: "sale+up",
            status: "approved",
            payout: "1.50",
            currency: "EUR",
            amount: "100%",
        };

        let url = template.expand(&values);

        assert_eq!(
            url,
            "https://tracker.example/postback?cid=CID&conv=conv-1&o=summer&a=aff_7\
             &s1=a%20b&s2=x%26y%3Dz&s3=fb%2Fads&s4=%C3%A9&s5=%23frag&src=%E6%97%A5%E6%9C%AC\
             &tx=T%3F1&g=sale%2Bup&st=approved&p=1.50&cur=EUR&amt=100%25"
        );
    }

    #[test]
    fn every_listed_macro_is_accepted_and_missing_values_expand_to_nothing() {
        let url = format!(
            "https://t.example/p?{}",
            MACROS
                .iter()
                .map(|m| format!("{m}={{{m}}}"))
                .collect::<Vec<_>>()
                .join("&")
        );

        let expanded = parse(&url).expand(&PostbackValues::default());

        let expected = MACROS
            .iter()
            .map(|m| format!("{m}="))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(expanded, format!("https://t.example/p?{expected}"));
    }

    #[test]
    fn macros_work_in_the_path_and_fragment_too() {
        let template = parse("http://t.example/{aff_id}/{status}#{click_id}");

        let url = template.expand(&PostbackValues {
            aff_id: "a/b",
            status: "pending",
            click_id: "C",
            ..Default::default()
        });

        assert_eq!(url, "http://t.example/a%2Fb/pending#C");
    }

    #[test]
    fn the_url_is_kept_verbatim() {
        for url in [
            "HTTPS://Tracker.Example:443/a/./b/../Pb?Token=S3cr%65t&x=é&c={click_id}",
            "http://tracker.example",
            "https://tracker.example/p?q=why?",
        ] {
            assert_eq!(parse(url).as_str(), url);
        }
    }

    #[test]
    fn a_template_without_macros_expands_to_itself() {
        let url = "https://tracker.example/pb?token=abc";

        assert_eq!(parse(url).expand(&PostbackValues::default()), url);
    }

    #[test]
    fn an_unknown_macro_is_refused_by_name() {
        let detail = refusal("https://t.example/p?c={click_id}&t={clickid}");

        assert!(
            detail.starts_with("unknown macro {clickid}; known: {click_id} {conversion_id}"),
            "{detail}"
        );
        assert!(detail.ends_with("{amount}"), "{detail}");
    }

    #[test]
    fn an_unclosed_brace_is_refused() {
        let detail = refusal("https://t.example/p?c={click_id");

        assert!(detail.contains("no `}` closes"), "{detail}");
    }

    #[test]
    fn a_very_long_unknown_macro_name_is_shortened_in_the_error() {
        let name = "x".repeat(500);

        let detail = refusal(&format!("https://t.example/?a={{{name}}}"));

        assert!(detail.len() < 400, "{detail}");
        assert!(detail.starts_with(&format!("unknown macro {{{}…}}", "x".repeat(40))));
    }

    #[test]
    fn macros_in_the_scheme_host_or_port_are_refused() {
        for url in [
            "https://{aff_id}.tracker.example/p",
            "https://tracker.example:{sub1}/p",
            "https://{sub1}/",
            "{source}://tracker.example/",
            "https://tracker.{unknown}.example/",
        ] {
            assert!(PostbackTemplate::parse(url).is_err(), "{url} accepted");
        }
        assert_eq!(
            refusal("https://{aff_id}.tracker.example/p"),
            "url may not contain macros in its host or port"
        );
    }

    #[test]
    fn malformed_urls_are_refused() {
        for url in [
            "",
            "ftp://tracker.example/",
            "//tracker.example/",
            "tracker.example/p",
            "javascript:alert(1)",
            "https://",
            "https:///p",
            "http://:80/",
            "https://user:pw@tracker.example/",
            "https://user@tracker.example/",
            "https://tracker.example/ p",
            "https://tracker.example/\tp",
            "https://tracker.example/\n",
            "https://tracker.example/\u{7f}",
            "https:\\\\tracker.example",
            "https://tracker.example\\@evil.example/",
            "https://exa%mple/",
            "https://[::1/",
            "https://tracker.example:99999/",
        ] {
            assert!(PostbackTemplate::parse(url).is_err(), "{url:?} accepted");
        }
        let long = format!("https://t.example/{}", "a".repeat(2048));
        assert_eq!(refusal(&long), "url is longer than 2048 bytes");
        let just_fits = format!("https://t.example/{}", "a".repeat(2048 - 18));
        assert_eq!(just_fits.len(), 2048);
        assert!(PostbackTemplate::parse(&just_fits).is_ok());
    }

    #[test]
    fn the_host_is_lowercased_and_bare() {
        for (url, host) in [
            ("https://Tracker.EXAMPLE/p", "tracker.example"),
            ("https://tracker.example:8443/p", "tracker.example"),
            (
                "http://[2606:4700:4700::1111]:8080/p",
                "2606:4700:4700::1111",
            ),
            ("http://8.8.8.8/p", "8.8.8.8"),
            ("https://магазин.рф/p", "xn--80aairftm.xn--p1ai"),
        ] {
            assert_eq!(parse(url).host(), host, "{url}");
        }
    }

    #[test]
    fn internal_hosts_are_recognised_as_written() {
        for (url, ip) in [
            ("http://127.0.0.1/p", "127.0.0.1"),
            ("http://127.0.0.1:8080/p?x={click_id}", "127.0.0.1"),
            ("http://[::1]/p", "::1"),
            ("http://[::ffff:127.0.0.1]/p", "::ffff:127.0.0.1"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
            ),
            ("http://10.0.0.1/p", "10.0.0.1"),
            ("http://0x7f.1/p", "127.0.0.1"),
            ("http://2130706433/p", "127.0.0.1"),
            ("http://0177.0.0.1/p", "127.0.0.1"),
            ("http://127.1/p", "127.0.0.1"),
            ("http://0/p", "0.0.0.0"),
            ("http://[fd00:ec2::254]/p", "fd00:ec2::254"),
            ("http://localhost/p", "127.0.0.1"),
            ("http://LocalHost:8080/p", "127.0.0.1"),
            ("http://localhost./p", "127.0.0.1"),
            ("http://api.localhost/p", "127.0.0.1"),
        ] {
            let expected: IpAddr = ip.parse().expect(ip);
            assert_eq!(parse(url).internal_host(), Some(expected), "{url}");
        }
    }

    #[test]
    fn public_hosts_and_names_are_not_internal() {
        for url in [
            "https://tracker.example/p",
            "http://8.8.8.8/p",
            "http://[2606:4700:4700::1111]/p",
            "http://notlocalhost/p",
            "http://localhost.example/p",
        ] {
            assert_eq!(parse(url).internal_host(), None, "{url}");
        }
    }
}
