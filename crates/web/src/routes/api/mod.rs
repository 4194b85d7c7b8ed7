//! The JSON API under `/api/`: the integration API (Vendel-compatible), the device API
//! and device streams. Every answer under `/api/` is JSON (or an event stream).

mod audit;
pub mod auth;
pub mod billing;
mod contacts;
mod devices;
pub mod format;
mod keys;
mod realtime;
mod schedules;
mod sms;
mod templates;
mod webhooks;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// `{"data":{}, "message":"…", "status":N}` with the matching HTTP status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// What `data` holds: empty, except `errors` (field → message) on a refused form.
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            data: serde_json::Map::new(),
        }
    }

    /// 400 with the first problem as the message and every problem in `data.errors`
    /// (the first message per field).
    pub fn invalid(errors: &[ender_core::FieldError]) -> Self {
        let message = errors.first().map_or("Invalid input.", |e| e.message.as_str());
        let mut fields = serde_json::Map::new();
        for e in errors {
            fields.entry(e.field).or_insert_with(|| json!(e.message));
        }
        let mut err = Self::bad_request(message);
        err.data.insert("errors".to_owned(), fields.into());
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "data": self.data, "message": self.message, "status": self.status.as_u16() });
        (self.status, Json(body)).into_response()
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if ender_core::db::is_unavailable(&e) {
            tracing::warn!("database unavailable; answering 503");
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable.",
            )
        } else {
            tracing::error!(error = %e, "API request failed");
            Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(sms::routes())
        .merge(billing::routes())
        .merge(devices::routes())
        .merge(keys::routes())
        .merge(realtime::routes())
        .merge(webhooks::routes())
        .merge(contacts::routes())
        .merge(templates::routes())
        .merge(schedules::routes())
        .merge(audit::routes())
        .merge(super::exports::api_routes())
        .merge(super::admin::api_routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not found.") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
        })
}
