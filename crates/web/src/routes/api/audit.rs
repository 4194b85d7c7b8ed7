//! `GET /api/audit`: the workspace's audit trail, newest first, paged like every list
//! (`page`, `per_page`). Owners and admins from their session; a key needs every scope.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use ender_core::workspace::audit;
use serde_json::{Value, json};

use super::ApiResult;
use super::auth::ApiWorkspace;
use super::format::{Paging, ts};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

async fn list(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let paging = Paging::from_query(&q);
    let (entries, total) = audit::numbered(&state.pool, workspace, paging.per_page, paging.offset()).await?;
    let items = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "detail": e.detail,
                "created_at": ts(Some(e.created_at)),
            })
        })
        .collect();
    Ok(Json(paging.wrap(items, total)))
}
