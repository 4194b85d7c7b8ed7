//! `GET /api/devices`: the caller's devices, newest first (never a key or token).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::ApiResult;
use super::auth::ApiUser;
use super::format::{Paging, filter, ts};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/devices", get(list))
}

async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<serde_json::Value>> {
    let paging = Paging::from_query(&q);
    let kind = filter(q.get("device_type"));
    let (items, total) = ender_core::device::page(
        &state.pool,
        user,
        kind.as_deref(),
        paging.per_page,
        paging.offset(),
    )
    .await?;
    let window = state.sms.device_seen_window_secs;
    let items: Vec<_> = items
        .iter()
        .map(|d| {
            json!({
                "id": d.id.to_string(), "name": d.name, "device_type": d.kind, "phone_number": d.phone_number,
                "enabled": d.enabled, "online": d.is_online(window), "last_seen": ts(d.last_seen_at),
                "created": ts(Some(d.created_at)), "updated": ts(Some(d.updated_at)),
            })
        })
        .collect();
    Ok(Json(paging.wrap(items, total)))
}
