//! Scheduled sends through the API: list, create (within the per-user limit, whose 429 is
//! the quota body with `quota_type: scheduled_sms`), show, replace, delete, pause, resume
//! and the run history.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use ender_core::FieldError;
use ender_core::schedule::{
    Content, Run, Schedule, ScheduleError, ScheduleForm, ScheduleId, ScheduleInput, Status, repo,
};
use serde_json::{Value, json};

use super::auth::ApiWorkspace;
use super::format::{Paging, id, ts};
use super::{ApiError, ApiResult};
use crate::extract::{ApiJson, OptionalApiJson};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/schedules", get(list).post(create))
        .route("/schedules/{id}", get(show).put(update).delete(remove))
        .route("/schedules/{id}/pause", post(pause))
        .route("/schedules/{id}/resume", post(resume))
        .route("/schedules/{id}/runs", get(runs))
}

/// How many upcoming fire times a schedule shows.
const UPCOMING: usize = 5;
/// Most runs `GET /api/schedules/{id}/runs` returns.
const MAX_RUNS: i64 = 200;

/// Why a schedule request was refused: the error envelope, or the quota body when the
/// caller already has as many open schedules as allowed.
enum Refused {
    Api(ApiError),
    Limit { limit: i64, used: i64 },
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::Api(e) => e.into_response(),
            Self::Limit { limit, used } => {
                let detail = ScheduleError::Limit { limit, used }.to_string();
                super::sms::quota_body("scheduled_sms", &detail, limit, used, (limit - used).max(0))
            }
        }
    }
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Self {
        Self::Api(e.into())
    }
}

impl From<ScheduleError> for Refused {
    fn from(e: ScheduleError) -> Self {
        let field = |field, message| ApiError::invalid(&[FieldError::new(field, message)]);
        Self::Api(match e {
            ScheduleError::Invalid(errors) => ApiError::invalid(&errors),
            ScheduleError::NotFound => not_found(),
            ScheduleError::GroupNotFound => field("group_ids", "Group not found."),
            ScheduleError::TemplateNotFound => field("template_id", "Template not found."),
            ScheduleError::DeviceNotFound => field("device_id", "Device not found."),
            ScheduleError::Limit { limit, used } => return Self::Limit { limit, used },
            ScheduleError::Completed => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            ScheduleError::Database(d) => d.into(),
        })
    }
}

type Answer = Result<Json<Value>, Refused>;

fn not_found() -> ApiError {
    ApiError::not_found("Schedule not found.")
}

fn schedule_id(raw: &str) -> ApiResult<ScheduleId> {
    raw.parse().map_err(|_| not_found())
}

fn schedule_json(s: &Schedule) -> Value {
    let (body, template_id, variables) = match &s.content {
        Content::Body(b) => (b.as_str(), String::new(), json!({})),
        Content::Template { id, variables } => ("", id.to_string(), json!(variables)),
    };
    // From just before the stored next run, so the list starts with it even when it is due
    // and not yet fired.
    let next_runs: Vec<String> = match (s.status, s.next_run_at) {
        (Status::Active, Some(next)) => s
            .upcoming(next - Duration::seconds(1), UPCOMING)
            .into_iter()
            .map(|t| ts(Some(t)))
            .collect(),
        _ => Vec::new(),
    };
    let group_ids: Vec<String> = s.group_ids.iter().map(ToString::to_string).collect();
    json!({
        "id": s.id.to_string(), "name": s.name, "kind": s.kind(), "run_at": s.local_time(),
        "cron_expression": s.cron_expr(), "timezone": s.timezone.name(), "description": s.describe(),
        "recipients": s.recipients, "group_ids": group_ids, "body": body, "template_id": template_id,
        "variables": variables, "device_id": id(s.device_id), "status": s.status.as_str(),
        "next_run_at": ts(s.next_run_at), "last_run_at": ts(s.last_run_at), "run_count": s.run_count,
        "next_runs": next_runs, "created": ts(Some(s.created_at)), "updated": ts(Some(s.updated_at)),
    })
}

fn run_json(r: &Run) -> Value {
    json!({
        "due_at": ts(Some(r.due_at)), "ran_at": ts(Some(r.ran_at)), "late": r.late,
        "messages": r.messages, "batch_id": id(r.batch_id), "error": r.error,
    })
}

/// The caller's schedules, newest first.
async fn list(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let paging = Paging::from_query(&q);
    let (items, total) = repo::list(&state.pool, workspace, paging.offset(), paging.per_page).await?;
    Ok(Json(
        paging.wrap(items.iter().map(schedule_json).collect(), total),
    ))
}

async fn create(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    ApiJson(form): ApiJson<ScheduleForm>,
) -> Answer {
    let now = Utc::now();
    let input = ScheduleInput::parse(&form, now).map_err(|e| ApiError::invalid(&e))?;
    let s = repo::create(
        &state.pool,
        workspace,
        &input,
        state.limits(workspace).await?.schedules,
        now,
    )
    .await?;
    tracing::info!(workspace.id = %workspace, schedule.id = %s.id, "schedule created");
    Ok(Json(schedule_json(&s)))
}

async fn show(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
) -> Answer {
    let s = repo::find(&state.pool, workspace, schedule_id(&raw)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(schedule_json(&s)))
}

/// The whole schedule, checked as for create; its next run is worked out afresh.
async fn update(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    ApiJson(form): ApiJson<ScheduleForm>,
) -> Answer {
    let id = schedule_id(&raw)?;
    let now = Utc::now();
    let input = ScheduleInput::parse(&form, now).map_err(|e| ApiError::invalid(&e))?;
    let s = repo::update(
        &state.pool,
        workspace,
        id,
        &input,
        state.limits(workspace).await?.schedules,
        now,
    )
    .await?;
    Ok(Json(schedule_json(&s)))
}

async fn remove(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
) -> Answer {
    if !repo::delete(&state.pool, workspace, schedule_id(&raw)?).await? {
        return Err(not_found().into());
    }
    Ok(Json(json!({ "success": true })))
}

async fn pause(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    OptionalApiJson(_): OptionalApiJson<Value>,
) -> Answer {
    let s = repo::pause(&state.pool, workspace, schedule_id(&raw)?).await?;
    Ok(Json(schedule_json(&s)))
}

/// A recurring schedule goes on from its next due time; a one-time one whose time passed
/// while paused fires at once.
async fn resume(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    OptionalApiJson(_): OptionalApiJson<Value>,
) -> Answer {
    let s = repo::resume(&state.pool, workspace, schedule_id(&raw)?, Utc::now()).await?;
    Ok(Json(schedule_json(&s)))
}

/// The most recent runs, newest first: `limit` (1 to 200, default 50; other values fall
/// back to the default).
async fn runs(
    State(state): State<AppState>,
    ApiWorkspace(workspace): ApiWorkspace,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let id = schedule_id(&raw)?;
    repo::find(&state.pool, workspace, id)
        .await?
        .ok_or_else(not_found)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.trim().parse::<i64>().ok())
        .filter(|l| (1..=MAX_RUNS).contains(l))
        .unwrap_or(50);
    let items: Vec<Value> = repo::runs(&state.pool, workspace, id, limit)
        .await?
        .iter()
        .map(run_json)
        .collect();
    Ok(Json(json!({ "items": items })))
}
