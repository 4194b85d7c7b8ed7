//! Webhook endpoints through the API: list (paged) and show (with their health), create (the
//! secret is in the answer), update, delete, reveal and rotate the secret, re-enable and
//! replay, replay failed deliveries since a time, and the delivery log with every attempt;
//! and Vendel's `POST /api/webhooks/test` and `POST /api/webhooks/retry`, which deliver at
//! once and report the attempt.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use ender_core::webhook::endpoint::{self, Endpoint, EndpointError, EndpointInput};
use ender_core::webhook::log::{self, AttemptLog, DayStats, Delivery, DeliveryStatus, PageQuery};
use ender_core::workspace::WorkspaceId;
use ender_worker::webhooks::Attempt;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::{ApiCaller, ApiWorkspace};
use super::format::{Paging, ts};
use super::{ApiError, ApiResult};
use crate::audit::note;
use crate::extract::{ApiJson, OptionalApiJson};
use crate::state::AppState;
use ender_core::workspace::audit::kind;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(show).put(update).delete(remove))
        .route("/webhooks/{id}/secret", get(secret))
        .route("/webhooks/{id}/rotate-secret", post(rotate))
        .route("/webhooks/{id}/enable", post(enable))
        .route("/webhooks/{id}/replay", post(replay))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route("/webhooks/{id}/deliveries/{delivery_id}", get(delivery))
        .route("/webhooks/test", post(test))
        .route("/webhooks/retry", post(retry))
}

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::Invalid(f) => ApiError::bad_request(f.message),
            EndpointError::NotFound => ApiError::not_found("Webhook not found."),
            // As the other per-user caps (API keys, schedules) answer.
            EndpointError::TooMany(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
            EndpointError::Database(d) => d.into(),
            EndpointError::Secret(s) => {
                tracing::error!(error = %s, "a webhook secret could not be opened");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
            }
        }
    }
}

fn endpoint_json(e: &Endpoint, stats: DayStats) -> Value {
    json!({
        "id": e.id.to_string(), "url": e.url, "description": e.description, "events": e.events,
        "device_id": e.device_id.map(|d| d.to_string()).unwrap_or_default(), "include_body": e.include_body,
        "active": e.active, "disabled_reason": e.disabled_reason, "created": ts(Some(e.created_at)),
        "health": {
            "success_rate_24h": stats.success_rate(),
            "succeeded_24h": stats.succeeded,
            "failed_24h": stats.failed,
            "breaker": e.breaker().as_str(),
            "consecutive_failures": e.consecutive_failures,
            "failing_since": ts(e.failing_since),
            "last_failure_at": ts(e.last_failure_at),
            "last_failure": e.last_failure,
            "disabled_at": ts(e.disabled_at),
        },
    })
}

/// The owner's endpoint as JSON, with its health.
async fn endpoint_answer(state: &AppState, workspace: WorkspaceId, id: Uuid) -> ApiResult<Value> {
    let e = endpoint::find(&state.pool, workspace, id).await?;
    let stats = endpoint::day_stats(&state.pool, workspace).await?;
    Ok(endpoint_json(&e, DayStats::of(&stats, e.id)))
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

/// One page of the caller's endpoints, newest first: `page` and `per_page`.
async fn list(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let paging = Paging::from_query(&q);
    let stats = endpoint::day_stats(&state.pool, workspace).await?;
    let (endpoints, total) = endpoint::page(&state.pool, workspace, paging.per_page, paging.offset()).await?;
    let items: Vec<Value> = endpoints
        .iter()
        .map(|e| endpoint_json(e, DayStats::of(&stats, e.id)))
        .collect();
    Ok(Json(paging.wrap(items, total)))
}

async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(b): ApiJson<EndpointBody>,
) -> ApiResult<Json<Value>> {
    let workspace = caller.workspace;
    let input = parse(&state, &b)?;
    let (e, secret) = endpoint::create(
        &state.pool,
        &state.webhooks.keyring,
        workspace,
        &input,
        state.limits(workspace).await?.webhooks,
    )
    .await?;
    let detail = json!({ "webhook_id": e.id.to_string() });
    note(
        &state,
        workspace,
        caller.actor,
        kind::WEBHOOK_CREATED,
        &e.url,
        detail,
    )
    .await;
    let mut v = endpoint_json(&e, DayStats::default());
    v["secret"] = json!(secret);
    Ok(Json(v))
}

async fn show(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        endpoint_answer(&state, workspace, endpoint_id(&raw)?).await?,
    ))
}

async fn update(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(raw): Path<String>,
    ApiJson(b): ApiJson<EndpointBody>,
) -> ApiResult<Json<Value>> {
    let workspace = caller.workspace;
    let id = endpoint_id(&raw)?;
    let input = parse(&state, &b)?;
    endpoint::update(&state.pool, workspace, id, &input, b.active).await?;
    note(
        &state,
        workspace,
        caller.actor,
        kind::WEBHOOK_CHANGED,
        &b.url,
        json!({ "webhook_id": id.to_string() }),
    )
    .await;
    Ok(Json(endpoint_answer(&state, workspace, id).await?))
}

async fn remove(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = endpoint_id(&raw)?;
    let e = endpoint::find(&state.pool, caller.workspace, id).await?;
    endpoint::delete(&state.pool, caller.workspace, id).await?;
    note(
        &state,
        caller.workspace,
        caller.actor,
        kind::WEBHOOK_DELETED,
        &e.url,
        json!({ "webhook_id": id.to_string() }),
    )
    .await;
    Ok(Json(json!({ "success": true })))
}

async fn secret(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = endpoint_id(&raw)?;
    let e = endpoint::find(&state.pool, caller.workspace, id).await?;
    let secret = endpoint::reveal_secret(&state.pool, &state.webhooks.keyring, caller.workspace, id).await?;
    note(
        &state,
        caller.workspace,
        caller.actor,
        kind::WEBHOOK_SECRET_REVEALED,
        &e.url,
        json!({ "webhook_id": id.to_string() }),
    )
    .await;
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
    caller: ApiCaller,
    Path(raw): Path<String>,
    OptionalApiJson(body): OptionalApiJson<RotateBody>,
) -> ApiResult<Json<Value>> {
    let hours = body.overlap_hours.unwrap_or(24);
    if !(0..=720).contains(&hours) {
        return Err(ApiError::bad_request("overlap_hours must be between 0 and 720."));
    }
    let id = endpoint_id(&raw)?;
    let e = endpoint::find(&state.pool, caller.workspace, id).await?;
    let secret = endpoint::rotate_secret(
        &state.pool,
        &state.webhooks.keyring,
        caller.workspace,
        id,
        Duration::hours(hours),
    )
    .await?;
    note(
        &state,
        caller.workspace,
        caller.actor,
        kind::WEBHOOK_SECRET_ROTATED,
        &e.url,
        json!({ "webhook_id": id.to_string() }),
    )
    .await;
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
    ApiWorkspace(workspace): ApiWorkspace,
    ApiJson(b): ApiJson<TestBody>,
) -> ApiResult<Json<Value>> {
    let e = endpoint::find(&state.pool, workspace, endpoint_id(&b.webhook_id)?).await?;
    let delivery = endpoint::create_test_delivery(&state.pool, workspace, e.id).await?;
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
    ApiWorkspace(workspace): ApiWorkspace,
    ApiJson(b): ApiJson<RetryBody>,
) -> ApiResult<Json<Value>> {
    let not_found = || ApiError::not_found("Delivery log not found.");
    let log_id: i64 = b.log_id.trim().parse().map_err(|_| not_found())?;
    let delivery = sqlx::query_scalar!(
        "SELECT a.delivery_id FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
         WHERE a.id = $1 AND d.workspace_id = $2",
        log_id,
        workspace.0
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

/// Re-enables the endpoint and queues again what it missed while failing or disabled.
async fn enable(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    OptionalApiJson(_): OptionalApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let id = endpoint_id(&raw)?;
    let replayed = endpoint::reenable_and_replay(&state.pool, workspace, id).await?;
    tracing::info!(workspace.id = %workspace, webhook.id = %id, replayed, "webhook endpoint re-enabled");
    let mut v = endpoint_answer(&state, workspace, id).await?;
    v["replayed"] = json!(replayed);
    Ok(Json(v))
}

#[derive(Deserialize, Default)]
struct ReplayBody {
    #[serde(default)]
    since: Option<String>,
}

/// A past moment in RFC 3339.
fn parse_since(raw: Option<&str>) -> ApiResult<DateTime<Utc>> {
    let bad =
        || ApiError::bad_request("Invalid since: use a past RFC 3339 time (e.g. 2026-12-01T09:00:00Z).");
    let since = DateTime::parse_from_rfc3339(raw.map(str::trim).ok_or_else(bad)?)
        .map_err(|_| bad())?
        .with_timezone(&Utc);
    if since > Utc::now() {
        return Err(bad());
    }
    Ok(since)
}

/// Queues again every failed delivery created at or after `since`.
async fn replay(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    OptionalApiJson(b): OptionalApiJson<ReplayBody>,
) -> ApiResult<Json<Value>> {
    let id = endpoint_id(&raw)?;
    let since = parse_since(b.since.as_deref())?;
    let replayed = endpoint::replay_failed(&state.pool, workspace, id, since).await?;
    Ok(Json(json!({ "replayed": replayed })))
}

fn delivery_json(d: &Delivery) -> Value {
    json!({
        "id": d.id.to_string(), "event": d.event, "message_id": d.message_id, "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": if d.is_pending() { ts(Some(d.next_attempt_at)) } else { String::new() },
        "last_status": d.last_status, "last_error": d.last_error, "created": ts(Some(d.created_at)),
        "delivered_at": ts(d.delivered_at),
    })
}

fn attempt_log_json(a: &AttemptLog) -> Value {
    json!({
        "log_id": a.id.to_string(), "created": ts(Some(a.created_at)), "request_headers": a.request_headers,
        "response_status": a.response_status, "response_body": a.response_body, "duration_ms": a.duration_ms,
        "error_message": a.error,
    })
}

/// Most deliveries one page of the log holds.
const MAX_LIMIT: i64 = 100;

/// The endpoint's deliveries, newest first: `status`, `before` (the `next_before` of the
/// previous page) and `limit` (1 to 100, default 50).
async fn deliveries(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let id = endpoint_id(&raw)?;
    let param = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let status = match param("status") {
        None => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Unknown status: {s}. Use one of pending, delivering, succeeded, failed, dropped, held."
            ))
        })?),
    };
    let before = match param("before") {
        None => None,
        Some(b) => Some(b.parse::<Uuid>().map_err(|_| {
            ApiError::bad_request("Invalid before: use the next_before of the previous page.")
        })?),
    };
    let limit = match param("limit") {
        None => 50,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}.")))?,
    };
    let rows = log::page(
        &state.pool,
        workspace,
        id,
        PageQuery {
            status,
            before,
            limit,
        },
    )
    .await?;
    let next_before = if rows.len() as i64 == limit {
        rows.last().map(|d| d.id.to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    let items: Vec<Value> = rows.iter().map(delivery_json).collect();
    Ok(Json(json!({ "items": items, "next_before": next_before })))
}

/// One delivery with its payload and every attempt.
async fn delivery(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path((raw, raw_delivery)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = endpoint_id(&raw)?;
    let not_found = || ApiError::not_found("Delivery not found.");
    let delivery: Uuid = raw_delivery.parse().map_err(|_| not_found())?;
    let d = log::find(&state.pool, workspace, id, delivery)
        .await
        .map_err(|e| match e {
            EndpointError::NotFound => not_found(),
            other => other.into(),
        })?;
    let mut v = delivery_json(&d.delivery);
    v["payload"] = json!(String::from_utf8_lossy(&d.body));
    v["attempts"] = d.attempts.iter().map(attempt_log_json).collect();
    Ok(Json(v))
}
