//! Offer URL templates: `RedirectTemplate::parse`, then `build` with
//! arbitrary click values (sub-IDs and source come from the visitor's link).
//!
//! The URL is one of a set of realistic templates, edited with arbitrary text
//! (inserted, overwritten, appended) or replaced by arbitrary text outright.
//!
//! Properties, when the template is accepted:
//! - `build` never panics;
//! - the template is kept normalised: parsing it again changes nothing;
//! - no open redirect: the built URL starts with the normalised template's
//!   `scheme://authority`, its authority ends exactly there, and the `url`
//!   crate (what browsers follow) reads the same scheme, host and port as in
//!   the URL given;
//! - the built URL is ASCII, with no control character and no space;
//! - without macros, no click id gives the normalised template unchanged, and
//!   a click id lands as the last query parameter, decoding back to itself.
#![no_main]

use arbitrary::Arbitrary;
use clickback::domain::query::Params;
use clickback::domain::redirect::{percent_encode, RedirectTemplate, RedirectValues};
use libfuzzer_sys::fuzz_target;

const TEMPLATES: &[&str] = &[
    "https://shop.example/landing",
    "https://shop.example/p?x=1#top",
    "https://shop.example/p?#top",
    "https://shop.example/p?x=1&",
    "https://shop.example/#/spa/route?q=1",
    "http://shop.example",
    "http://shop.example:8080/a/b/c?d=e",
    "https://127.0.0.1/x",
    "https://[::1]:8443/x?y",
    "https://xn--bcher-kva.example/ü?ä=ö",
    "https://shop.example/l/{offer_id}?c={click_id}&a={aff_id}&s1={sub1}&s2={sub2}&s3={sub3}&s4={sub4}&s5={sub5}&src={source}#x",
    "https://shop.example/?t={tag}&c={click_id}",
    "https://shop.example/{{click_id}}/{click_id",
    "https://shop.example/{sub1}{sub2}{sub3}",
    "https://shop.example/%{sub1}%zz?q=%",
    "https://shop.example#{click_id}",
    "https://shop.example?{click_id}",
    "https://shop.example/a?b={source}#c={sub5}",
    "https://shop.example/?click_id=old",
    "http://a.b/?&&",
];

const PARAMS: &[&str] = &["click_id", "aff_click", "cid", "a.b-c_d", ""];

#[derive(Arbitrary, Debug)]
enum Url<'a> {
    Template(u8),
    Insert {
        template: u8,
        at: u16,
        text: &'a str,
    },
    Overwrite {
        template: u8,
        at: u16,
        len: u8,
        text: &'a str,
    },
    Append {
        template: u8,
        text: &'a str,
    },
    Raw(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Param<'a> {
    Known(u8),
    Raw(&'a str),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    url: Url<'a>,
    param: Param<'a>,
    click_id: Option<&'a str>,
    offer_id: &'a str,
    aff_id: &'a str,
    subs: [&'a str; 5],
    source: &'a str,
}

fn template(i: u8) -> &'static str {
    TEMPLATES[usize::from(i) % TEMPLATES.len()]
}

/// The nearest char boundary at or below `at`.
fn boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn make_url(url: &Url<'_>) -> String {
    match *url {
        Url::Template(t) => template(t).to_owned(),
        Url::Insert {
            template: t,
            at,
            text,
        } => {
            let mut s = template(t).to_owned();
            s.insert_str(boundary(&s, usize::from(at)), text);
            s
        }
        Url::Overwrite {
            template: t,
            at,
            len,
            text,
        } => {
            let mut s = template(t).to_owned();
            let start = boundary(&s, usize::from(at));
            let end = boundary(&s, start + usize::from(len));
            s.replace_range(start..end, text);
            s
        }
        Url::Append { template: t, text } => format!("{}{text}", template(t)),
        Url::Raw(text) => text.to_owned(),
    }
}

/// `scheme://authority` as the template parser delimits it.
fn origin(url: &str) -> &str {
    let scheme = if url.starts_with("https://") { 8 } else { 7 };
    let rest = &url[scheme..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &url[..scheme + end]
}

const MACROS: &[&str] = &[
    "{click_id}",
    "{offer_id}",
    "{aff_id}",
    "{sub1}",
    "{sub2}",
    "{sub3}",
    "{sub4}",
    "{sub5}",
    "{source}",
];

fuzz_target!(|input: Input<'_>| {
    let url = make_url(&input.url);
    let param = match input.param {
        Param::Known(i) => PARAMS[usize::from(i) % PARAMS.len()],
        Param::Raw(p) => p,
    };
    let Ok(tpl) = RedirectTemplate::parse(&url, param) else {
        return;
    };
    assert!(url.starts_with("https://") || url.starts_with("http://"));
    let normalised = tpl.as_str();
    assert_eq!(
        RedirectTemplate::parse(normalised, param).as_ref(),
        Ok(&tpl),
        "{url:?} normalised to {normalised:?} is not stable"
    );

    let values = RedirectValues {
        click_id: input.click_id,
        offer_id: input.offer_id,
        aff_id: input.aff_id,
        subs: input.subs,
        source: input.source,
        ad_ids: Default::default(),
    };
    let built = tpl.build(&values);

    // Same origin, byte for byte, and the authority ends where it ended.
    let origin = origin(normalised);
    assert!(built.starts_with(origin), "{built:?} leaves {origin:?}");
    assert!(
        built.len() == origin.len() || matches!(built.as_bytes()[origin.len()], b'/' | b'?' | b'#'),
        "{built:?} extends the authority {origin:?}"
    );
    assert!(
        built.is_ascii() && !built.bytes().any(|b| b.is_ascii_control() || b == b' '),
        "non-ASCII, control character or space in {built:?}"
    );

    // What a browser would follow: same scheme, host and port.
    let expected = url::Url::parse(&url.replace(['{', '}'], "_")).expect("validated by parse");
    let actual = url::Url::parse(&built).unwrap_or_else(|e| panic!("{built:?}: {e}"));
    assert_eq!(actual.scheme(), expected.scheme(), "{built:?}");
    assert_eq!(actual.host_str(), expected.host_str(), "{built:?}");
    assert_eq!(
        actual.port_or_known_default(),
        expected.port_or_known_default(),
        "{built:?}"
    );

    if !MACROS.iter().any(|m| normalised.contains(m)) {
        match input.click_id {
            None => assert_eq!(built, normalised, "no click id, no change"),
            Some(click_id) => {
                let fragment = normalised.find('#').map_or("", |i| &normalised[i..]);
                assert!(built.ends_with(fragment));
                let before = &built[..built.len() - fragment.len()];
                let appended = format!("{param}={}", percent_encode(click_id));
                assert!(before.ends_with(&appended), "{built:?} lacks {appended:?}");
                let query = &before[before.find('?').expect("a query was added") + 1..];
                if let Ok(params) = Params::parse(query.as_bytes()) {
                    assert_eq!(params.pairs().last(), Some((param, click_id)), "{built:?}");
                }
            }
        }
    }
});
