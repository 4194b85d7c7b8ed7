//! The JSON API's error envelope and its fallbacks. Every answer under `/api/` is JSON.

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
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "data": {}, "message": self.message, "status": self.status.as_u16() });
        (self.status, Json(body)).into_response()
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not found.") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
        })
}
