//! Where a click sends the visitor: the offer URL with the click id in it.
//!
//! The template is parsed once when the offer is saved, so the hot path only
//! concatenates. Two shapes, as API.md §1 says:
//! - the URL contains macros (`{click_id}`, `{offer_id}`, `{aff_id}`,
//!   `{sub1}`…`{sub5}`, `{source}`, and the ad platforms' click ids `{gclid}`,
//!   `{fbclid}`, `{ttclid}`, `{ga_client_id}`): each is replaced by its
//!   percent-encoded value;
//! - otherwise `<click_id_param>=<click_id>` is appended to the query string,
//!   keeping the existing query and `#fragment`.
//!
//! No open redirect: macros are refused in the scheme and host, and every
//! substituted value is percent-encoded, so nothing in a request can change
//! where the visitor lands, only what the landing page's query carries.
//!
//! A `Location` must be a URI, so the template is kept in the WHATWG
//! serialisation of the `url` crate (what browsers send): an internationalised
//! host in punycode (`магазин.рф` → `xn--80aairftm.xn--p1ai`), non-ASCII
//! characters in path, query and fragment percent-encoded as UTF-8, default
//! port and dot segments dropped. The macros are parsed with a placeholder
//! standing in for each, so they stay where they were and keep working.

use super::DomainError;

/// A value a macro can stand for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Macro {
    ClickId,
    OfferId,
    AffId,
    Sub(usize),
    Source,
    /// An ad platform's click id, by its index in `AdClickIds::NAMES`.
    AdId(usize),
}

impl Macro {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "click_id" => Self::ClickId,
            "offer_id" => Self::OfferId,
            "aff_id" => Self::AffId,
            "sub1" => Self::Sub(0),
            "sub2" => Self::Sub(1),
            "sub3" => Self::Sub(2),
            "sub4" => Self::Sub(3),
            "sub5" => Self::Sub(4),
            "source" => Self::Source,
            "gclid" => Self::AdId(0),
            "fbclid" => Self::AdId(1),
            "ttclid" => Self::AdId(2),
            "ga_client_id" => Self::AdId(3),
            _ => return None,
        })
    }

    /// The name between the braces.
    fn name(self) -> &'static str {
        match self {
            Self::ClickId => "click_id",
            Self::OfferId => "offer_id",
            Self::AffId => "aff_id",
            Self::Sub(0) => "sub1",
            Self::Sub(1) => "sub2",
            Self::Sub(2) => "sub3",
            Self::Sub(3) => "sub4",
            Self::Sub(_) => "sub5",
            Self::Source => "source",
            Self::AdId(0) => "gclid",
            Self::AdId(1) => "fbclid",
            Self::AdId(2) => "ttclid",
            Self::AdId(_) => "ga_client_id",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Macro),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    Macros(Vec<Piece>),
    Append {
        /// Everything before the fragment, e.g. `https://shop/landing?x=1`.
        base: String,
        /// `?`, `&` or nothing, whichever joins `base` to the new parameter.
        joiner: &'static str,
        /// `click_id_param=`, already encoded.
        param: String,
        /// `#fragment` or empty.
        fragment: String,
    },
}

/// A parsed offer URL, ready to build redirect targets quickly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectTemplate {
    shape: Shape,
    /// The normalised URL, macros included: what is stored and answered.
    raw: String,
}

/// What one click contributes to its redirect URL.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedirectValues<'a> {
    /// `None` when no click was recorded (consent declined, store down).
    pub click_id: Option<&'a str>,
    /// The offer being clicked.
    pub offer_id: &'a str,
    /// The affiliate sending the visitor.
    pub aff_id: &'a str,
    /// `sub1`…`sub5`, empty when absent.
    pub subs: [&'a str; 5],
    /// The traffic source, empty when absent.
    pub source: &'a str,
    /// `gclid`, `fbclid`, `ttclid`, `ga_client_id` from the tracking link,
    /// empty when absent.
    pub ad_ids: [&'a str; 4],
}

impl RedirectTemplate {
    /// Validates an offer URL and its click-id parameter name, and keeps the
    /// URL in its normalised form (see the module doc).
    ///
    /// The URL must be absolute `http(s)` with a host, carry no credentials,
    /// no ASCII whitespace, control characters or backslashes, no macro before
    /// the path, and normalise to a valid URL (a host that is no valid
    /// internationalised domain name does not) of at most 2048 bytes.
    pub fn parse(url: &str, click_id_param: &str) -> Result<Self, DomainError> {
        let invalid = |why: &str| DomainError::invalid(format!("url {why}"));
        check_url_head(url)?;
        if click_id_param.is_empty()
            || click_id_param.len() > 64
            || !click_id_param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(DomainError::invalid(
                "click_id_param must be 1-64 characters of A-Z a-z 0-9 _ - .",
            ));
        }
        let url = normalise(url).map_err(|e| match e {
            url::ParseError::EmptyHost => invalid("must name a host"),
            e => invalid(&format!("is not a valid URL ({e})")),
        })?;
        if url.len() > MAX_URL_LEN {
            return Err(invalid("is longer than 2048 bytes once normalised"));
        }

        let pieces = split_macros(&url);
        let shape = if pieces.iter().any(|p| matches!(p, Piece::Value(_))) {
            Shape::Macros(pieces)
        } else {
            let (base, fragment) = match url.find('#') {
                Some(i) => (&url[..i], &url[i..]),
                None => (url.as_str(), ""),
            };
            // Only the first `?` starts the query; a later one is part of it
            // (`?q=why?`), so the new parameter still needs its `&`.
            let joiner = match base.split_once('?') {
                None => "?",
                Some((_, query)) if query.is_empty() || query.ends_with('&') => "",
                Some(_) => "&",
            };
            Shape::Append {
                base: base.to_owned(),
                joiner,
                param: format!("{click_id_param}="),
                fragment: fragment.to_owned(),
            }
        };
        Ok(Self { shape, raw: url })
    }

    /// The normalised URL, macros included: what clicks are sent to.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The redirect target for one click.
    pub fn build(&self, values: &RedirectValues<'_>) -> String {
        match &self.shape {
            Shape::Macros(pieces) => {
                let mut out = String::with_capacity(self.raw.len() + 64);
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.push_str(text),
                        Piece::Value(m) => {
                            let value = match m {
                                Macro::ClickId => values.click_id.unwrap_or(""),
                                Macro::OfferId => values.offer_id,
                                Macro::AffId => values.aff_id,
                                Macro::Sub(i) => values.subs[*i],
                                Macro::Source => values.source,
                                Macro::AdId(i) => values.ad_ids[*i],
                            };
                            percent_encode_into(value, &mut out);
                        }
                    }
                }
                out
            }
            Shape::Append {
                base,
                joiner,
                param,
                fragment,
            } => match values.click_id {
                None => self.raw.clone(),
                Some(click_id) => {
                    let mut out = String::with_capacity(self.raw.len() + param.len() + 24);
                    out.push_str(base);
                    out.push_str(joiner);
                    out.push_str(param);
                    percent_encode_into(click_id, &mut out);
                    out.push_str(fragment);
                    out
                }
            },
        }
    }
}

/// The longest URL (an offer's, before and after normalising; a postback URL).
pub(crate) const MAX_URL_LEN: usize = 2048;

/// The checks every URL clickback stores shares, offer or postback URL: at
/// most [`MAX_URL_LEN`] bytes; no ASCII whitespace, control characters or
/// backslashes; an absolute `http://` or `https://` URL (scheme in any
/// case) with a host, no macro in the host or port, and no credentials.
pub(crate) fn check_url_head(url: &str) -> Result<(), DomainError> {
    let invalid = |why: &str| DomainError::invalid(format!("url {why}"));
    if url.len() > MAX_URL_LEN {
        return Err(invalid("is longer than 2048 bytes"));
    }
    if url
        .bytes()
        .any(|b| b.is_ascii_control() || b.is_ascii_whitespace() || b == b'\\')
    {
        return Err(invalid(
            "contains whitespace, control characters or backslashes",
        ));
    }
    let rest = strip_prefix_ignore_case(url, "https://")
        .or_else(|| strip_prefix_ignore_case(url, "http://"))
        .ok_or_else(|| invalid("must be an absolute http:// or https:// URL"))?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.is_empty() {
        return Err(invalid("must name a host"));
    }
    if authority.contains(['{', '}']) {
        return Err(invalid("may not contain macros in its host or port"));
    }
    if authority.contains('@') {
        return Err(invalid("may not contain credentials"));
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The WHATWG serialisation of `url` with its macros where they were.
///
/// Each macro is replaced by a placeholder of letters, digits and `_`, which
/// the `url` crate never encodes, parsed, serialised, and put back. The
/// placeholder starts with a marker the URL does not contain, so every
/// occurrence of the marker in the serialisation is one of ours. A macro in a
/// path segment that a `..` removes is gone from the result, as that segment is.
fn normalise(url: &str) -> Result<String, url::ParseError> {
    let mut marker = String::from("cbmacro");
    while url.contains(&marker) {
        // Bounded: a marker longer than the URL cannot be in it.
        marker.push('x');
    }
    let mut macros = Vec::new();
    let mut with_placeholders = String::with_capacity(url.len() + 16);
    for piece in split_macros(url) {
        match piece {
            Piece::Text(text) => with_placeholders.push_str(&text),
            Piece::Value(m) => {
                with_placeholders.push_str(&marker);
                with_placeholders.push_str(&macros.len().to_string());
                with_placeholders.push('_');
                macros.push(m);
            }
        }
    }
    let parsed = url::Url::parse(&with_placeholders)?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(url::ParseError::EmptyHost);
    }
    let serialised = String::from(parsed);
    let mut out = String::with_capacity(serialised.len());
    let mut rest = serialised.as_str();
    while let Some(at) = rest.find(&marker) {
        out.push_str(&rest[..at]);
        let after = &rest[at + marker.len()..];
        let digits = after.find('_').unwrap_or(after.len());
        match after[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|i| macros.get(i))
        {
            Some(m) => {
                out.push('{');
                out.push_str(m.name());
                out.push('}');
                rest = after.get(digits + 1..).unwrap_or("");
            }
            // Not reachable with a marker the URL lacks; keep the text as is.
            None => {
                out.push_str(&marker);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn split_macros(url: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = url;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| Macro::from_name(&after[..close]).map(|m| (close, m)))
        {
            Some((close, m)) => {
                text.push_str(&rest[..open]);
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Value(m));
                rest = &after[close + 1..];
            }
            None => {
                // Not one of ours (an advertiser's own template): keep it verbatim.
                text.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a value
/// can sit anywhere in a URL without changing its structure.
pub fn percent_encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// [`percent_encode_into`] returning a new string.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    percent_encode_into(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(url: &str, click_id: Option<&str>) -> String {
        let values = RedirectValues {
            click_id,
            offer_id: "summer",
            aff_id: "aff-1",
            subs: ["a b", "x&y=z", "", "é", "#frag"],
            source: "fb/ads?",
            ad_ids: ["Cj0K", "IwAR+1", "", "GA1.1.12.34"],
        };
        RedirectTemplate::parse(url, "click_id")
            .expect(url)
            .build(&values)
    }

    #[test]
    fn ad_platform_click_ids_are_macros_too() {
        assert_eq!(
            build(
                "https://shop.example/?g={gclid}&f={fbclid}&t={ttclid}&ga={ga_client_id}",
                Some("CID")
            ),
            "https://shop.example/?g=Cj0K&f=IwAR%2B1&t=&ga=GA1.1.12.34"
        );
    }

    #[test]
    fn appends_the_click_id_to_a_url_without_query() {
        assert_eq!(
            build("https://shop.example/landing", Some("CID")),
            "https://shop.example/landing?click_id=CID"
        );
    }

    #[test]
    fn keeps_the_existing_query_and_fragment() {
        assert_eq!(
            build("https://shop.example/p?x=1#top", Some("CID")),
            "https://shop.example/p?x=1&click_id=CID#top"
        );
        assert_eq!(
            build("https://shop.example/p?#top", Some("CID")),
            "https://shop.example/p?click_id=CID#top"
        );
        assert_eq!(
            build("https://shop.example/p?x=1&", Some("CID")),
            "https://shop.example/p?x=1&click_id=CID"
        );
        assert_eq!(
            build("https://shop.example/#/spa/route?q=1", Some("CID")),
            "https://shop.example/?click_id=CID#/spa/route?q=1"
        );
    }

    #[test]
    fn a_question_mark_inside_the_query_does_not_swallow_the_click_id() {
        // Found by the `redirect` fuzz target: the trailing `?` is part of the
        // query, so without a `&` the advertiser read q="why?click_id=CID".
        assert_eq!(
            build("https://shop.example/search?q=why?", Some("CID")),
            "https://shop.example/search?q=why?&click_id=CID"
        );
        assert_eq!(
            build("https://shop.example/landing??=?", Some("CID")),
            "https://shop.example/landing??=?&click_id=CID"
        );
        assert_eq!(
            build("https://shop.example/p??#top", Some("CID")),
            "https://shop.example/p??&click_id=CID#top"
        );
    }

    #[test]
    fn uses_the_offers_parameter_name() {
        let t = RedirectTemplate::parse("http://shop.example/", "aff_click").expect("valid");
        let v = RedirectValues {
            click_id: Some("CID"),
            ..Default::default()
        };
        assert_eq!(t.build(&v), "http://shop.example/?aff_click=CID");
    }

    #[test]
    fn substitutes_macros_url_encoded() {
        assert_eq!(
            build("https://shop.example/l/{offer_id}?c={click_id}&a={aff_id}&s1={sub1}&s2={sub2}&s3={sub3}&s4={sub4}&s5={sub5}&src={source}#x", Some("CID")),
            "https://shop.example/l/summer?c=CID&a=aff-1&s1=a%20b&s2=x%26y%3Dz&s3=&s4=%C3%A9&s5=%23frag&src=fb%2Fads%3F#x"
        );
    }

    #[test]
    fn unknown_braces_are_left_alone() {
        assert_eq!(
            build("https://shop.example/?t={tag}&c={click_id}", Some("CID")),
            "https://shop.example/?t={tag}&c=CID"
        );
    }

    #[test]
    fn without_a_click_id_the_visitor_still_reaches_the_offer() {
        assert_eq!(
            build("https://shop.example/p?x=1#top", None),
            "https://shop.example/p?x=1#top"
        );
        assert_eq!(
            build("https://shop.example/?c={click_id}&a={aff_id}", None),
            "https://shop.example/?c=&a=aff-1"
        );
    }

    #[test]
    fn refuses_urls_that_could_redirect_elsewhere() {
        for bad in [
            "ftp://shop.example/",
            "//shop.example/",
            "javascript:alert(1)",
            "https://{sub1}/landing",
            "https://shop.{sub1}.example/",
            "https://user:pw@shop.example/",
            "https://shop.example/ path",
            "https://shop.example/\n",
            "https:///path",
            "https://",
            "https:\\\\evil.example",
            "shop.example/landing",
        ] {
            assert!(
                RedirectTemplate::parse(bad, "click_id").is_err(),
                "{bad:?} accepted"
            );
        }
    }

    fn normalised(url: &str) -> String {
        RedirectTemplate::parse(url, "click_id")
            .expect(url)
            .as_str()
            .to_owned()
    }

    #[test]
    fn an_internationalised_host_is_kept_in_punycode() {
        assert_eq!(
            normalised("https://магазин.рф/landing?q=1"),
            "https://xn--80aairftm.xn--p1ai/landing?q=1"
        );
        assert_eq!(
            build("https://магазин.рф/landing?q=1", Some("CID")),
            "https://xn--80aairftm.xn--p1ai/landing?q=1&click_id=CID"
        );
    }

    #[test]
    fn non_ascii_in_path_query_and_fragment_is_percent_encoded() {
        assert_eq!(
            normalised("https://shop.example/l\u{2028}é?q=a\u{2028}b\u{85}#\u{2028}"),
            "https://shop.example/l%E2%80%A8%C3%A9?q=a%E2%80%A8b%C2%85#%E2%80%A8"
        );
    }

    #[test]
    fn macros_keep_their_place_and_work_once_normalised() {
        let url = "https://Магазин.рф:443/{offer_id}/\u{2028}{sub1}{sub2}?q=\u{2028}&c={click_id}#{source}";
        assert_eq!(
            normalised(url),
            "https://xn--80aairftm.xn--p1ai/{offer_id}/%E2%80%A8{sub1}{sub2}?q=%E2%80%A8&c={click_id}#{source}"
        );
        assert_eq!(
            build(url, Some("CID")),
            "https://xn--80aairftm.xn--p1ai/summer/%E2%80%A8a%20bx%26y%3Dz?q=%E2%80%A8&c=CID#fb%2Fads%3F"
        );
    }

    #[test]
    fn normalising_is_what_the_url_crate_serialises() {
        for (given, stored) in [
            ("https://shop.example", "https://shop.example/"),
            (
                "http://SHOP.example:80/a/./b/../c",
                "http://shop.example/a/c",
            ),
            (
                "https://shop.example/{tag}?t={tag}",
                "https://shop.example/%7Btag%7D?t={tag}",
            ),
            (
                "https://shop.example/p?a='\"<>",
                "https://shop.example/p?a=%27%22%3C%3E",
            ),
        ] {
            assert_eq!(normalised(given), stored, "{given}");
        }
    }

    #[test]
    fn a_url_that_already_holds_the_placeholder_marker_keeps_its_text() {
        assert_eq!(
            build(
                "https://shop.example/cbmacro0_/cbmacrox1_?c={click_id}",
                Some("CID")
            ),
            "https://shop.example/cbmacro0_/cbmacrox1_?c=CID"
        );
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for url in [
            "https://магазин.рф/l\u{2028}/{sub1}?q=a\u{2028}b&c={click_id}#x",
            "https://shop.example/%{sub1}%zz?q=%",
            "https://shop.example/{{click_id}}/{click_id",
            "https://shop.example/p??#top",
            "http://[::1]:8443/x?y",
        ] {
            let once = RedirectTemplate::parse(url, "aff").expect(url);
            let twice = RedirectTemplate::parse(once.as_str(), "aff").expect(url);
            assert_eq!(twice, once, "{url}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_normalised() {
        for bad in [
            "https://xn--a.example/",
            "https://shop\u{2028}.example/",
            "https://exa%mple/",
            "http://:80/",
        ] {
            let refused = RedirectTemplate::parse(bad, "click_id").expect_err(bad);
            assert!(
                refused.detail.starts_with("url "),
                "{bad}: {}",
                refused.detail
            );
        }
        let long = format!("https://shop.example/{}", "é".repeat(700));
        assert!(long.len() <= 2048);
        assert_eq!(
            RedirectTemplate::parse(&long, "click_id")
                .expect_err("too long once encoded")
                .detail,
            "url is longer than 2048 bytes once normalised"
        );
    }

    #[test]
    fn refuses_bad_parameter_names() {
        assert!(RedirectTemplate::parse("https://shop.example/", "").is_err());
        assert!(RedirectTemplate::parse("https://shop.example/", "a&b").is_err());
        assert!(RedirectTemplate::parse("https://shop.example/", "a=b").is_err());
    }
}
