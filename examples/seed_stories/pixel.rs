//! A third-party cookie pixel, the way browser-side conversion tracking
//! works: what it knows about a click lives in a cookie in the browser that
//! clicked.
//!
//! - `GET /px/landing?click_id=…` (an `<img>` on the landing page): sets the
//!   cookie `px_click` to the click id, in that browser.
//! - `GET /px/convert?order=…` (an `<img>` on the thank-you page): the
//!   conversion is attributed to the click in the `px_click` cookie the
//!   browser presents; without one it cannot be attributed.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;

use crate::Error;

/// The pixel's cookie.
const CLICK_COOKIE: &str = "px_click";

/// A transparent 1×1 GIF, what a tracking pixel answers.
const GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// What the pixel saw: order id → the click id it attributed the order to
/// (`None`: the browser had no cookie).
type Seen = Arc<Mutex<BTreeMap<String, Option<String>>>>;

/// The running pixel.
#[derive(Clone)]
pub struct Pixel {
    seen: Seen,
}

impl Pixel {
    /// Serves the pixel on `listener` (in the current Tokio runtime).
    pub fn start(listener: TcpListener) -> Result<Self, Error> {
        let seen = Seen::default();
        let data = web::Data::new(Arc::clone(&seen));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/px/landing", web::get().to(landing))
                .route("/px/convert", web::get().to(convert))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        tokio::spawn(server);
        Ok(Self { seen })
    }

    /// The click the pixel attributed order `id` to; `None` when it saw the
    /// order without a cookie or not at all.
    pub fn attributed(&self, id: &str) -> Option<String> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(id)
            .cloned()
            .flatten()
    }
}

fn gif() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/gif")
        .insert_header(("cache-control", "no-store"))
        .body(GIF)
}

#[derive(Deserialize)]
struct LandingQuery {
    click_id: String,
}

async fn landing(query: web::Query<LandingQuery>) -> HttpResponse {
    let mut response = gif();
    let cookie = format!(
        "{CLICK_COOKIE}={}; Path=/; Max-Age=2592000",
        query.into_inner().click_id
    );
    match cookie.parse::<actix_web::http::header::HeaderValue>() {
        Ok(value) => {
            response
                .headers_mut()
                .append(actix_web::http::header::SET_COOKIE, value);
            response
        }
        Err(_) => HttpResponse::BadRequest().body("click_id is not a cookie value"),
    }
}

#[derive(Deserialize)]
struct ConvertQuery {
    order: String,
}

async fn convert(
    req: HttpRequest,
    query: web::Query<ConvertQuery>,
    seen: web::Data<Seen>,
) -> HttpResponse {
    let click = crate::cookie(&req, CLICK_COOKIE);
    seen.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(query.into_inner().order, click);
    gif()
}
