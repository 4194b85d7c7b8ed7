//! SMS endpoints: sending (plain and from a template), status, batches, lists, quota and
//! cron checks for integrations; pending, report, incoming and FCM token for devices.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use ender_core::schedule::cron::{CronExpr, parse_timezone};
use ender_core::sms::dispatch::{self, IncomingError, Report, ReportError};
use ender_core::sms::send::{self, Idempotency, SendError, SendRequest, Sent, TemplateSendRequest};
use ender_core::sms::{BatchId, MessageFilter, MessageId, repo};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::auth::{ApiCaller, ApiDevice, ApiWorkspace};
use super::format::{Paging, filter, id, message, ts};
use super::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sms/send", post(send_sms))
        .route("/sms/send-template", post(send_template))
        .route("/sms/validate-cron", post(validate_cron))
        .route("/sms/status/{id}", get(status))
        .route("/sms/batch/{id}", get(batch))
        .route("/sms/messages", get(messages))
        .route("/plans/quota", get(quota))
        .route("/sms/pending", get(pending))
        .route("/sms/report", post(report))
        .route("/sms/incoming", post(incoming))
        .route("/sms/fcm-token", post(fcm_token))
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Database(d) => d.into(),
            SendError::IdempotencyMismatch => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            SendError::Paused => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// The quota body of §1: HTTP 429 without the envelope.
pub(super) fn quota_body(quota_type: &str, detail: &str, limit: i64, used: i64, available: i64) -> Response {
    let body = json!({
        "detail": detail,
        "error": "quota_exceeded",
        "quota_type": quota_type,
        "limit": limit,
        "used": used,
        "available": available,
        "upgrade_url": "/api/plans/upgrade",
    });
    (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
}

fn quota_exceeded(q: ender_core::quota::QuotaExceeded) -> Response {
    let detail = format!("You can only send {} more SMS this month", q.available);
    quota_body(
        "sms_monthly",
        &detail,
        q.limit.into(),
        q.used.into(),
        q.available.into(),
    )
}

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A send's JSON body (read whatever its content type) and its `Idempotency-Key`, or why
/// they are refused.
fn read_send<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(T, Option<Idempotency>)> {
    let Ok(body) = body else {
        return Err(crate::extract::too_large());
    };
    let Ok(req) = serde_json::from_slice(&body) else {
        return Err(ApiError::bad_request("Invalid request body."));
    };
    let idempotency = match headers.get("idempotency-key").map(|v| v.to_str().map(str::trim)) {
        None => None,
        Some(Ok(key)) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY => Some(Idempotency {
            key: key.to_owned(),
            request_hash: Sha256::digest(&body).to_vec(),
        }),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "Invalid Idempotency-Key: use 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters."
            )));
        }
    };
    Ok((req, idempotency))
}

/// The answer to an accepted, replayed or refused send; a send to many recipients goes
/// into the workspace's audit trail.
async fn sent(state: &AppState, caller: ApiCaller, outcome: Result<Sent, SendError>) -> Response {
    match outcome {
        Ok(Sent::Accepted(res)) => {
            tracing::debug!(workspace.id = %caller.workspace, recipients = res.recipients_count, "send accepted");
            crate::routes::send::note_bulk(state, caller.workspace, caller.actor, &res).await;
            Json(res).into_response()
        }
        Ok(Sent::Replayed(stored)) => ([("idempotent-replayed", "true")], Json(stored)).into_response(),
        Err(SendError::Quota(q)) => quota_exceeded(q),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn send_sms(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let workspace = caller.workspace;
    let (req, idempotency) = match read_send::<SendRequest>(&headers, body) {
        Ok(r) => r,
        Err(refused) => return refused.into_response(),
    };
    let outcome = match &idempotency {
        Some(idem) => send::send(&state.pool, &state.sms, workspace, &req, Some(idem)).await,
        None => match send::validate(&state.pool, &state.sms, workspace, &req).await {
            Ok(v) => state.batcher.submit(workspace, v).await.map(Sent::Accepted),
            Err(e) => Err(e),
        },
    };
    sent(&state, caller, outcome).await
}

/// A template filled per recipient (`name` and `phone` from the caller's contacts), with
/// the same body, `Idempotency-Key` and quota handling as [`send_sms`].
async fn send_template(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let workspace = caller.workspace;
    let (req, idempotency) = match read_send::<TemplateSendRequest>(&headers, body) {
        Ok(r) => r,
        Err(refused) => return refused.into_response(),
    };
    let outcome = match &idempotency {
        Some(idem) => send::send_template(&state.pool, &state.sms, workspace, &req, Some(idem)).await,
        None => match send::validate_template(&state.pool, &state.sms, workspace, &req).await {
            Ok(v) => state.batcher.submit(workspace, v).await.map(Sent::Accepted),
            Err(e) => Err(e),
        },
    };
    sent(&state, caller, outcome).await
}

fn message_id(raw: &str, not_found: &str) -> ApiResult<MessageId> {
    raw.parse().map_err(|_| ApiError::not_found(not_found))
}

async fn status(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = message_id(&raw, "Message not found.")?;
    let m = repo::find(&state.pool, workspace, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Message not found."))?;
    Ok(Json(message(&m)))
}

/// A batch's status: `total` and `status_counts` over the whole batch, `messages` one page
/// of it (newest first, `page` and `per_page` as the other lists) with the page fields
/// beside them.
async fn batch(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<serde_json::Value>> {
    let not_found = || ApiError::not_found("Batch not found.");
    let batch: BatchId = raw.parse().map_err(|_| not_found())?;
    let paging = Paging::from_query(&q);
    let counts: BTreeMap<String, i64> = repo::batch_counts(&state.pool, workspace, batch)
        .await?
        .into_iter()
        .collect();
    let total: i64 = counts.values().sum();
    if total == 0 {
        return Err(not_found());
    }
    let messages = repo::batch_page(&state.pool, workspace, batch, paging.per_page, paging.offset()).await?;
    let items: Vec<_> = messages
        .iter()
        .map(|m| {
            json!({
                "id": m.id.to_string(), "recipient": m.recipient, "status": m.status,
                "error_message": m.error_message, "device_id": id(m.device_id),
                "created": ts(Some(m.created_at)), "updated": ts(Some(m.updated_at)),
            })
        })
        .collect();
    let mut page = paging.fields(total);
    page.insert("batch_id".to_owned(), json!(batch.to_string()));
    page.insert("total".to_owned(), json!(total));
    page.insert("status_counts".to_owned(), json!(counts));
    page.insert("messages".to_owned(), json!(items));
    Ok(Json(serde_json::Value::Object(page)))
}

fn parse_time(raw: Option<String>, name: &str) -> ApiResult<Option<DateTime<Utc>>> {
    match raw {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.to_utc()))
            .map_err(|_| {
                ApiError::bad_request(format!("Invalid '{name}' timestamp; expected ISO8601 (RFC3339)."))
            }),
    }
}

async fn messages(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<serde_json::Value>> {
    let paging = Paging::from_query(&q);
    let from = parse_time(filter(q.get("from")), "from")?;
    let to = parse_time(filter(q.get("to")), "to")?;
    // An id that cannot exist matches nothing (rather than everything).
    let nil = uuid::Uuid::nil();
    let f = MessageFilter {
        status: filter(q.get("status")),
        direction: None,
        device_id: filter(q.get("device_id")).map(|d| d.parse().unwrap_or(ender_core::device::DeviceId(nil))),
        batch_id: filter(q.get("batch_id")).map(|b| b.parse().unwrap_or(BatchId(nil))),
        recipient: filter(q.get("recipient")),
        from,
        to,
    };
    let (items, total) = repo::page(&state.pool, workspace, &f, paging.per_page, paging.offset()).await?;
    Ok(Json(paging.wrap(items.iter().map(message).collect(), total)))
}

async fn quota(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
) -> ApiResult<Json<serde_json::Value>> {
    let mut conn = state.pool.acquire().await?;
    let limits =
        ender_core::billing::plans::limits(&mut conn, workspace, &state.sms, chrono::Utc::now()).await?;
    let used = ender_core::quota::used(&mut conn, workspace, limits.allowance().period).await?;
    let scheduled = ender_core::schedule::repo::count_open(&mut conn, workspace).await?;
    drop(conn);
    let devices = ender_core::device::count(&state.pool, workspace).await?;
    let keys = ender_core::apikey::list(&state.pool, workspace)
        .await?
        .iter()
        .filter(|k| k.is_active())
        .count();
    Ok(Json(json!({
        "plan": limits.plan,
        "sms_sent_this_month": used,
        "max_sms_per_month": limits.sms,
        "devices_registered": devices,
        "max_devices": limits.devices,
        "reset_date": limits.period_end.format("%Y-%m-%d").to_string(),
        "scheduled_sms_count": scheduled,
        "max_scheduled_sms": limits.schedules,
        "integrations_count": keys,
        "max_integrations": limits.api_keys,
    })))
}

/// Fire times of the cron expressions this many ahead are shown.
const UPCOMING: usize = 5;

#[derive(Deserialize)]
struct CronBody {
    #[serde(default)]
    expression: String,
    #[serde(default)]
    timezone: Option<String>,
}

/// Whether a cron expression (evaluated in `timezone`, default UTC) is valid, and when it
/// fires next. HTTP 200 either way.
async fn validate_cron(
    ApiWorkspace(_): ApiWorkspace,
    ApiJson(b): ApiJson<CronBody>,
) -> Json<serde_json::Value> {
    let invalid = |error: String| Json(json!({ "valid": false, "error": error }));
    let cron = match CronExpr::parse(&b.expression) {
        Ok(c) => c,
        Err(e) => return invalid(e.to_string()),
    };
    let zone = b.timezone.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let tz = match parse_timezone(zone.unwrap_or("UTC")) {
        Ok(tz) => tz,
        Err(e) => return invalid(e.to_string()),
    };
    let upcoming = cron.upcoming(Utc::now(), tz, UPCOMING);
    let Some(next) = upcoming.first() else {
        return invalid("This expression does not fire in the next five years.".to_owned());
    };
    let next_runs: Vec<String> = upcoming.iter().map(|t| ts(Some(*t))).collect();
    Json(json!({
        "valid": true,
        "next_run": ts(Some(*next)),
        "next_runs": next_runs,
        "description": cron.describe().unwrap_or_default(),
        "expression": cron.as_str(),
        "timezone": tz.name(),
    }))
}

async fn pending(
    State(state): State<AppState>,
    ApiDevice(device): ApiDevice,
) -> ApiResult<Json<serde_json::Value>> {
    // A polling device is reachable right now: give it what waits for it first.
    if device.enabled {
        dispatch::dispatch_workspace(&state.pool, &state.sms, device.workspace_id).await?;
    }
    let claimed = if device.enabled {
        dispatch::claim(&state.pool, &state.sms, &device).await?
    } else {
        Vec::new()
    };
    let messages: Vec<_> = claimed
        .iter()
        .map(|c| json!({"message_id": c.id.to_string(), "recipient": c.recipient, "body": c.body}))
        .collect();
    Ok(Json(
        json!({ "device_id": device.id.to_string(), "messages": messages }),
    ))
}

#[derive(Deserialize)]
struct ReportBody {
    message_id: String,
    status: String,
    #[serde(default)]
    error_message: Option<String>,
}

async fn report(
    State(state): State<AppState>,
    ApiDevice(device): ApiDevice,
    ApiJson(body): ApiJson<ReportBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let kind = Report::parse(body.status.trim())
        .ok_or_else(|| ApiError::bad_request("Invalid status: must be sent, delivered, or failed."))?;
    let error = body.error_message.unwrap_or_default();
    match dispatch::report(
        &state.pool,
        &state.sms,
        &device,
        body.message_id.trim(),
        kind,
        &error,
    )
    .await
    {
        Ok(_) => Ok(Json(
            json!({"success": true, "message_id": body.message_id.trim(), "status": body.status.trim()}),
        )),
        Err(ReportError::Database(e)) => Err(e.into()),
        Err(e) => Err(ApiError::not_found(e.to_string())),
    }
}

#[derive(Deserialize)]
struct IncomingBody {
    from_number: String,
    body: String,
    #[serde(default)]
    timestamp: Option<String>,
}

async fn incoming(
    State(state): State<AppState>,
    ApiDevice(device): ApiDevice,
    ApiJson(body): ApiJson<IncomingBody>,
) -> Result<Json<serde_json::Value>, Response> {
    // A device reporting more than a phone can receive is refused for the minute; the
    // modem agent and the apps keep the message and retry after Retry-After.
    if let Err(l) = state.incoming.check(&device.id.to_string()) {
        tracing::warn!(device.id = %device.id, limit = l.limit, "incoming SMS over the per-device limit; answering 429");
        let message = format!(
            "Too many incoming messages from this device: at most {} per minute (ENDER_MAX_INCOMING_PER_MINUTE). Retry later.",
            l.limit
        );
        let body = json!({"data": {}, "message": message, "status": 429});
        return Err((StatusCode::TOO_MANY_REQUESTS, [("retry-after", "60")], Json(body)).into_response());
    }
    let received_at = match body.timestamp.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => Utc::now(),
        Some(t) => DateTime::parse_from_rfc3339(t).map(|t| t.to_utc()).map_err(|_| {
            ApiError::bad_request("Invalid timestamp; expected ISO8601 (RFC3339).").into_response()
        })?,
    };
    match dispatch::incoming(&state.pool, &device, &body.from_number, &body.body, received_at).await {
        Ok(id) => Ok(Json(json!({"success": true, "message_id": id.to_string()}))),
        Err(IncomingError::Database(e)) => Err(ApiError::from(e).into_response()),
        Err(e) => Err(ApiError::bad_request(e.to_string()).into_response()),
    }
}

#[derive(Deserialize)]
struct FcmBody {
    fcm_token: String,
}

async fn fcm_token(
    State(state): State<AppState>,
    ApiDevice(device): ApiDevice,
    ApiJson(body): ApiJson<FcmBody>,
) -> ApiResult<Json<serde_json::Value>> {
    if body.fcm_token.len() > 4096 {
        return Err(ApiError::bad_request("FCM token too long."));
    }
    ender_core::device::set_fcm_token(&state.pool, device.id, &body.fcm_token).await?;
    // Now reachable through FCM: whatever waits can be dispatched to it.
    let mut conn = state.pool.acquire().await?;
    ender_core::bus::wake_dispatch(&mut conn, device.workspace_id).await?;
    Ok(Json(json!({"status": "ok"})))
}
