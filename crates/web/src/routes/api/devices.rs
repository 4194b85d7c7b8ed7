//! `GET /api/devices`: the caller's devices, newest first (never a key or token); and
//! `POST /api/device/status`, where a modem (through the modem agent) reports its radio.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use ender_core::device::RadioStatus;
use serde::Deserialize;
use serde_json::json;

use super::auth::{ApiDevice, ApiWorkspace};
use super::format::{Paging, filter, ts};
use super::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/devices", get(list))
        .route("/device/status", post(status))
}

#[derive(Deserialize)]
struct StatusBody {
    #[serde(default)]
    signal_dbm: Option<i64>,
    #[serde(default)]
    operator: String,
    #[serde(default)]
    registration: String,
}

/// A modem's heartbeat: signal strength, operator and registration state.
async fn status(
    State(state): State<AppState>,
    ApiDevice(device): ApiDevice,
    ApiJson(body): ApiJson<StatusBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let status = RadioStatus::parse(body.signal_dbm, &body.operator, &body.registration)
        .map_err(|f| ApiError::bad_request(f.message))?;
    ender_core::device::record_status(&state.pool, device.id, &status).await?;
    Ok(Json(json!({ "success": true })))
}

async fn list(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<serde_json::Value>> {
    let paging = Paging::from_query(&q);
    let kind = filter(q.get("device_type"));
    let (items, total) = ender_core::device::page(
        &state.pool,
        workspace,
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
                "signal_dbm": d.signal_dbm, "operator": d.network_operator, "registration": d.registration,
                "status_updated": ts(d.status_at),
                "created": ts(Some(d.created_at)), "updated": ts(Some(d.updated_at)),
            })
        })
        .collect();
    Ok(Json(paging.wrap(items, total)))
}
