//! HTTP adapters: extract → domain call → response. No Redis in here.
//!
//! Every path is one resource carrying all of its methods, so that a wrong
//! method on a known path answers `405` with `Allow` while unknown paths
//! answer `404`. Bodies are read through [`RequestBody`], which bounds their
//! size and the time they may take to arrive.

pub mod admin;
pub mod advertisers;
pub mod audit;
pub mod auth;
pub mod click;
pub mod conversions;
pub mod csv;
pub mod deliveries;
pub mod health;
pub mod keys;
pub mod me;
pub mod openapi;
pub mod postback;
pub mod schemas;
pub mod stats;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BodyStream, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderName};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use crate::error::ApiError;

/// Declares every route once: [`ROUTES`] lists its `(method, path)` pairs
/// and [`configure`] mounts exactly those, so the list cannot miss one. The
/// OpenAPI document (`openapi`) is checked against the list by a test.
macro_rules! routes {
    ($($path:literal => { $($method:ident: $handler:path),+ $(,)? })+) => {
        /// Every `(method, path)` clickback serves, methods lowercase as in
        /// OpenAPI, paths as mounted (`{name}` for a path parameter).
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path),)+)+];

        /// Mounts every route of [`ROUTES`]. Each path is one resource carrying
        /// all of its methods, so another method answers `405` with `Allow`.
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.service(web::resource($path)$(.route(web::$method().to($handler)))+);)+
            cfg.default_service(web::to(not_found));
        }
    };
}

// `HEAD` runs the `GET` handler (actix-http leaves the body out) wherever
// `GET` changes nothing. Not on the postback paths, whose `GET` credits a
// conversion: there `HEAD` answers `405`. Alongside `/postback`, the postback
// paths of other platforms, so that an advertiser's URL keeps working once
// their host name points at clickback: HasOffers / TUNE (`/aff_lsr`,
// `/aff_goal`) and Binom (`/click.php`).
routes! {
    "/c/{offer_id}" => { get: click::click, head: click::click }
    "/postback" => { get: postback::postback_get, post: postback::postback_post }
    "/aff_lsr" => { get: postback::postback_get, post: postback::postback_post }
    "/aff_goal" => { get: postback::postback_get, post: postback::postback_post }
    "/click.php" => { get: postback::postback_get, post: postback::postback_post }
    "/healthz" => { get: health::healthz, head: health::healthz }
    "/readyz" => { get: health::readyz, head: health::readyz }
    "/metrics" => { get: health::metrics, head: health::metrics }
    "/api/v1/openapi.json" => { get: openapi::openapi_json, head: openapi::openapi_json }
    "/api/v1/offers" => { get: admin::list_offers, head: admin::list_offers }
    "/api/v1/offers/{offer_id}" => {
        get: admin::get_offer, head: admin::get_offer, put: admin::put_offer
    }
    "/api/v1/affiliates" => { get: admin::list_affiliates, head: admin::list_affiliates }
    "/api/v1/affiliates/{aff_id}" => {
        get: admin::get_affiliate, head: admin::get_affiliate, put: admin::put_affiliate
    }
    "/api/v1/affiliates/{aff_id}/deliveries" => {
        get: deliveries::affiliate_deliveries, head: deliveries::affiliate_deliveries
    }
    "/api/v1/offers/{offer_id}/deliveries" => {
        get: deliveries::offer_deliveries, head: deliveries::offer_deliveries
    }
    "/api/v1/deliveries" => { get: deliveries::deliveries, head: deliveries::deliveries }
    "/api/v1/deliveries/{id}/retry" => { post: deliveries::retry }
    "/api/v1/stats" => { get: stats::stats, head: stats::stats }
    "/api/v1/postbacks" => { get: admin::postback_log, head: admin::postback_log }
    "/api/v1/advertisers" => {
        get: advertisers::list_advertisers, head: advertisers::list_advertisers
    }
    "/api/v1/advertisers/{advertiser_id}" => {
        get: advertisers::get_advertiser,
        head: advertisers::get_advertiser,
        put: advertisers::put_advertiser,
    }
    "/api/v1/keys" => { get: keys::list_keys, head: keys::list_keys, post: keys::create_key }
    "/api/v1/keys/{id}" => { delete: keys::revoke_key }
    "/api/v1/audit" => { get: audit::audit_log, head: audit::audit_log }
    "/api/v1/conversions" => { get: conversions::conversions, head: conversions::conversions }
    "/api/v1/me" => { get: me::me, head: me::me }
    "/api/v1/me/offers" => { get: me::offers, head: me::offers }
    "/api/v1/me/stats" => { get: me::stats, head: me::stats }
    "/api/v1/me/conversions" => { get: me::conversions, head: me::conversions }
    "/api/v1/me/conversions/{id}" => { patch: me::change_status }
    "/api/v1/me/deliveries" => { get: me::deliveries, head: me::deliveries }
    "/api/v1/me/postbacks" => { get: me::postbacks, head: me::postbacks }
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(
        "not_found",
        "no such endpoint; see API.md",
    ))
}

/// Gives framework-generated errors (405, a payload the codec refused…) the
/// same JSON body as our own, so clients parse one error shape everywhere.
/// The framework's headers stay, so a `405` keeps its `Allow`.
pub fn json_error_bodies<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let reason = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        s if s.is_server_error() => "internal_error",
        _ => "invalid_request",
    };
    let detail = match (status, res.headers().get(header::ALLOW)) {
        (StatusCode::METHOD_NOT_ALLOWED, Some(allow)) => format!(
            "{} is not allowed here; allowed: {}",
            res.request().method(),
            allow.to_str().unwrap_or("see API.md")
        ),
        _ => status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_owned(),
    };
    let (req, original) = res.into_parts();
    let mut response: HttpResponse<BoxBody> =
        actix_web::ResponseError::error_response(&ApiError::new(status, reason, detail));
    let ours: Vec<HeaderName> = response.headers().keys().cloned().collect();
    for (name, value) in original.headers() {
        if !ours.contains(name) && name != header::CONTENT_LENGTH {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body::<B>(),
    ))
}

/// The route template of a request (`/c/{offer_id}`), the only path-like
/// metric label: a raw path would put click and offer ids into label values.
pub fn route_label(req: &ServiceRequest) -> String {
    req.match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned())
}

/// Longest request body accepted (API.md: request bodies ≤ 64 KB).
pub const MAX_BODY_LEN: usize = 64 * 1024;

/// How request bodies are read, as app data (see [`RequestBody`]).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// A whole body must arrive within this (`CLICKBACK_BODY_TIMEOUT_MS`):
    /// a client sending a byte now and then would otherwise hold a
    /// connection and a handler for as long as it likes.
    pub timeout: Duration,
    /// Longer bodies are refused with `413`.
    pub max_len: usize,
}

impl BodyLimits {
    /// [`MAX_BODY_LEN`] and the given deadline.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            max_len: MAX_BODY_LEN,
        }
    }
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self::new(crate::config::Settings::default().body_timeout)
    }
}

/// A request body, read whole within [`BodyLimits`].
///
/// Too long: `413 payload_too_large`. Not complete within the deadline:
/// `408 request_timeout`. A body that cannot be decoded (broken chunked
/// encoding, a connection cut short): `400 invalid_request`. Whenever the
/// body is left unread, the connection is closed after the answer.
pub struct RequestBody(pub Bytes);

impl std::ops::Deref for RequestBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl FromRequest for RequestBody {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limits = req.app_data::<BodyLimits>().copied().unwrap_or_default();
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let stream = BodyStream::new(payload.take());
        Box::pin(read_body(stream, declared, limits))
    }
}

/// One step of reading a body: a chunk (or its end), or the deadline.
enum Step {
    Chunk(Option<Result<Bytes, PayloadError>>),
    Late,
}

async fn read_body(
    mut stream: BodyStream<Payload>,
    declared: Option<u64>,
    limits: BodyLimits,
) -> Result<RequestBody, actix_web::Error> {
    if declared.is_some_and(|len| len > limits.max_len as u64) {
        return Err(unread(too_large(limits), stream));
    }
    let deadline = tokio::time::sleep(limits.timeout);
    tokio::pin!(deadline);
    let mut body = BytesMut::new();
    loop {
        let step = tokio::select! {
            chunk = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)) => Step::Chunk(chunk),
            () = &mut deadline => Step::Late,
        };
        match step {
            Step::Chunk(None) => return Ok(RequestBody(body.freeze())),
            Step::Chunk(Some(Ok(chunk))) => {
                if body.len() + chunk.len() > limits.max_len {
                    return Err(unread(too_large(limits), stream));
                }
                body.extend_from_slice(&chunk);
            }
            Step::Chunk(Some(Err(e))) => {
                return Err(ApiError::invalid(format!("the body could not be read: {e}")).into())
            }
            Step::Late => {
                let error = ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the body did not arrive whole within {} ms; send it in one go",
                        limits.timeout.as_millis()
                    ),
                );
                return Err(unread(error, stream));
            }
        }
    }
}

fn too_large(limits: BodyLimits) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is longer than {} bytes", limits.max_len),
    )
}

/// `error`'s answer, holding the unread rest of the body until the answer is
/// written: actix-http then closes the connection, where it would otherwise
/// keep reading (and discarding) a chunked body for as long as it trickles.
fn unread(error: ApiError, stream: BodyStream<Payload>) -> actix_web::Error {
    let response = actix_web::ResponseError::error_response(&error).map_body(|_, body| {
        BoxBody::new(HoldingUnread {
            body,
            _unread: stream,
        })
    });
    actix_web::error::InternalError::from_response(error, response).into()
}

/// A response body that keeps the request's unread payload alive (see [`unread`]).
struct HoldingUnread {
    body: BoxBody,
    _unread: BodyStream<Payload>,
}

impl MessageBody for HoldingUnread {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
