//! `GET|POST /postback`: the advertiser's server-to-server conversion call (API.md §2).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::schemas::{
    BadRequest, ErrorBody, PayloadTooLarge, PostbackBody, PostbackParams, RequestTimeout,
};
use crate::domain::postback_mapping::{global_name, Field};
use crate::domain::query::{Params, MAX_PARAMS_LEN};
use crate::domain::DomainError;
use crate::error::ApiError;
use crate::postback::log::PostbackLogEntry;
use crate::postback::outcome::{observe, observe_warning, PostbackAnswer, PostbackWarning};
use crate::postback::{PostbackContext, PostbackError, PostbackOutcome, PostbackRequest};
use crate::state::AppState;

/// The postback as a query string.
#[utoipa::path(
    get,
    path = "/postback",
    tag = "tracking",
    operation_id = "postback",
    summary = "An advertiser's server-to-server conversion",
    params(
        ("click_id" = String, Query, min_length = 1, description = "The click id the redirect handed the advertiser (or under another platform's name, API.md §9)"),
        PostbackParams
    ),
    security(("postback_token" = [])),
    responses(
        (status = 200, description = "Understood: credited, pending, duplicate, updated or rejected (by a rule or the advertiser). Retrying it never credits twice", body = PostbackAnswer, links(
            ("Conversions" = (operation_id = "conversions", parameters(("offer_id" = "$response.body#/offer_id"), ("aff_id" = "$response.body#/aff_id")))),
            ("Stats" = (operation_id = "stats", parameters(("offer_id" = "$response.body#/offer_id")))),
            ("Postbacks" = (operation_id = "postback_log", parameters(("offer_id" = "$response.body#/offer_id")))),
        )),
        (status = 400, response = BadRequest),
        (status = 403, description = "invalid_token, ip_not_allowed, invalid_signature or replayed", body = ErrorBody),
        (status = 404, description = "unknown_click: no click with this id, or its attribution window is over", body = ErrorBody),
        (status = 503, description = "store_unavailable, or in_progress (an identical postback is being decided): nothing was recorded, retry", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds"))),
    )
)]
pub async fn postback_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes())
        .map(|p| (p, Vec::new()))
        .map_err(PostbackError::from);
    respond(&req, &state, params).await
}

/// The postback as a form or JSON body (query parameters count too, so a
/// token can sit in the URL while the body carries the conversion).
#[utoipa::path(
    post,
    path = "/postback",
    tag = "tracking",
    operation_id = "postback_post",
    summary = "An advertiser's server-to-server conversion, as a form or JSON body",
    params(PostbackParams),
    request_body(
        description = "The postback's fields (a JSON object's members: strings or numbers; other members are listed in the log's ignored_params). Query parameters count too.",
        content(
            (PostbackBody = "application/x-www-form-urlencoded"),
            (PostbackBody = "application/json"),
        )
    ),
    security(("postback_token" = [])),
    responses(
        (status = 200, description = "Understood: credited, pending, duplicate, updated or rejected (by a rule or the advertiser). Retrying it never credits twice", body = PostbackAnswer, links(
            ("Conversions" = (operation_id = "conversions", parameters(("offer_id" = "$response.body#/offer_id"), ("aff_id" = "$response.body#/aff_id")))),
            ("Stats" = (operation_id = "stats", parameters(("offer_id" = "$response.body#/offer_id")))),
            ("Postbacks" = (operation_id = "postback_log", parameters(("offer_id" = "$response.body#/offer_id")))),
        )),
        (status = 400, response = BadRequest),
        (status = 403, description = "invalid_token, ip_not_allowed, invalid_signature or replayed", body = ErrorBody),
        (status = 404, description = "unknown_click: no click with this id, or its attribution window is over", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, description = "unsupported_media_type: send a form or JSON", body = ErrorBody),
        (status = 503, description = "store_unavailable, or in_progress (an identical postback is being decided): nothing was recorded, retry", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds"))),
    )
)]
pub async fn postback_post(
    req: HttpRequest,
    body: super::RequestBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = read_body(&req, &body);
    respond(&req, &state, params).await
}

/// The parameters of a postback, and the names of JSON members that are
/// neither strings nor numbers (read by no rule, listed in the log).
type Read = (Params, Vec<String>);

fn read_body(req: &HttpRequest, body: &[u8]) -> Result<Read, PostbackError> {
    if body.len() > MAX_PARAMS_LEN {
        return Err(
            DomainError::invalid(format!("body is longer than {MAX_PARAMS_LEN} bytes")).into(),
        );
    }
    let mut params = Params::parse(req.query_string().as_bytes())?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (body_params, unread) = if content_type.starts_with("application/json") {
        json_params(body)?
    } else if content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.is_empty()
    {
        (Params::parse(body)?, Vec::new())
    } else {
        return Err(PostbackError::UnsupportedMediaType);
    };
    params.extend(body_params);
    Ok((params, unread))
}

/// A JSON object whose members are strings or numbers, like a form's
/// fields. A member clickback does not know is no error, as in a form: it
/// is listed in the log's `ignored_params` (objects, arrays and booleans
/// only there; strings and numbers also reach an offer's
/// `postback_mapping` and the signature). A known name must be a string
/// or a number.
///
/// Numbers are read as the text the sender wrote, never through a binary
/// float: `19.99` is `"19.99"`, while `1e3` or `0.12345678` reach the money
/// parser as written and are refused instead of being rounded. A field given
/// twice is kept twice, so conflicting values are refused like in a query.
fn json_params(body: &[u8]) -> Result<Read, DomainError> {
    let RawMembers(members) = serde_json::from_slice(body)
        .map_err(|e| DomainError::invalid(format!("body is not a JSON object: {e}")))?;
    let mut pairs = Vec::with_capacity(members.len());
    let mut unread = Vec::new();
    for (name, raw) in members {
        let raw = raw.get();
        let text = match raw.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(raw)
                .map_err(|e| DomainError::invalid(format!("{name}: {e}")))?,
            Some(b'-' | b'0'..=b'9') => raw.to_owned(),
            Some(b'n') => continue,
            _ if global_name(&name).is_some() => {
                return Err(DomainError::invalid(format!(
                    "{name} must be a string or a number"
                )))
            }
            _ => {
                unread.push(name);
                continue;
            }
        };
        if text.contains('\0') {
            return Err(DomainError::invalid(format!(
                "{name}: NUL bytes are not allowed"
            )));
        }
        pairs.push((name, text));
    }
    Ok((Params::from_pairs(pairs), unread))
}

/// A JSON object's members in document order, each value as its raw JSON text.
struct RawMembers<'a>(Vec<(String, &'a serde_json::value::RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawMembers<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Members<'a> {
            type Value = RawMembers<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(RawMembers(members))
            }
        }
        d.deserialize_map(Members(std::marker::PhantomData))
    }
}

async fn respond(
    req: &HttpRequest,
    state: &AppState,
    params: Result<Read, PostbackError>,
) -> Result<HttpResponse, ApiError> {
    let remote_ip = state.client_ip(
        req.peer_addr().map(|a| a.ip()),
        req.headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok()),
    );
    // Parse.
    let mut unread = Vec::new();
    let parsed = params.and_then(|(p, json_unread)| {
        unread = json_unread;
        let request = PostbackRequest::from_params(&p, || mapped_click_id_names(state))?;
        Ok((p, request))
    });
    // The pipeline.
    let (result, offer_id, request) = match parsed {
        Ok((params, request)) => {
            let context = PostbackContext {
                remote_ip,
                params: &params,
            };
            let PostbackOutcome {
                result,
                offer_id,
                mapped,
            } = state.postbacks.handle(&request, context).await;
            (result, offer_id, Some(mapped.unwrap_or(request)))
        }
        Err(e) => (Err(e), None, None),
    };
    // Answer: the troubleshooting log, the metrics, the HTTP response.
    let mut entry = PostbackLogEntry::new(request.as_ref(), remote_ip, &result, state.clock.now());
    entry.also_ignored(&unread);
    observe(&state.metrics, &result);
    if let Ok(answer) = &result {
        if let Some(warning) = PostbackWarning::of(answer, &entry.ignored_params) {
            entry.warn(warning);
            observe_warning(&state.metrics, warning);
        }
    }
    state.postback_log.append(offer_id, &entry);
    match result {
        Ok(answer) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(answer)),
        Err(error) => Err(ApiError::from(&error)),
    }
}

/// The names offers' `postback_mapping`s give the click id: asked only for
/// a postback that carries no click id under a global name.
fn mapped_click_id_names(state: &AppState) -> Vec<String> {
    let snapshot = state.cache.snapshot();
    let mut names: Vec<String> = Vec::new();
    for mapping in snapshot
        .offers
        .values()
        .filter_map(|offer| offer.postback_mapping.as_ref())
    {
        for name in mapping.names_of(Field::ClickId) {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    names
}
