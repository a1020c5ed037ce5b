//! Turning a request's `Authorization: Bearer <secret>` into a
//! [`Principal`]: the bootstrap admin token or an API key (`crate::access`),
//! with failed attempts rate-limited per source address and counted.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest};

use crate::access::{secret, Actor, Principal};
use crate::domain::signature::constant_time_eq;
use crate::domain::KeyRole;
use crate::error::ApiError;
use crate::state::AppState;

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// How a request failed to authenticate, for the metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Missing,
    Invalid,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
        }
    }
}

/// The principal of a request, or `401` (no or a wrong secret), or `429`
/// (its source address failed too often: it must wait, whatever it sends).
pub fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::unauthorized("the API is not set up"))?;
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let ip = state.client_ip(req.peer_addr().map(|a| a.ip()), forwarded);
    let now_ms = state.clock.now_ms();
    if let Some(wait) = ip.and_then(|ip| state.access.limiter.blocked(ip, now_ms)) {
        state
            .metrics
            .auth_failures
            .with_label_values(&["limited"])
            .inc();
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            format!("too many failed authentications from this address; retry in {wait} s"),
        )
        .retry_after(wait));
    }
    let result = check(state, req);
    if let Err((failure, _)) = &result {
        state
            .metrics
            .auth_failures
            .with_label_values(&[failure.label()])
            .inc();
        if let Some(ip) = ip {
            state.access.limiter.failed(ip, now_ms);
        }
    }
    result.map_err(|(_, error)| error)
}

fn check(state: &AppState, req: &HttpRequest) -> Result<Principal, (Failure, ApiError)> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            (
                Failure::Missing,
                ApiError::unauthorized("send Authorization: Bearer <admin token or API key>"),
            )
        })?;
    if let Some(admin) = &state.admin_token {
        if constant_time_eq(presented.as_bytes(), admin.as_bytes()) {
            return Ok(Principal {
                role: KeyRole::Admin,
                actor: Actor::Bootstrap,
            });
        }
    }
    let key = secret::key_id(presented)
        .and_then(|id| state.cache.snapshot().keys.get(id).cloned())
        .filter(|key| secret::matches(presented, &key.secret_hash));
    match key {
        Some(key) => {
            state.access.usage.used(&key.id, state.clock.now());
            Ok(Principal {
                role: key.role.clone(),
                actor: Actor::Key(key.id.clone()),
            })
        }
        None if state.admin_token.is_none() && state.cache.snapshot().keys.is_empty() => Err((
            Failure::Invalid,
            ApiError::unauthorized("the admin API is disabled: set CLICKBACK_ADMIN_TOKEN"),
        )),
        None => Err((
            Failure::Invalid,
            ApiError::unauthorized("the token is wrong, or the key was revoked"),
        )),
    }
}
