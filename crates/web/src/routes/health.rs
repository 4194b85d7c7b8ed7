//! Liveness and readiness probes, and the Vendel-compatible API health check.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/health", get(api_health))
        .route("/api/openapi.yaml", get(openapi))
}

/// The process is alive (no dependency is checked).
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: the database answers. 503 while it does not.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if ender_core::db::is_ready(&state.pool).await {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "database unavailable" })),
        )
    }
}

async fn api_health() -> impl IntoResponse {
    Json(json!({ "message": "API is healthy.", "code": 200, "data": {} }))
}

/// The API's OpenAPI document (docs/openapi.yaml, compiled in).
async fn openapi() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/yaml; charset=utf-8",
        )],
        include_str!("../../../../docs/openapi.yaml"),
    )
}
