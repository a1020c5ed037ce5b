//! `GET|POST /postback`: the advertiser's server-to-server conversion call (API.md §2).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::domain::query::{Params, MAX_PARAMS_LEN};
use crate::domain::signature::SignatureError;
use crate::domain::OfferId;
use crate::error::ApiError;
use crate::postback::{
    convert, names, PostbackContext, PostbackError, PostbackLogEntry, PostbackOutcome,
    PostbackRequest,
};
use crate::state::AppState;

/// The postback as a query string.
pub async fn postback_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string().as_bytes());
    respond(&req, &state, params.map_err(ApiError::from)).await
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

fn read_body(req: &HttpRequest, body: &[u8]) -> Result<Params, ApiError> {
    if body.len() > MAX_PARAMS_LEN {
        return Err(ApiError::invalid(format!(
            "body is longer than {MAX_PARAMS_LEN} bytes"
        )));
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
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/x-www-form-urlencoded or application/json",
        ));
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
fn json_params(body: &[u8]) -> Result<Params, ApiError> {
    let RawMembers(members) = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("body is not a JSON object: {e}")))?;
    let mut pairs = Vec::with_capacity(members.len());
    for (name, raw) in members {
        if !names::all().any(|known| known == name) {
            return Err(ApiError::invalid(format!("unknown field {name:?}")));
        }
        let raw = raw.get();
        let text = match raw.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(raw)
                .map_err(|e| ApiError::invalid(format!("{name}: {e}")))?,
            Some(b'-' | b'0'..=b'9') => raw.to_owned(),
            Some(b'n') => continue,
            _ => {
                return Err(ApiError::invalid(format!(
                    "{name} must be a string or a number"
                )))
            }
        };
        if text.contains('\0') {
            return Err(ApiError::invalid(format!(
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
    params: Result<Params, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let remote_ip = state.client_ip(
        req.peer_addr().map(|a| a.ip()),
        req.headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok()),
    );
    let parsed = params.and_then(|p| {
        let request = PostbackRequest::from_params(&p).map_err(ApiError::from)?;
        Ok((p, request))
    });
    let (outcome, offer_id, request) = match &parsed {
        Ok((params, request)) => {
            let context = PostbackContext { remote_ip, params };
            let PostbackOutcome { result, offer_id } = convert(state, request, context).await;
            (
                result.map_err(|e| to_api_error(state, e)),
                offer_id,
                Some(request),
            )
        }
        Err(e) => (Err(e.clone()), None, None),
    };
    log_postback(state, offer_id, request, remote_ip, &outcome);
    match outcome {
        Ok(answer) => {
            state
                .metrics
                .postbacks
                .with_label_values(&[answer.label()])
                .inc();
            let newly_approved = answer.conversion_status
                == crate::domain::ConversionStatus::Approved
                && matches!(answer.status, "credited" | "updated");
            if newly_approved {
                state
                    .metrics
                    .conversions
                    .with_label_values(&[&answer.offer_id])
                    .inc();
                let units = answer.payout.micros() as f64 / 1_000_000.0;
                state
                    .metrics
                    .payout
                    .with_label_values(&[&answer.offer_id, &answer.currency])
                    .inc_by(units);
            }
            Ok(HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(answer))
        }
        Err(error) => {
            let label = match error.reason {
                "invalid_request" | "currency_mismatch" | "unsupported_media_type" => "invalid",
                "store_unavailable" => "store_error",
                other => other,
            };
            state.metrics.postbacks.with_label_values(&[label]).inc();
            Err(error)
        }
    }
}

/// Files the postback in its offer's troubleshooting log, in the background:
/// the advertiser's answer never waits for it, and losing an entry while
/// Redis is down costs nothing but the entry.
fn log_postback(
    state: &AppState,
    offer_id: Option<OfferId>,
    request: Option<&PostbackRequest>,
    remote_ip: Option<std::net::IpAddr>,
    outcome: &Result<crate::postback::PostbackAnswer, ApiError>,
) {
    let entry = PostbackLogEntry::new(request, remote_ip, outcome);
    let Ok(entry) = serde_json::to_string(&entry) else {
        return;
    };
    state.postback_log.append(offer_id, entry);
}

fn to_api_error(state: &AppState, error: PostbackError) -> ApiError {
    use actix_web::http::StatusCode;
    match error {
        PostbackError::Invalid(e) => ApiError::from(e),
        PostbackError::InvalidToken => ApiError::invalid_token(),
        PostbackError::UnknownClick => ApiError::not_found(
            "unknown_click",
            "no click with this id, or its attribution window is over",
        ),
        PostbackError::CurrencyMismatch { given, expected } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "currency_mismatch",
            format!("currency {given} differs from the offer's currency {expected}"),
        ),
        PostbackError::IpNotAllowed => ApiError::new(
            StatusCode::FORBIDDEN,
            "ip_not_allowed",
            "this offer accepts postbacks only from its allow-listed IPs; ask the network to add yours",
        ),
        PostbackError::InvalidSignature(why) => ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            match why {
                SignatureError::Missing => "this offer requires signed postbacks: send ts and sig (see the signing guide)",
                SignatureError::Expired => "ts is more than 5 minutes away from the server's clock; sign each request afresh",
                SignatureError::Mismatch => "sig does not match the request's parameters",
            },
        ),
        PostbackError::Replayed => ApiError::new(
            StatusCode::FORBIDDEN,
            "replayed",
            "this signature was already used; sign each request afresh with a new ts",
        ),
        PostbackError::Store(e) => {
            if matches!(e, crate::store::StoreError::Unavailable(_)) {
                state.metrics.store_error("postback");
            }
            ApiError::from(e)
        }
    }
}
