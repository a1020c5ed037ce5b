//! HTTP adapters: extract → domain call → response. No Redis in here.

pub mod admin;
pub mod click;
pub mod health;
pub mod postback;
pub mod stats;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{web, HttpResponse};

use crate::error::ApiError;

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/c/{offer_id}", web::get().to(click::click))
        .route("/c/{offer_id}", web::head().to(click::click))
        .route("/postback", web::get().to(postback::postback_get))
        .route("/postback", web::post().to(postback::postback_post))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .service(
            web::scope("/api/v1")
                .route("/offers", web::get().to(admin::list_offers))
                .route("/offers/{offer_id}", web::get().to(admin::get_offer))
                .route("/offers/{offer_id}", web::put().to(admin::put_offer))
                .route("/affiliates", web::get().to(admin::list_affiliates))
                .route("/affiliates/{aff_id}", web::get().to(admin::get_affiliate))
                .route("/affiliates/{aff_id}", web::put().to(admin::put_affiliate))
                .route("/stats", web::get().to(stats::stats))
                .route("/postbacks", web::get().to(admin::postback_log)),
        )
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(
        "not_found",
        "no such endpoint; see API.md",
    ))
}

/// Gives framework-generated errors (405, 413, 431, a failed extractor…) the
/// same JSON body as our own, so clients parse one error shape everywhere.
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
    let detail = status
        .canonical_reason()
        .unwrap_or("request refused")
        .to_owned();
    let (req, _) = res.into_parts();
    let response: HttpResponse<BoxBody> =
        actix_web::ResponseError::error_response(&ApiError::new(status, reason, detail));
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body::<B>(),
    ))
}

/// Type of the error-handler output, for the App builder.
pub type JsonErrorBody<B> = EitherBody<B, BoxBody>;

/// The route template of a request (`/c/{offer_id}`), the only path-like
/// metric label: a raw path would put click and offer ids into label values.
pub fn route_label(req: &ServiceRequest) -> String {
    req.match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned())
}
