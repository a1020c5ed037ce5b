//! HTTP adapters: extract → domain call → response. No Redis in here.
//!
//! Every path is one resource carrying all of its methods, so that a wrong
//! method on a known path answers `405` with `Allow` while unknown paths
//! answer `404`.

pub mod admin;
pub mod click;
pub mod health;
pub mod postback;
pub mod stats;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{web, FromRequest, Handler, HttpResponse, Resource, Responder};

use crate::error::ApiError;

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/c/{offer_id}")
            .get(click::click)
            .head(click::click),
    )
    .service(
        web::resource("/postback")
            .get(postback::postback_get)
            .post(postback::postback_post),
    )
    .service(read_only("/healthz", health::healthz))
    .service(read_only("/readyz", health::readyz))
    .service(read_only("/metrics", health::metrics))
    .service(
        web::scope("/api/v1")
            .service(read_only("/offers", admin::list_offers))
            .service(read_only("/offers/{offer_id}", admin::get_offer).put(admin::put_offer))
            .service(read_only("/affiliates", admin::list_affiliates))
            .service(
                read_only("/affiliates/{aff_id}", admin::get_affiliate).put(admin::put_affiliate),
            )
            .service(read_only("/stats", stats::stats))
            .service(read_only("/postbacks", admin::postback_log)),
    )
    .default_service(web::to(not_found));
}

/// A resource whose `GET` changes nothing, so `HEAD` may run the same
/// handler (actix-http leaves the body out). Not for `/postback`, whose `GET`
/// credits a conversion: there `HEAD` answers `405`.
fn read_only<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path).get(handler.clone()).head(handler)
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
