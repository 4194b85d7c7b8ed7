//! Webhook endpoints through the API: list, create (the secret is in the answer), show,
//! update, delete, reveal and rotate the secret; and Vendel's `POST /api/webhooks/test` and
//! `POST /api/webhooks/retry`, which deliver at once and report the attempt.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use ender_core::webhook::endpoint::{self, Endpoint, EndpointError, EndpointInput};
use ender_core::webhook::{Event, Payload};
use ender_worker::webhooks::Attempt;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::ApiUser;
use super::format::ts;
use super::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(show).put(update).delete(remove))
        .route("/webhooks/{id}/secret", get(secret))
        .route("/webhooks/{id}/rotate-secret", post(rotate))
        .route("/webhooks/test", post(test))
        .route("/webhooks/retry", post(retry))
}

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::Invalid(f) => ApiError::bad_request(f.message),
            EndpointError::NotFound => ApiError::not_found("Webhook not found."),
            EndpointError::Database(d) => d.into(),
            EndpointError::Secret(s) => {
                tracing::error!(error = %s, "a webhook secret could not be opened");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
            }
        }
    }
}

fn endpoint_json(e: &Endpoint) -> Value {
    json!({
        "id": e.id.to_string(), "url": e.url, "description": e.description, "events": e.events,
        "device_id": e.device_id.map(|d| d.to_string()).unwrap_or_default(), "include_body": e.include_body,
        "active": e.active, "disabled_reason": e.disabled_reason, "created": ts(Some(e.created_at)),
    })
}

fn endpoint_id(raw: &str) -> ApiResult<Uuid> {
    raw.parse().map_err(|_| ApiError::not_found("Webhook not found."))
}

#[derive(Deserialize)]
struct EndpointBody {
    url: String,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    include_body: bool,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

fn parse(state: &AppState, b: &EndpointBody) -> ApiResult<EndpointInput> {
    EndpointInput::parse(
        &b.url,
        &b.events,
        &b.description,
        b.device_id.as_deref(),
        b.include_body,
        &state.webhooks.allow,
    )
    .map_err(|f| ApiError::bad_request(f.message))
}

async fn list(State(state): State<AppState>, ApiUser(user): ApiUser) -> ApiResult<Json<Value>> {
    let items: Vec<Value> = endpoint::list(&state.pool, user)
        .await?
        .iter()
        .map(endpoint_json)
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(b): ApiJson<EndpointBody>,
) -> ApiResult<Json<Value>> {
    let input = parse(&state, &b)?;
    let (e, secret) = endpoint::create(&state.pool, &state.webhooks.keyring, user, &input).await?;
    let mut v = endpoint_json(&e);
    v["secret"] = json!(secret);
    Ok(Json(v))
}

async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(endpoint_json(
        &endpoint::find(&state.pool, user, endpoint_id(&raw)?).await?,
    )))
}

async fn update(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(raw): Path<String>,
    ApiJson(b): ApiJson<EndpointBody>,
) -> ApiResult<Json<Value>> {
    let id = endpoint_id(&raw)?;
    let input = parse(&state, &b)?;
    endpoint::update(&state.pool, user, id, &input, b.active).await?;
    Ok(Json(endpoint_json(&endpoint::find(&state.pool, user, id).await?)))
}

async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    endpoint::delete(&state.pool, user, endpoint_id(&raw)?).await?;
    Ok(Json(json!({ "success": true })))
}

async fn secret(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let secret =
        endpoint::reveal_secret(&state.pool, &state.webhooks.keyring, user, endpoint_id(&raw)?).await?;
    Ok(Json(json!({ "secret": secret })))
}

#[derive(Deserialize, Default)]
struct RotateBody {
    /// Hours the previous secret keeps signing (0 revokes it at once). Default 24.
    #[serde(default)]
    overlap_hours: Option<i64>,
}

async fn rotate(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let body: RotateBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("Invalid request body."))?
    };
    let hours = body.overlap_hours.unwrap_or(24);
    if !(0..=720).contains(&hours) {
        return Err(ApiError::bad_request("overlap_hours must be between 0 and 720."));
    }
    let secret = endpoint::rotate_secret(
        &state.pool,
        &state.webhooks.keyring,
        user,
        endpoint_id(&raw)?,
        Duration::hours(hours),
    )
    .await?;
    Ok(Json(json!({ "secret": secret })))
}

fn attempt_json(a: &Attempt) -> Value {
    json!({
        "delivery_status": a.delivery_status,
        "response_status": a.response_status.unwrap_or(0),
        "duration_ms": a.duration_ms,
        "error_message": a.error,
        "log_id": a.id.to_string(),
    })
}

#[derive(Deserialize)]
struct TestBody {
    webhook_id: String,
}

/// Sends a `test` event to the endpoint now (also to a disabled one: it says so).
async fn test(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(b): ApiJson<TestBody>,
) -> ApiResult<Json<Value>> {
    let e = endpoint::find(&state.pool, user, endpoint_id(&b.webhook_id)?).await?;
    let message_id = format!("test_{}", Uuid::now_v7().simple());
    let body = Payload::new(Event::Test, &message_id, Utc::now())
        .with("from", "+15550000000")
        .with("body", "This is a test event from Ender.")
        .to_bytes();
    let delivery = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO webhook_deliveries (id, endpoint_id, user_id, event, message_id, body, status)
         VALUES ($1, $2, $3, 'test', $4, $5, 'failed')",
        delivery,
        e.id,
        user.0,
        message_id,
        body
    )
    .execute(&state.pool)
    .await?;
    let attempt = state
        .webhooks
        .deliverer
        .deliver_now(delivery)
        .await?
        .ok_or_else(|| ApiError::not_found("Webhook not found."))?;
    let mut v = attempt_json(&attempt);
    v["endpoint_active"] = json!(e.active);
    Ok(Json(v))
}

#[derive(Deserialize)]
struct RetryBody {
    log_id: String,
}

/// Sends the delivery of an earlier attempt again, now, with the same id and bytes.
async fn retry(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(b): ApiJson<RetryBody>,
) -> ApiResult<Json<Value>> {
    let not_found = || ApiError::not_found("Delivery log not found.");
    let log_id: i64 = b.log_id.trim().parse().map_err(|_| not_found())?;
    let delivery = sqlx::query_scalar!(
        "SELECT a.delivery_id FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
         WHERE a.id = $1 AND d.user_id = $2",
        log_id,
        user.0
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(not_found)?;
    let attempt = state
        .webhooks
        .deliverer
        .deliver_now(delivery)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "This delivery is being sent right now; try again in a moment.",
            )
        })?;
    Ok(Json(attempt_json(&attempt)))
}
