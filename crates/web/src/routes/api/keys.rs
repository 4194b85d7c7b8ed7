//! Integration keys through the API: list (paged), create (the key is in the answer, once),
//! revoke, rotate. A key is created with the scopes asked for (default: what the Vendel
//! SDKs need), never with a scope the caller's own key lacks.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use ender_core::apikey::{self, ApiKey, ApiKeyError, ApiKeyId, NewApiKey, Scopes};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{ApiCaller, ApiWorkspace};
use super::format::{Paging, ts};
use super::{ApiError, ApiResult};
use crate::audit::note;
use crate::extract::ApiJson;
use crate::state::AppState;
use ender_core::workspace::audit::kind;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api-keys", get(list).post(create))
        .route("/api-keys/{id}", delete(revoke))
        .route("/api-keys/{id}/rotate", post(rotate))
}

impl From<ApiKeyError> for ApiError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::Database(d) => d.into(),
            ApiKeyError::NotFound => ApiError::not_found("API key not found."),
            ApiKeyError::TooMany(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
            ApiKeyError::Invalid(f) => ApiError::bad_request(f.message),
        }
    }
}

fn key_json(k: &ApiKey) -> Value {
    json!({
        "id": k.id.to_string(), "name": k.name, "prefix": k.prefix, "active": k.is_active(),
        "scopes": k.scopes.names(),
        "expires_at": ts(k.expires_at), "last_used": ts(k.last_used_at), "revoked_at": ts(k.revoked_at),
        "created": ts(Some(k.created_at)),
    })
}

fn new_key_json(k: &NewApiKey) -> Value {
    let mut v = key_json(&k.key);
    v["key"] = json!(k.secret);
    v
}

fn key_id(raw: &str) -> ApiResult<ApiKeyId> {
    raw.parse::<uuid::Uuid>()
        .map(ApiKeyId)
        .map_err(|_| ApiError::not_found("API key not found."))
}

/// One page of the caller's keys, newest first: `page` and `per_page`.
async fn list(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let paging = Paging::from_query(&q);
    let (keys, total) = apikey::page(&state.pool, workspace, paging.per_page, paging.offset()).await?;
    Ok(Json(paging.wrap(keys.iter().map(key_json).collect(), total)))
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    #[serde(default)]
    expires_at: Option<String>,
    /// A legacy Vendel key (`ek_…`) to keep accepting, instead of a new key.
    #[serde(default)]
    legacy_key: Option<String>,
    /// Scope names; absent means the default set.
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Json<Value>> {
    let scopes = match &body.scopes {
        None => Scopes::default_for_new_keys(),
        Some(names) => Scopes::parse_requested(names).map_err(|f| ApiError::bad_request(f.message))?,
    };
    if let Some(missing) = scopes.iter().find(|s| !caller.scopes.contains(*s)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("A key cannot grant the `{missing}` scope, which it does not have itself."),
        ));
    }
    let expires_at: Option<DateTime<Utc>> = match body
        .expires_at
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| ApiError::bad_request("Invalid expires_at; expected ISO8601 (RFC3339)."))?
                .to_utc(),
        ),
    };
    if let Some(legacy) = body
        .legacy_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        let key = apikey::import_legacy(
            &state.pool,
            caller.workspace,
            caller.user,
            &body.name,
            legacy,
            scopes,
            state.limits(caller.workspace).await?.api_keys,
        )
        .await?;
        note(
            &state,
            caller.workspace,
            caller.actor,
            kind::KEY_CREATED,
            &key.name,
            json!({ "legacy": true }),
        )
        .await;
        return Ok(Json(key_json(&key)));
    }
    let created = apikey::create(
        &state.pool,
        caller.workspace,
        caller.user,
        &body.name,
        scopes,
        expires_at,
        state.limits(caller.workspace).await?.api_keys,
    )
    .await?;
    let scopes = json!({ "scopes": created.key.scopes.names() });
    note(
        &state,
        caller.workspace,
        caller.actor,
        kind::KEY_CREATED,
        &created.key.name,
        scopes,
    )
    .await;
    Ok(Json(new_key_json(&created)))
}

async fn revoke(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = key_id(&raw)?;
    let key = apikey::find(&state.pool, caller.workspace, id).await?;
    apikey::revoke(&state.pool, caller.workspace, id).await?;
    note(
        &state,
        caller.workspace,
        caller.actor,
        kind::KEY_REVOKED,
        &key.name,
        json!({}),
    )
    .await;
    Ok(Json(json!({ "success": true })))
}

async fn rotate(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let created = apikey::rotate(&state.pool, caller.workspace, caller.user, key_id(&raw)?).await?;
    note(
        &state,
        caller.workspace,
        caller.actor,
        kind::KEY_ROTATED,
        &created.key.name,
        json!({}),
    )
    .await;
    Ok(Json(new_key_json(&created)))
}
