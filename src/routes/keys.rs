//! `/api/v1/keys`: API keys for affiliates, advertisers and further admins
//! (admin only). The secret is answered once, by `POST`, and stored only as
//! a hash; `DELETE` revokes a key on every instance within
//! `CLICKBACK_CONFIG_REFRESH_MS`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::admin::{json_body, path_id, Admin};
use super::schemas::{
    BadRequest, BearerFailures, ErrorBody, NotFound, PayloadTooLarge, RequestTimeout,
};
use crate::access::secret;
use crate::audit::{self, json_of, Action};
use crate::domain::party::KeyInput;
use crate::domain::{ApiKey, KeyRole};
use crate::error::ApiError;
use crate::metrics::StoreOperation;
use crate::state::AppState;

/// A key as listed: never its secret or hash.
#[derive(Serialize, utoipa::ToSchema)]
struct KeyView<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(flatten)]
    role: &'a KeyRole,
    created_at: u64,
    /// Unix seconds, written at most once a minute; `null`: never used.
    last_used_at: Option<u64>,
}

impl<'a> KeyView<'a> {
    fn of(key: &'a ApiKey, last_used_at: Option<u64>) -> Self {
        Self {
            id: &key.id,
            name: &key.name,
            role: &key.role,
            created_at: key.created_at,
            last_used_at,
        }
    }
}

/// The answer to `POST`: the key and, this once, its secret.
#[derive(Serialize, utoipa::ToSchema)]
struct Created<'a> {
    #[serde(flatten)]
    key: KeyView<'a>,
    secret: &'a str,
}

/// `{"keys":[..]}`.
#[derive(Serialize, utoipa::ToSchema)]
struct KeyList<'a> {
    keys: Vec<KeyView<'a>>,
}

/// `{"id":..,"status":"revoked"}`.
#[derive(Serialize, utoipa::ToSchema)]
struct Revoked<'a> {
    id: &'a str,
    /// Always `revoked`.
    #[schema(example = "revoked")]
    status: &'static str,
}

/// `POST /api/v1/keys`: creates a key for an existing affiliate or
/// advertiser, or an admin key. `201` with the secret, shown only here.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "admin",
    operation_id = "create_key",
    summary = "Creates an API key; its secret is answered this once",
    request_body(content = KeyInput),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The key and its secret", body = Created<'_>, links(
            ("RevokeKey" = (operation_id = "revoke_key", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 400, response = BadRequest),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn create_key(
    Admin(who): Admin,
    body: super::RequestBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (role, name) = json_body::<KeyInput>(&body)?.parse()?;
    let unknown = match &role {
        KeyRole::Affiliate { aff_id } => state
            .cache
            .affiliate(aff_id.as_str())
            .is_none()
            .then(|| format!("aff_id: no affiliate {aff_id}")),
        KeyRole::Advertiser { advertiser_id } => state
            .cache
            .advertiser(advertiser_id.as_str())
            .is_none()
            .then(|| format!("advertiser_id: no advertiser {advertiser_id}")),
        KeyRole::Admin => None,
    };
    if let Some(detail) = unknown {
        return Err(ApiError::invalid(detail));
    }
    let minted = secret::mint();
    let key = ApiKey {
        id: minted.id.clone(),
        name,
        role,
        secret_hash: minted.hash.clone(),
        created_at: state.clock.now(),
    };
    state
        .store
        .put_api_key(&key)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::Access))?;
    state.cache.reload(state.store.as_ref()).await?;
    let view = KeyView::of(&key, None);
    audit::record(
        &state,
        &who.actor,
        Action::CreateKey,
        &key.id,
        serde_json::Value::Null,
        json_of(&view),
    )
    .await;
    Ok(HttpResponse::build(StatusCode::CREATED)
        .insert_header(("Cache-Control", "no-store"))
        .json(Created {
            key: view,
            secret: &minted.secret,
        }))
}

/// `GET /api/v1/keys`: every key, oldest first, with its last use.
#[utoipa::path(
    method(get, head),
    path = "/api/v1/keys",
    tag = "admin",
    operation_id = "list_keys",
    summary = "Every key, oldest first, without secrets",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every key", body = KeyList<'_>),
        (status = 404, response = NotFound),
        BearerFailures,
    )
)]
pub async fn list_keys(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let used = state
        .store
        .read_key_use()
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::Access))?;
    let snapshot = state.cache.snapshot();
    let mut keys: Vec<&ApiKey> = snapshot.keys.values().map(AsRef::as_ref).collect();
    keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(HttpResponse::Ok().json(KeyList {
        keys: keys
            .into_iter()
            .map(|key| KeyView::of(key, used.get(&key.id).copied()))
            .collect(),
    }))
}

/// `DELETE /api/v1/keys/{id}`: revokes a key, at once on this instance and
/// at the next config poll on every other.
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "admin",
    operation_id = "revoke_key",
    summary = "Revokes a key",
    params(("id" = String, Path, description = "The key id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked", body = Revoked<'_>),
        (status = 404, description = "unknown_key, or not_found for a scoped key", body = ErrorBody),
        BearerFailures,
    )
)]
pub async fn revoke_key(
    Admin(who): Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "id");
    let unknown = || ApiError::not_found("unknown_key", "no key with this id");
    let before = state.cache.snapshot().keys.get(id).cloned();
    let deleted = state
        .store
        .delete_api_key(id)
        .await
        .inspect_err(|_| state.metrics.store_error(StoreOperation::Access))?;
    if !deleted {
        return Err(unknown());
    }
    state.cache.reload(state.store.as_ref()).await?;
    audit::record(
        &state,
        &who.actor,
        Action::RevokeKey,
        id,
        json_of(&before.as_deref().map(|key| KeyView::of(key, None))),
        serde_json::Value::Null,
    )
    .await;
    Ok(HttpResponse::Ok().json(Revoked {
        id,
        status: "revoked",
    }))
}
