//! Micro-benchmarks of the functions on the click and postback hot paths,
//! called through the library's public API only.
//!
//! Run: `cargo bench --bench hot_path` (add `-- --quick` for a fast pass,
//! or a filter such as `-- redirect`). See docs/PERFORMANCE.md.

use std::hint::black_box;

use clickback::domain::query::Params;
use clickback::domain::redirect::{RedirectTemplate, RedirectValues};
use clickback::domain::visitor::VisitorHasher;
use clickback::domain::{Click, ClickId, Day, Money};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A realistic tracking-link query: campaign id, ad id, placement, source.
const CLICK_QUERY: &[u8] =
    b"aff_id=aff_42&sub1=120210456789&sub2=ad_7f3k2q&sub3=feed%20mobile&source=fb";

/// A realistic postback query.
const POSTBACK_QUERY: &[u8] =
    b"click_id=Qm9vYmFyLWJhei1xdXV4LTE&token=bench-token-123&txid=ord-20251123-000042&amount=49.90&currency=EUR";

const USER_AGENT: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) \
AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

fn values<'a>(click_id: &'a str) -> RedirectValues<'a> {
    RedirectValues {
        click_id: Some(click_id),
        offer_id: "summer-sale",
        aff_id: "aff_42",
        subs: ["120210456789", "ad_7f3k2q", "feed mobile", "", ""],
        source: "fb",
        ad_ids: Default::default(),
    }
}

/// The stored form of a realistic click, without the fields that some
/// versions of the record append; [`sample_click`] reads it back with
/// `Click::decode`, so this bench does not depend on `Click`'s field list.
const STORED_BASE: &str =
    "1\x001763900000\x00summer-sale\x00aff_42\x00120210456789\x00ad_7f3k2q\x00feed mobile\x00\x00\x00fb\x00x3Kq9vTz0aB";

/// A realistic click (12-digit campaign id, ad id, placement, source `fb`).
fn sample_click() -> Click {
    let id = ClickId::generate();
    // Records of versions 1 and 2 end with a unique-visitor flag; 3 does not.
    let mut click = Click::decode(id.clone(), &format!("{STORED_BASE}\x001"))
        .or_else(|_| Click::decode(id, STORED_BASE))
        .expect("the sample click decodes");
    click.expires_at = click.created_at + 30 * 86_400;
    click
}

fn redirect(c: &mut Criterion) {
    let mut g = c.benchmark_group("redirect");
    let click_id = ClickId::generate();
    let append = RedirectTemplate::parse("https://shop.example/landing?x=1#top", "click_id")
        .expect("valid append-mode url");
    let macros = RedirectTemplate::parse(
        "https://shop.example/l/{offer_id}?cid={click_id}&a={aff_id}&s1={sub1}&s2={sub2}&s3={sub3}&src={source}",
        "click_id",
    )
    .expect("valid macro-mode url");
    g.bench_function("build_append", |b| {
        b.iter(|| black_box(&append).build(black_box(&values(click_id.as_str()))))
    });
    g.bench_function("build_macros", |b| {
        b.iter(|| black_box(&macros).build(black_box(&values(click_id.as_str()))))
    });
    // Not on the hot path (done once when an offer is saved), for scale.
    g.bench_function("parse_template_once", |b| {
        b.iter(|| {
            RedirectTemplate::parse(
                black_box("https://shop.example/l/{offer_id}?cid={click_id}&s1={sub1}"),
                "click_id",
            )
        })
    });
    g.finish();
}

fn query(c: &mut Criterion) {
    let mut g = c.benchmark_group("query");
    g.throughput(Throughput::Bytes(CLICK_QUERY.len() as u64));
    g.bench_function("parse_click_link", |b| {
        b.iter(|| Params::parse(black_box(CLICK_QUERY)).expect("valid"))
    });
    g.throughput(Throughput::Bytes(POSTBACK_QUERY.len() as u64));
    g.bench_function("parse_postback", |b| {
        b.iter(|| Params::parse(black_box(POSTBACK_QUERY)).expect("valid"))
    });
    g.finish();
}

fn click_record(c: &mut Criterion) {
    let mut g = c.benchmark_group("click");
    let click = sample_click();
    let stored = click.encode();
    g.bench_function("encode", |b| b.iter(|| black_box(&click).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| Click::decode(click.id.clone(), black_box(&stored)).expect("valid"))
    });
    g.bench_function("id_generate", |b| b.iter(ClickId::generate));
    g.finish();
}

fn visitor(c: &mut Criterion) {
    let hasher = VisitorHasher::new("bench-salt-0123456789");
    let day = Day::from_unix(1_763_900_000);
    c.bench_function("visitor/hash", |b| {
        b.iter(|| {
            hasher.hash(
                black_box(day),
                black_box("203.0.113.77"),
                black_box(USER_AGENT),
            )
        })
    });
}

fn bots(c: &mut Criterion) {
    // A person's browser: the whole list is searched and nothing matches.
    c.bench_function("bots/browser_user_agent", |b| {
        b.iter(|| clickback::domain::bots::is_bot_user_agent(black_box(USER_AGENT)))
    });
}

fn money(c: &mut Criterion) {
    c.bench_function("money/parse", |b| {
        b.iter(|| Money::parse(black_box("1249.990000")).expect("valid"))
    });
}

criterion_group!(benches, redirect, query, click_record, visitor, bots, money);
criterion_main!(benches);
