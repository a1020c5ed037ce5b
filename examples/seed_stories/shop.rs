//! The advertiser's shop: it keeps the click id on its own side and posts
//! the conversion back to clickback from its server.
//!
//! - `GET /landing?click_id=…`: where clickback's tracking link lands. The
//!   click id goes into the visitor's session (a first-party cookie
//!   `shop_sid` names it) and, when the visitor is signed in, onto the
//!   account. The page carries the cookie pixel's landing tag.
//! - `GET /signin?user=…`: signs the session in; a click id in the session
//!   is kept on the account, so it follows the customer to other devices.
//! - `GET /checkout?amount=…`: creates the order with the click id of the
//!   session, else of the account, and sends the visitor to the payment app.
//! - `GET /pay?order=…`: the payment app; once paid it returns to the
//!   thank-you page through a return URL carrying the order id, which the
//!   phone may open in another browser than the one that paid.
//! - `GET /thank-you?order=…`: posts the conversion back to clickback
//!   (server to server, the click id taken from the order), once per order,
//!   and renders a page carrying the cookie pixel's conversion tag.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;

use crate::Error;

/// The session cookie's name.
const SESSION_COOKIE: &str = "shop_sid";

/// An order as the shop keeps it.
#[derive(Clone, Debug)]
pub struct Order {
    /// The click id the order was placed under (session, else account).
    pub click_id: Option<String>,
    /// The sale amount, a decimal string.
    pub amount: String,
    /// The payment app confirmed it.
    pub paid: bool,
    /// clickback's answer to the postback: its `status` (`credited`, …),
    /// or what went wrong.
    pub postback: Option<String>,
}

#[derive(Default)]
struct Session {
    click_id: Option<String>,
    user: Option<String>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    /// User name → the click id kept on the account.
    accounts: HashMap<String, Option<String>>,
    orders: HashMap<String, Order>,
    next_session: u64,
    next_order: u64,
}

/// How the shop reaches clickback and the pixel.
pub struct ShopConfig {
    /// clickback's base URL, as the shop's server reaches it.
    pub clickback: String,
    /// The offer's postback token.
    pub postback_token: String,
    /// The cookie pixel's base URL, as browsers reach it.
    pub pixel: String,
}

struct Shared {
    config: ShopConfig,
    state: Mutex<State>,
    http: reqwest::Client,
}

/// The running shop: what the simulation reads back at the end.
#[derive(Clone)]
pub struct Shop {
    shared: Arc<Shared>,
}

impl Shop {
    /// Serves the shop on `listener` (in the current Tokio runtime).
    pub fn start(listener: TcpListener, config: ShopConfig) -> Result<Self, Error> {
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/landing", web::get().to(landing))
                .route("/signin", web::get().to(signin))
                .route("/checkout", web::get().to(checkout))
                .route("/pay", web::get().to(pay))
                .route("/thank-you", web::get().to(thank_you))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        tokio::spawn(server);
        Ok(Self { shared })
    }

    /// The order `id`, as the shop has it now.
    pub fn order(&self, id: &str) -> Option<Order> {
        lock(&self.shared.state).orders.get(id).cloned()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A handler that panicked left nothing half-written worth refusing.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The visitor's session id: the cookie's, or a new session (and the cookie
/// to set) when there is none or it is unknown.
fn session(req: &HttpRequest, state: &mut State) -> (String, Option<String>) {
    if let Some(id) = crate::cookie(req, SESSION_COOKIE) {
        if state.sessions.contains_key(&id) {
            return (id, None);
        }
    }
    state.next_session += 1;
    let id = format!("s{:05}", state.next_session);
    state.sessions.insert(id.clone(), Session::default());
    let cookie = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax");
    (id, Some(cookie))
}

/// A page, setting the session cookie `cookie` (a `Set-Cookie` value) if given.
fn page(cookie: Option<String>, html: String) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(cookie) = cookie {
        response.insert_header(("set-cookie", cookie));
    }
    response.content_type("text/html; charset=utf-8").body(html)
}

/// A `303 See Other` to `location`, setting `cookie` if given.
fn redirect(cookie: Option<String>, location: &str) -> HttpResponse {
    let mut response = HttpResponse::SeeOther();
    if let Some(cookie) = cookie {
        response.insert_header(("set-cookie", cookie));
    }
    response.insert_header(("location", location)).finish()
}

/// `&`, `<`, `>` and `"` escaped, for a value inside an HTML attribute.
fn attr(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[derive(Deserialize)]
struct LandingQuery {
    click_id: Option<String>,
}

async fn landing(
    req: HttpRequest,
    query: web::Query<LandingQuery>,
    shop: web::Data<Shared>,
) -> HttpResponse {
    let click_id = query.into_inner().click_id.filter(|c| !c.is_empty());
    let cookie = {
        let state = &mut *lock(&shop.state);
        let (sid, cookie) = session(&req, state);
        if let Some(click_id) = &click_id {
            let session = state.sessions.entry(sid).or_default();
            session.click_id = Some(click_id.clone());
            if let Some(user) = session.user.clone() {
                state.accounts.insert(user, Some(click_id.clone()));
            }
        }
        cookie
    };
    let tag = match &click_id {
        Some(click_id) => format!(
            r#"<img src="{}" alt="">"#,
            attr(&format!(
                "{}/px/landing?click_id={}",
                shop.config.pixel,
                encoded(click_id)
            ))
        ),
        None => String::new(),
    };
    page(cookie, format!("<h1>The shop</h1>{tag}"))
}

#[derive(Deserialize)]
struct SigninQuery {
    user: String,
}

async fn signin(
    req: HttpRequest,
    query: web::Query<SigninQuery>,
    shop: web::Data<Shared>,
) -> HttpResponse {
    let user = query.into_inner().user;
    let state = &mut *lock(&shop.state);
    let (sid, cookie) = session(&req, state);
    let session = state.sessions.entry(sid).or_default();
    session.user = Some(user.clone());
    let from_session = session.click_id.clone();
    let account = state.accounts.entry(user).or_default();
    if from_session.is_some() {
        *account = from_session;
    }
    page(cookie, "<p>Signed in.</p>".into())
}

#[derive(Deserialize)]
struct CheckoutQuery {
    amount: String,
}

async fn checkout(
    req: HttpRequest,
    query: web::Query<CheckoutQuery>,
    shop: web::Data<Shared>,
) -> HttpResponse {
    let state = &mut *lock(&shop.state);
    let (sid, cookie) = session(&req, state);
    let session = state.sessions.entry(sid).or_default();
    let click_id = session.click_id.clone().or_else(|| {
        let user = session.user.as_ref()?;
        state.accounts.get(user).cloned().flatten()
    });
    state.next_order += 1;
    let id = format!("ORD-{:05}", state.next_order);
    state.orders.insert(
        id.clone(),
        Order {
            click_id,
            amount: query.into_inner().amount,
            paid: false,
            postback: None,
        },
    );
    redirect(cookie, &format!("/pay?order={id}"))
}

#[derive(Deserialize)]
struct OrderQuery {
    order: String,
}

async fn pay(
    req: HttpRequest,
    query: web::Query<OrderQuery>,
    shop: web::Data<Shared>,
) -> HttpResponse {
    let id = query.into_inner().order;
    let state = &mut *lock(&shop.state);
    let Some(order) = state.orders.get_mut(&id) else {
        return HttpResponse::NotFound().body("no such order");
    };
    order.paid = true;
    // The return URL is absolute: the payment app hands it to whichever
    // browser the phone opens links in.
    let host = req.connection_info().host().to_owned();
    redirect(
        None,
        &format!("http://{host}/thank-you?order={}", encoded(&id)),
    )
}

async fn thank_you(query: web::Query<OrderQuery>, shop: web::Data<Shared>) -> HttpResponse {
    let id = query.into_inner().order;
    let (click_id, amount, first) = {
        let state = &mut *lock(&shop.state);
        let Some(order) = state.orders.get_mut(&id).filter(|o| o.paid) else {
            return HttpResponse::NotFound().body("no such paid order");
        };
        let first = order.postback.is_none();
        if first {
            order.postback = Some("sending".into());
        }
        (order.click_id.clone(), order.amount.clone(), first)
    };
    if first {
        let outcome = match &click_id {
            Some(click_id) => post_back(&shop, click_id, &id, &amount).await,
            None => "no click id: not an affiliate sale".to_owned(),
        };
        if let Some(order) = lock(&shop.state).orders.get_mut(&id) {
            order.postback = Some(outcome);
        }
    }
    let tag = format!(
        "{}/px/convert?order={}&amount={}",
        shop.config.pixel,
        encoded(&id),
        encoded(&amount)
    );
    page(
        None,
        format!(
            r#"<h1>Thank you for order {}</h1><img src="{}" alt="">"#,
            attr(&id),
            attr(&tag)
        ),
    )
}

/// `GET /postback` on clickback; answers the `status` of its answer, or
/// what went wrong.
async fn post_back(shop: &Shared, click_id: &str, order: &str, amount: &str) -> String {
    let url = format!("{}/postback", shop.config.clickback);
    let sent = shop
        .http
        .get(url)
        .query(&[
            ("click_id", click_id),
            ("token", &shop.config.postback_token),
            ("txid", order),
            ("amount", amount),
        ])
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => return format!("postback failed: {e}"),
    };
    let status = response.status();
    match response.json::<serde_json::Value>().await {
        Ok(body) if status.is_success() => body["status"].as_str().unwrap_or("?").to_owned(),
        Ok(body) => format!("postback answered {status}: {body}"),
        Err(e) => format!("postback answered {status}, unreadable: {e}"),
    }
}
