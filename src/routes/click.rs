//! `GET /c/{offer_id}`: the tracking link (API.md §1).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::schemas::{BadRequest, ClickParams, ErrorBody};
use crate::click::{observe, track, Visitor};
use crate::domain::OfferId;
use crate::error::ApiError;
use crate::state::AppState;

/// Records the click and redirects the visitor with `302 Found`.
#[utoipa::path(
    method(get, head),
    path = "/c/{offer_id}",
    tag = "tracking",
    operation_id = "click",
    summary = "The tracking link: records the click and redirects the visitor",
    description = "302 to the offer URL carrying the new click id (a HEAD probe is redirected, not recorded). With consent=0 or Sec-GPC: 1, to the offer URL without a click id, and nothing about the visitor is stored. When the store is unreachable the visitor is still redirected, without a click id.",
    params(("offer_id" = OfferId, Path, description = "The offer"), ClickParams),
    responses(
        (status = 302, description = "To the offer's landing page (or its fallback_url while a cap is full)", headers(
            ("Location" = String, description = "The landing page, with the click id"),
            ("Cache-Control" = String, description = "no-store"),
        ), links(
            // `#regex:` extracts the click id from the landing page's URL
            // (a Schemathesis extension of runtime expressions; other tools
            // read the whole header).
            ("Postback" = (operation_id = "postback", parameters(("click_id" = "$response.header.Location#regex:[?&]click_id=([^&#]+)")))),
        )),
        (status = 400, response = BadRequest),
        (status = 404, description = "unknown_offer (no active offer with this id) or unknown_affiliate", body = ErrorBody),
    )
)]
pub async fn click(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let offer_id = req.match_info().get("offer_id").unwrap_or("");
    let headers = req.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let visitor = Visitor {
        ip: state.client_ip(req.peer_addr().map(|a| a.ip()), text("x-forwarded-for")),
        user_agent: text("user-agent").unwrap_or(""),
        global_privacy_control: text("sec-gpc").is_some_and(|v| v.trim() == "1"),
        // Link previews and uptime checkers probe with HEAD: they get the
        // redirect, but they are not visitors and are not recorded.
        is_bot: req.method() == actix_web::http::Method::HEAD,
    };
    match track(
        &state.clicks,
        offer_id,
        req.query_string().as_bytes(),
        visitor,
    )
    .await
    {
        Ok(redirect) => {
            observe(
                &state.metrics,
                redirect.offer.id.as_str(),
                &Ok(redirect.result),
            );
            Ok(HttpResponse::build(StatusCode::FOUND)
                .insert_header((header::LOCATION, redirect.location))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::REFERRER_POLICY, "no-referrer-when-downgrade"))
                .finish())
        }
        Err(error) => {
            let known = state.cache.offer(offer_id).is_some();
            observe(
                &state.metrics,
                if known { offer_id } else { "" },
                &Err(&error),
            );
            Err(ApiError::from(&error))
        }
    }
}
