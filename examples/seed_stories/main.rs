//! Why server-side tracking: the two seed stories, simulated end to end.
//!
//! Browser-side conversion tracking (a pixel that remembers the click in a
//! cookie) loses the conversion whenever the purchase ends in another
//! browser than the click. This example runs, on loopback in one process:
//!
//! - **clickback** itself (`Application::build`, in-memory store) with an
//!   offer `shop` that forwards its conversions to GA4, Meta and a signed
//!   webhook, and an affiliate `aff1`;
//! - **a shop** ([`shop`]) that keeps the click id server-side (session,
//!   account, order) and posts each sale back to clickback;
//! - **a cookie pixel** ([`pixel`]) standing in for a third-party browser pixel;
//! - **the platforms** ([`platforms`]) receiving what clickback forwards;
//! - **browsers** ([`browser`]): separate cookie jars over real HTTP.
//!
//! and sends fixed numbers of visitors through three stories: the same
//! browser from click to purchase (the control), an in-app browser whose
//! payment returns to the system browser, and a click on the phone with the
//! purchase later on a laptop. It prints per story how many conversions the
//! pixel and clickback attributed and how many reached each platform, and
//! exits non-zero when clickback misses a conversion, the pixel claims a
//! cross-browser one, or a platform misses a conversion: CI runs it as a check.
//!
//! `cargo run --example seed_stories`; `RUST_LOG=info` shows clickback's log.

mod browser;
mod pixel;
mod platforms;
mod shop;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clickback::config::Settings;
use clickback::delivery::schedule::Schedule;
use clickback::startup::Application;
use serde_json::{json, Value};
use url::Url;

use browser::Browser;
use pixel::Pixel;
use platforms::{Platform, Platforms};
use shop::{Shop, ShopConfig};

/// Any failure of the simulation itself (not of what it checks).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// clickback's admin token.
const ADMIN_TOKEN: &str = "seed-stories-admin-token-0123456789";
/// The offer's postback token, which the shop's server holds.
const POSTBACK_TOKEN: &str = "shop-postback-token";
/// The webhook destination's signing secret, which the receiver holds.
const WEBHOOK_SECRET: &str = "demo-webhook-secret-0123456789";
/// The destinations' ids: clickback names each after its type.
const PLATFORMS: [Platform; 3] = [Platform::Ga4, Platform::Meta, Platform::Webhook];
/// How long forwarding may take before the example gives up on it.
const FORWARDING_DEADLINE: Duration = Duration::from_secs(20);
/// How long clickback may take to list a conversion it acknowledged.
const LISTING_DEADLINE: Duration = Duration::from_secs(5);

/// The phone's own browser.
const PHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
/// A social app's in-app browser on the same phone: its own cookie jar.
const PHONE_IN_APP: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 330.0.0.29.98";
/// The customer's laptop.
const LAPTOP_CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

/// How a visitor gets from the affiliate's link to the purchase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Story {
    /// Click, landing, purchase and thank-you page in one browser.
    SameBrowser,
    /// Click and checkout in an in-app browser; the payment app returns to
    /// the thank-you page in the system browser.
    InAppHandOff,
    /// Click on the phone (signed in), purchase later on the laptop.
    SecondBrowser,
}

impl Story {
    const ALL: [Story; 3] = [
        Story::SameBrowser,
        Story::InAppHandOff,
        Story::SecondBrowser,
    ];

    fn title(self) -> &'static str {
        match self {
            Story::SameBrowser => "same browser (control)",
            Story::InAppHandOff => "in-app browser hand-off",
            Story::SecondBrowser => "second browser",
        }
    }

    /// Visitors of the story: 100 in all.
    fn visitors(self) -> usize {
        match self {
            Story::SameBrowser => 40,
            Story::InAppHandOff => 30,
            Story::SecondBrowser => 30,
        }
    }

    /// Whether the purchase ends in another browser than the click.
    fn cross_browser(self) -> bool {
        self != Story::SameBrowser
    }
}

/// One visitor's way through a story.
struct Visit {
    story: Story,
    /// The click id clickback minted for the visitor's click.
    click_id: String,
    /// The shop's order id (the postback's `txid`).
    order_id: String,
}

/// The value of cookie `name` in a request's `Cookie` header.
pub fn cookie(req: &actix_web::HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off")).init();
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("the simulation could not run: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the simulation; answers whether every check passed.
async fn run() -> Result<bool, Error> {
    let platforms_listener = loopback()?;
    let pixel_listener = loopback()?;
    let shop_listener = loopback()?;
    let platforms_port = platforms_listener.local_addr()?.port();
    let pixel_port = pixel_listener.local_addr()?.port();
    let shop_port = shop_listener.local_addr()?.port();

    let platforms = Platforms::start(platforms_listener, WEBHOOK_SECRET)?;
    let pixel = Pixel::start(pixel_listener)?;
    let clickback_port = start_clickback(platforms_port).await?;
    let admin = Admin::new(clickback_port)?;
    let shop = Shop::start(
        shop_listener,
        ShopConfig {
            clickback: admin.base.clone(),
            postback_token: POSTBACK_TOKEN.into(),
            pixel: format!("http://pixel.test:{pixel_port}"),
        },
    )?;
    admin.configure(shop_port, platforms_port).await?;

    let web = Web {
        clickback: Url::parse(&format!("http://clickback.test:{clickback_port}"))?,
        shop: Url::parse(&format!("http://shop.test:{shop_port}"))?,
        hosts: vec![
            ("clickback.test", local(clickback_port)),
            ("shop.test", local(shop_port)),
            ("pixel.test", local(pixel_port)),
        ],
    };
    admin.wait_until_live(&web).await?;

    let mut visits = Vec::new();
    let mut n = 0;
    for story in Story::ALL {
        for _ in 0..story.visitors() {
            n += 1;
            visits.push(web.visit(story, n).await?);
        }
    }

    let conversions = admin.conversions(&visits).await?;
    let deliveries = admin.wait_for_forwarding(conversions.len()).await?;
    let report = Report::new(&visits, &shop, &pixel, &platforms, &conversions);
    report.print(&deliveries, &platforms);
    Ok(report.check(&deliveries, &platforms))
}

fn loopback() -> std::io::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Starts clickback on a free loopback port, its platform endpoints pointing
/// at the platforms receiver; answers its port.
async fn start_clickback(platforms_port: u16) -> Result<u16, Error> {
    let platforms = format!("http://127.0.0.1:{platforms_port}");
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        redis_url: None,
        admin_token: Some(ADMIN_TOKEN.into()),
        hash_salt: Some("seed-stories-salt".into()),
        demo: false,
        workers: 2,
        config_refresh: Duration::from_millis(100),
        ..Settings::default()
    };
    let delivery = &mut settings.delivery;
    delivery.allow_private_targets = true;
    delivery.poll = Duration::from_millis(50);
    delivery.schedule = Schedule::parse("200ms,500ms,1s,2s")?;
    delivery.ga4_endpoint = format!("{platforms}/mp/collect");
    delivery.meta_endpoint = platforms.clone();
    delivery.tiktok_endpoint = platforms;
    let app = Application::build(settings).await?;
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    Ok(port)
}

/// The parts of the web a browser reaches, by name.
struct Web {
    /// clickback's public base, where tracking links point.
    clickback: Url,
    /// The shop's base.
    shop: Url,
    /// Host name → loopback address, the browsers' DNS.
    hosts: Vec<(&'static str, SocketAddr)>,
}

impl Web {
    fn browser(&self, user_agent: &str) -> Result<Browser, Error> {
        Browser::new(user_agent, &self.hosts)
    }

    /// The affiliate's tracking link for visitor `n`, with the ad platforms'
    /// ids the ad click carried.
    fn tracking_link(&self, n: usize) -> Result<Url, Error> {
        let mut link = self.clickback.join("/c/shop")?;
        link.query_pairs_mut()
            .append_pair("aff_id", "aff1")
            .append_pair("fbclid", &format!("IwAR0seed{n:03}"))
            .append_pair("ga_client_id", &format!("{}.1796000000", 1_000_000_000 + n));
        Ok(link)
    }

    fn shop_page(&self, path_and_query: &str) -> Result<Url, Error> {
        Ok(self.shop.join(path_and_query)?)
    }

    /// Visitor `n` clicks `browser`'s way to the shop; answers the click id
    /// the landing page got.
    async fn click(&self, browser: &mut Browser, n: usize) -> Result<String, Error> {
        let landing = browser.open(&self.tracking_link(n)?).await?;
        if landing.url.host_str() != Some("shop.test") || landing.url.path() != "/landing" {
            return Err(format!("the tracking link led to {}", landing.url).into());
        }
        param(&landing.url, "click_id")
            .ok_or_else(|| format!("the landing page {} has no click_id", landing.url).into())
    }

    /// Visitor `n` through `story`.
    async fn visit(&self, story: Story, n: usize) -> Result<Visit, Error> {
        let amount = format!("{}.{:02}", 20 + (n * 37) % 180, (n * 13) % 100);
        let checkout = self.shop_page(&format!("/checkout?amount={amount}"))?;
        let (click_id, thank_you) = match story {
            Story::SameBrowser => {
                let mut phone = self.browser(PHONE_SAFARI)?;
                let click_id = self.click(&mut phone, n).await?;
                (click_id, phone.open(&checkout).await?)
            }
            Story::InAppHandOff => {
                let mut in_app = self.browser(PHONE_IN_APP)?;
                let click_id = self.click(&mut in_app, n).await?;
                let to_payment = in_app.fetch(&checkout).await?;
                let payment = to_payment.location.ok_or("checkout did not redirect")?;
                let paid = in_app.fetch(&payment).await?;
                let return_url = paid.location.ok_or("the payment app did not return")?;
                // The payment app opens its return URL in the system browser.
                let mut system = self.browser(PHONE_SAFARI)?;
                (click_id, system.open(&return_url).await?)
            }
            Story::SecondBrowser => {
                let user = format!("customer{n:03}");
                let signin = self.shop_page(&format!("/signin?user={user}"))?;
                let mut phone = self.browser(PHONE_SAFARI)?;
                let click_id = self.click(&mut phone, n).await?;
                phone.open(&signin).await?;
                let mut laptop = self.browser(LAPTOP_CHROME)?;
                laptop.open(&signin).await?;
                (click_id, laptop.open(&checkout).await?)
            }
        };
        if thank_you.url.path() != "/thank-you" {
            return Err(format!("the purchase ended on {}", thank_you.url).into());
        }
        let order_id = param(&thank_you.url, "order").ok_or("the thank-you page has no order")?;
        Ok(Visit {
            story,
            click_id,
            order_id,
        })
    }
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// clickback's admin API, as the network operator uses it.
struct Admin {
    /// `http://127.0.0.1:<port>`.
    base: String,
    client: reqwest::Client,
}

/// A conversion as clickback lists it.
struct Conversion {
    id: String,
    click_id: String,
    status: String,
}

/// The deliveries of one destination, by state.
#[derive(Default)]
struct DestinationLog {
    delivered: usize,
    pending: usize,
    dead: usize,
    /// An error of a delivery not delivered, to say why.
    last_error: Option<String>,
}

impl Admin {
    fn new(port: u16) -> Result<Self, Error> {
        Ok(Self {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, Error> {
        let response = request.bearer_auth(ADMIN_TOKEN).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            return Err(format!("clickback answered {status}: {body}").into());
        }
        Ok(body)
    }

    async fn put(&self, path: &str, body: Value) -> Result<Value, Error> {
        self.send(self.client.put(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn get(&self, path: &str) -> Result<Value, Error> {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    /// The offer `shop` landing on the shop, forwarding to GA4, Meta and the
    /// webhook, and the affiliate `aff1`.
    async fn configure(&self, shop_port: u16, platforms_port: u16) -> Result<(), Error> {
        self.put(
            "/api/v1/offers/shop",
            json!({
                "name": "The shop",
                "url": format!("http://shop.test:{shop_port}/landing"),
                "click_id_param": "click_id",
                "payout": "4.00",
                "currency": "EUR",
                "postback_token": POSTBACK_TOKEN,
                "status": "active",
                "destinations": [
                    {"type": "ga4", "measurement_id": "G-DEMO1234", "api_secret": "demo-secret-ga4"},
                    {"type": "meta", "pixel_id": "123456789012345", "access_token": "demo-meta-token"},
                    {"type": "webhook", "url": format!("http://127.0.0.1:{platforms_port}/hook"), "secret": WEBHOOK_SECRET}
                ]
            }),
        )
        .await?;
        self.put(
            "/api/v1/affiliates/aff1",
            json!({"name": "Affiliate 1", "status": "active"}),
        )
        .await?;
        Ok(())
    }

    /// Waits until the tracking link redirects (a `HEAD` records no click).
    async fn wait_until_live(&self, web: &Web) -> Result<(), Error> {
        let link = format!("{}/c/shop?aff_id=aff1", self.base);
        let started = Instant::now();
        loop {
            let status = self.client.head(&link).send().await?.status();
            if status.is_redirection() {
                return Ok(());
            }
            if started.elapsed() > LISTING_DEADLINE {
                return Err(
                    format!("the tracking link {} still answers {status}", web.clickback).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every listed page of `path` (a list answering `next_cursor`), the
    /// entries under `field`.
    async fn list(&self, path: &str, field: &str) -> Result<Vec<Value>, Error> {
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        // Bounded: 100 pages of 1000 are far more than the simulation makes.
        for _ in 0..100 {
            let mut url = Url::parse(&format!("{}{path}", self.base))?;
            url.query_pairs_mut().append_pair("limit", "1000");
            if let Some(cursor) = &cursor {
                url.query_pairs_mut().append_pair("cursor", cursor);
            }
            let page = self.get(&url[url::Position::BeforePath..]).await?;
            entries.extend(page[field].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(entries),
            }
        }
        Err(format!("{path} did not end within 100 pages").into())
    }

    /// clickback's conversions of the offer by txid (the shop's order id),
    /// once every visit's order is listed or [`LISTING_DEADLINE`] passed.
    async fn conversions(&self, visits: &[Visit]) -> Result<HashMap<String, Conversion>, Error> {
        let started = Instant::now();
        loop {
            let mut by_txid = HashMap::new();
            for entry in self
                .list("/api/v1/conversions?offer_id=shop", "conversions")
                .await?
            {
                let text = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
                by_txid.insert(
                    text("txid"),
                    Conversion {
                        id: text("id"),
                        click_id: text("click_id"),
                        status: text("status"),
                    },
                );
            }
            let all = visits.iter().all(|v| by_txid.contains_key(&v.order_id));
            if all || started.elapsed() > LISTING_DEADLINE {
                return Ok(by_txid);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The offer's delivery log by destination, once each destination has
    /// delivered `conversions`, or nothing is pending any more, or
    /// [`FORWARDING_DEADLINE`] passed.
    async fn wait_for_forwarding(
        &self,
        conversions: usize,
    ) -> Result<BTreeMap<String, DestinationLog>, Error> {
        let started = Instant::now();
        loop {
            let mut logs: BTreeMap<String, DestinationLog> = PLATFORMS
                .iter()
                .map(|p| (p.label().to_owned(), DestinationLog::default()))
                .collect();
            for delivery in self
                .list("/api/v1/offers/shop/deliveries", "deliveries")
                .await?
            {
                let Some(destination) = delivery["destination"].as_str() else {
                    continue;
                };
                let log = logs.entry(destination.to_owned()).or_default();
                match delivery["state"].as_str() {
                    Some("delivered") => log.delivered += 1,
                    Some("dead") => log.dead += 1,
                    _ => log.pending += 1,
                }
                if delivery["state"] != "delivered" {
                    if let Some(error) = delivery["last_error"].as_str() {
                        log.last_error = Some(error.to_owned());
                    }
                }
            }
            let done = logs.values().all(|log| log.delivered >= conversions);
            let settled = logs
                .values()
                .all(|log| log.pending == 0 && log.delivered + log.dead >= conversions);
            if done || settled || started.elapsed() > FORWARDING_DEADLINE {
                return Ok(logs);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What each story came to.
#[derive(Default)]
struct Row {
    visitors: usize,
    /// Orders paid and confirmed on the thank-you page.
    conversions: usize,
    /// Conversions the cookie pixel attributed to the visitor's click.
    pixel: usize,
    /// Conversions the pixel attributed to any click (the wrong one counts).
    pixel_any: usize,
    /// Conversions clickback recorded as approved for the visitor's click.
    s2s: usize,
    /// Conversions each platform received.
    forwarded: BTreeMap<Platform, usize>,
}

struct Report {
    rows: BTreeMap<Story, Row>,
    /// Orders whose postback did not come back `credited`, with the answer.
    postback_failures: Vec<String>,
    /// Conversions clickback lists.
    listed: usize,
}

impl Report {
    fn new(
        visits: &[Visit],
        shop: &Shop,
        pixel: &Pixel,
        platforms: &Platforms,
        conversions: &HashMap<String, Conversion>,
    ) -> Self {
        let received: BTreeMap<Platform, platforms::Received> = PLATFORMS
            .iter()
            .map(|&p| (p, platforms.received(p)))
            .collect();
        let mut rows: BTreeMap<Story, Row> = BTreeMap::new();
        let mut postback_failures = Vec::new();
        for visit in visits {
            let row = rows.entry(visit.story).or_default();
            row.visitors += 1;
            let Some(order) = shop.order(&visit.order_id).filter(|o| o.paid) else {
                continue;
            };
            row.conversions += 1;
            match order.postback.as_deref() {
                Some("credited") => {}
                other => postback_failures.push(format!("{}: {other:?}", visit.order_id)),
            }
            let attributed = pixel.attributed(&visit.order_id);
            row.pixel_any += usize::from(attributed.is_some());
            row.pixel += usize::from(attributed.as_deref() == Some(visit.click_id.as_str()));
            let conversion = conversions.get(&visit.order_id);
            row.s2s += usize::from(
                conversion.is_some_and(|c| c.click_id == visit.click_id && c.status == "approved"),
            );
            for (&platform, got) in &received {
                let reached = got.keys.contains(&visit.order_id)
                    || conversion.is_some_and(|c| got.keys.contains(&c.id));
                *row.forwarded.entry(platform).or_default() += usize::from(reached);
            }
        }
        Self {
            rows,
            postback_failures,
            listed: conversions.len(),
        }
    }

    fn total(&self) -> Row {
        let mut total = Row::default();
        for row in self.rows.values() {
            total.visitors += row.visitors;
            total.conversions += row.conversions;
            total.pixel += row.pixel;
            total.pixel_any += row.pixel_any;
            total.s2s += row.s2s;
            for (&platform, n) in &row.forwarded {
                *total.forwarded.entry(platform).or_default() += n;
            }
        }
        total
    }

    fn print(&self, deliveries: &BTreeMap<String, DestinationLog>, platforms: &Platforms) {
        println!(
            "{:<26} {:>8} {:>11} {:>6} {:>5}   forwarded: {:>5} {:>5} {:>8}",
            "story", "visitors", "conversions", "pixel", "S2S", "GA4", "Meta", "webhook"
        );
        let line = |title: &str, row: &Row| {
            let f = |p: Platform| row.forwarded.get(&p).copied().unwrap_or_default();
            println!(
                "{:<26} {:>8} {:>11} {:>6} {:>5}              {:>5} {:>5} {:>8}",
                title,
                row.visitors,
                row.conversions,
                row.pixel,
                row.s2s,
                f(Platform::Ga4),
                f(Platform::Meta),
                f(Platform::Webhook)
            );
        };
        for (story, row) in &self.rows {
            line(story.title(), row);
        }
        line("total", &self.total());
        println!();
        println!("clickback's delivery log (GET /api/v1/offers/shop/deliveries):");
        for (destination, log) in deliveries {
            let received = PLATFORMS
                .iter()
                .find(|p| p.label() == destination)
                .map(|&p| platforms.received(p));
            print!(
                "  {destination:<8} delivered {:>3}, pending {:>3}, dead {:>3}",
                log.delivered, log.pending, log.dead
            );
            if let Some(received) = received {
                print!(
                    "; the platform got {} requests for {} conversions",
                    received.requests,
                    received.keys.len()
                );
                if received.bad_signatures > 0 {
                    print!(", {} with a bad signature", received.bad_signatures);
                }
            }
            match &log.last_error {
                Some(error) => println!(" (last error: {error})"),
                None => println!(),
            }
        }
        let unexpected = platforms.unexpected();
        if !unexpected.is_empty() {
            println!("  requests to no platform here: {unexpected:?}");
        }
        println!();
    }

    /// Prints each check with its outcome; answers whether all passed.
    fn check(&self, deliveries: &BTreeMap<String, DestinationLog>, platforms: &Platforms) -> bool {
        let total = self.total();
        let same = self.rows.get(&Story::SameBrowser);
        let cross_pixel: usize = self
            .rows
            .iter()
            .filter(|(story, _)| story.cross_browser())
            .map(|(_, row)| row.pixel_any)
            .sum();
        let mut checks = vec![
            (
                format!(
                    "every visitor bought and the shop's postback was credited ({} of {}{})",
                    total.conversions - self.postback_failures.len().min(total.conversions),
                    total.visitors,
                    match self.postback_failures.first() {
                        Some(first) => format!("; first failure {first}"),
                        None => String::new(),
                    }
                ),
                total.conversions == total.visitors && self.postback_failures.is_empty(),
            ),
            (
                format!(
                    "clickback attributes every conversion to its click, server to server ({} of {}; {} listed)",
                    total.s2s, total.conversions, self.listed
                ),
                total.s2s == total.conversions && self.listed == total.conversions,
            ),
            (
                format!(
                    "the cookie pixel attributes every same-browser conversion ({} of {})",
                    same.map_or(0, |r| r.pixel),
                    same.map_or(0, |r| r.conversions)
                ),
                same.is_some_and(|r| r.pixel == r.conversions),
            ),
            (
                format!("the cookie pixel attributes no cross-browser conversion ({cross_pixel})"),
                cross_pixel == 0,
            ),
        ];
        for platform in PLATFORMS {
            let label = platform.label();
            let delivered = deliveries.get(label).map_or(0, |log| log.delivered);
            let reached = total.forwarded.get(&platform).copied().unwrap_or_default();
            let bad = platforms.received(platform).bad_signatures;
            checks.push((
                format!(
                    "forwarding reaches {label}: {delivered} of {} delivered, {reached} received{}",
                    total.conversions,
                    if platform == Platform::Webhook {
                        format!(", {bad} bad signatures")
                    } else {
                        String::new()
                    }
                ),
                delivered == total.conversions && reached == total.conversions && bad == 0,
            ));
        }
        for (what, ok) in &checks {
            println!("{} {what}", if *ok { "ok    " } else { "FAILED" });
        }
        checks.iter().all(|(_, ok)| *ok)
    }
}
