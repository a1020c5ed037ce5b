//! `GET|POST /postback`: the advertiser's server-to-server conversion call (API.md §2).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::domain::query::{Params, MAX_PARAMS_LEN};
use crate::domain::DomainError;
use crate::error::ApiError;
use crate::postback::log::PostbackLogEntry;
use crate::postback::outcome::observe;
use crate::postback::{names, PostbackContext, PostbackError, PostbackOutcome, PostbackRequest};
use crate::state::AppState;

/// The postback as a query string.
pub async fn postback_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes());
    respond(&req, &state, params.map_err(PostbackError::from)).await
}

/// The postback as a form or JSON body (query parameters count too, so a
/// token can sit in the URL while the body carries the conversion).
pub async fn postback_post(
    req: HttpRequest,
    body: super::RequestBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = read_body(&req, &body);
    respond(&req, &state, params).await
}

fn read_body(req: &HttpRequest, body: &[u8]) -> Result<Params, PostbackError> {
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
    let body_params = if content_type.starts_with("application/json") {
        json_params(body)?
    } else if content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.is_empty()
    {
        Params::parse(body)?
    } else {
        return Err(PostbackError::UnsupportedMediaType);
    };
    params.extend(body_params);
    Ok(params)
}

/// A JSON object of strings or numbers; anything else, including unknown
/// fields, is refused so that a typo (`"amuont"`) never credits silently.
///
/// Numbers are read as the text the sender wrote, never through a binary
/// float: `19.99` is `"19.99"`, while `1e3` or `0.12345678` reach the money
/// parser as written and are refused instead of being rounded. A field given
/// twice is kept twice, so conflicting values are refused like in a query.
fn json_params(body: &[u8]) -> Result<Params, DomainError> {
    let RawMembers(members) = serde_json::from_slice(body)
        .map_err(|e| DomainError::invalid(format!("body is not a JSON object: {e}")))?;
    let mut pairs = Vec::with_capacity(members.len());
    for (name, raw) in members {
        if !names::all().any(|known| known == name) {
            return Err(DomainError::invalid(format!("unknown field {name:?}")));
        }
        let raw = raw.get();
        let text = match raw.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(raw)
                .map_err(|e| DomainError::invalid(format!("{name}: {e}")))?,
            Some(b'-' | b'0'..=b'9') => raw.to_owned(),
            Some(b'n') => continue,
            _ => {
                return Err(DomainError::invalid(format!(
                    "{name} must be a string or a number"
                )))
            }
        };
        if text.contains('\0') {
            return Err(DomainError::invalid(format!(
                "{name}: NUL bytes are not allowed"
            )));
        }
        pairs.push((name, text));
    }
    Ok(Params::from_pairs(pairs))
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
    params: Result<Params, PostbackError>,
) -> Result<HttpResponse, ApiError> {
    let remote_ip = state.client_ip(
        req.peer_addr().map(|a| a.ip()),
        req.headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok()),
    );
    // Parse.
    let parsed = params.and_then(|p| {
        let request = PostbackRequest::from_params(&p)?;
        Ok((p, request))
    });
    // The pipeline.
    let (result, offer_id, request) = match parsed {
        Ok((params, request)) => {
            let context = PostbackContext {
                remote_ip,
                params: &params,
            };
            let PostbackOutcome { result, offer_id } =
                state.postbacks.handle(&request, context).await;
            (result, offer_id, Some(request))
        }
        Err(e) => (Err(e), None, None),
    };
    // Answer: the troubleshooting log, the metrics, the HTTP response.
    let entry = PostbackLogEntry::new(request.as_ref(), remote_ip, &result, state.clock.now());
    state.postback_log.append(offer_id, &entry);
    observe(&state.metrics, &result);
    match result {
        Ok(answer) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(answer)),
        Err(error) => Err(ApiError::from(&error)),
    }
}
