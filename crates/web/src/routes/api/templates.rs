//! Message templates through the API: list, create, show, replace and delete the caller's
//! templates (bodies with `{{variables}}`, sent with `POST /api/sms/send-template`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use ender_core::template::{Template, TemplateId, TemplateInput, TemplateStoreError, repo};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::ApiWorkspace;
use super::format::{Paging, ts};
use super::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/templates", get(list).post(create))
        .route("/templates/{id}", get(show).put(update).delete(remove))
}

impl From<TemplateStoreError> for ApiError {
    fn from(e: TemplateStoreError) -> Self {
        match e {
            TemplateStoreError::Invalid(errors) => ApiError::invalid(&errors),
            TemplateStoreError::DuplicateName(_) | TemplateStoreError::InUse(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            TemplateStoreError::NotFound => not_found(),
            TemplateStoreError::TooMany(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
            TemplateStoreError::Database(d) => d.into(),
        }
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("Template not found.")
}

fn template_id(raw: &str) -> ApiResult<TemplateId> {
    raw.parse().map_err(|_| not_found())
}

fn template_json(t: &Template) -> Value {
    json!({
        "id": t.id.to_string(), "name": t.name, "body": t.body, "variables": t.variables(),
        "created": ts(Some(t.created_at)), "updated": ts(Some(t.updated_at)),
    })
}

/// A template as a request gives it; a field left out is empty (and refused).
#[derive(Deserialize)]
struct TemplateBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    body: String,
}

impl TemplateBody {
    fn parse(&self) -> ApiResult<TemplateInput> {
        TemplateInput::parse(&self.name, &self.body).map_err(|e| ApiError::invalid(&e))
    }
}

/// The caller's templates by name.
async fn list(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let paging = Paging::from_query(&q);
    let (items, total) = repo::list(&state.pool, workspace, paging.offset(), paging.per_page).await?;
    Ok(Json(
        paging.wrap(items.iter().map(template_json).collect(), total),
    ))
}

async fn create(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    ApiJson(b): ApiJson<TemplateBody>,
) -> ApiResult<Json<Value>> {
    let t = repo::create(
        &state.pool,
        workspace,
        &b.parse()?,
        state.sms.limits.max_templates,
    )
    .await?;
    Ok(Json(template_json(&t)))
}

async fn show(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = repo::find(&state.pool, workspace, template_id(&raw)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(template_json(&t)))
}

async fn update(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    ApiJson(b): ApiJson<TemplateBody>,
) -> ApiResult<Json<Value>> {
    let id = template_id(&raw)?;
    let t = repo::update(&state.pool, workspace, id, &b.parse()?).await?;
    Ok(Json(template_json(&t)))
}

/// Deletes the template unless a scheduled send uses it (409).
async fn remove(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    repo::delete(&state.pool, workspace, template_id(&raw)?).await?;
    Ok(Json(json!({ "success": true })))
}
