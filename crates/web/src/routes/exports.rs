//! Message history exports: the Exports page (ask for one, watch it being made, download
//! it) and the same under `/api/exports`. The worker makes the files
//! (`ender_worker::jobs::exports`); downloads are checked against the current workspace and
//! streamed from the store, or redirected to a short-lived link when the store is S3.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use ender_core::export::{self, DIRECTIONS, Export, Format, MessageFilter, RequestError, STATUSES};
use ender_core::store::{StoreError, attachment};
use ender_core::workspace::{Action, WorkspaceId};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_sessions::Session;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, Form};
use crate::routes::api::auth::ApiCaller;
use crate::routes::api::format::ts;
use crate::routes::api::{ApiError, ApiResult};
use crate::session::{CurrentWorkspace, flash};
use crate::state::AppState;
use crate::views::{Errors, Shell};

pub const EXPORTS: &str = "/exports";

/// How long a presigned download link works.
const LINK_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Exports listed on the page and by the API.
const LISTED: i64 = 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(EXPORTS, get(page).post(create))
        .route("/exports/rows", get(rows))
        .route("/exports/{id}/download", get(download_page))
}

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/user/export", get(vendel_export))
        .route(
            "/sms/conversations/delete",
            axum::routing::post(api_delete_conversation),
        )
        .route("/exports", get(api_list).post(api_create))
        .route("/exports/{id}", get(api_get))
        .route("/exports/{id}/download", get(api_download))
}

/// One export as the page shows it.
pub struct ExportRow {
    pub id: String,
    pub what: String,
    pub format: &'static str,
    pub status: String,
    pub progress: String,
    pub size: String,
    pub created: String,
    pub note: String,
    pub downloadable: bool,
}

impl From<&Export> for ExportRow {
    fn from(e: &Export) -> Self {
        let progress = match (e.status.as_str(), e.rows_total) {
            ("running", Some(total)) if total > 0 => {
                format!(
                    "{} of {} messages ({}%)",
                    e.rows_done,
                    total,
                    e.rows_done * 100 / total
                )
            }
            ("running", _) => format!("{} messages", e.rows_done),
            ("done", _) => format!("{} messages", e.rows_done),
            _ => String::new(),
        };
        let note = match e.status.as_str() {
            "done" => e
                .expires_at
                .map(|t| format!("Kept until {}", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default(),
            "expired" => "Deleted after its keeping time: export again.".to_owned(),
            _ => e.error.clone(),
        };
        Self {
            id: e.id.to_string(),
            what: e.filter.describe(),
            format: e.format.as_str(),
            status: e.status.clone(),
            progress,
            size: e
                .size_bytes
                .map(|b| crate::views::bytes(u64::try_from(b).unwrap_or(0)))
                .unwrap_or_default(),
            created: e.created_at.format("%Y-%m-%d %H:%M").to_string(),
            note,
            downloadable: e.downloadable(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExportForm {
    format: String,
    since: String,
    until: String,
    direction: String,
    status: String,
    device: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "exports/index.html")]
pub struct ExportsPage {
    pub shell: Shell,
    pub form: ExportForm,
    pub errors: Errors,
    pub devices: Vec<(String, String)>,
    pub directions: &'static [&'static str],
    pub statuses: &'static [&'static str],
    pub rows: Vec<ExportRow>,
    pub open: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "exports/_rows.html")]
pub struct RowsPartial {
    pub rows: Vec<ExportRow>,
    pub open: bool,
}

async fn rows_of(state: &AppState, ws: WorkspaceId) -> AppResult<Vec<ExportRow>> {
    let list = export::list(&mut *state.pool.acquire().await?, ws, LISTED).await?;
    Ok(list.iter().map(ExportRow::from).collect())
}

async fn render(
    state: &AppState,
    ws: &CurrentWorkspace,
    shell: Shell,
    form: ExportForm,
    errors: Errors,
) -> AppResult<ExportsPage> {
    let rows = rows_of(state, ws.id()).await?;
    let devices = ender_core::device::list(&state.pool, ws.id())
        .await?
        .into_iter()
        .map(|d| (d.id.to_string(), d.name))
        .collect();
    Ok(ExportsPage {
        shell,
        open: rows
            .iter()
            .any(|r| matches!(r.status.as_str(), "queued" | "running")),
        form,
        errors,
        devices,
        directions: DIRECTIONS,
        statuses: STATUSES,
        rows,
    })
}

async fn page(State(state): State<AppState>, ws: CurrentWorkspace, shell: Shell) -> AppResult<ExportsPage> {
    ws.may(Action::Export)?;
    let form = ExportForm {
        format: "csv".to_owned(),
        ..ExportForm::default()
    };
    render(&state, &ws, shell, form, Errors::default()).await
}

/// The table alone, which the page reloads every two seconds while an export is made.
async fn rows(State(state): State<AppState>, ws: CurrentWorkspace) -> AppResult<RowsPartial> {
    ws.may(Action::Export)?;
    let rows = rows_of(&state, ws.id()).await?;
    Ok(RowsPartial {
        open: rows
            .iter()
            .any(|r| matches!(r.status.as_str(), "queued" | "running")),
        rows,
    })
}

/// Reads the form or JSON fields into a format and a filter, or the fields' errors.
fn parse(f: &ExportForm) -> Result<(Format, MessageFilter), Vec<ender_core::FieldError>> {
    let format = Format::parse(if f.format.is_empty() { "csv" } else { &f.format });
    let filter = MessageFilter::parse(&f.since, &f.until, &f.direction, &f.status, &f.device);
    match (format, filter) {
        (Some(format), Ok(filter)) => Ok((format, filter)),
        (format, filter) => {
            let mut errors = filter.err().unwrap_or_default();
            if format.is_none() {
                errors.insert(
                    0,
                    ender_core::FieldError::new("format", "Choose CSV or JSON Lines."),
                );
            }
            Err(errors)
        }
    }
}

async fn create(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(form): Form<ExportForm>,
) -> AppResult<Response> {
    ws.may(Action::Export)?;
    let refused = |errors: Vec<ender_core::FieldError>, form: ExportForm, shell: Shell| {
        let state = state.clone();
        let ws = &ws;
        async move {
            let page = render(&state, ws, shell, form, Errors(errors)).await?;
            Ok::<_, AppError>((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    };
    let (format, filter) = match parse(&form) {
        Ok(v) => v,
        Err(errors) => return refused(errors, form, shell).await,
    };
    match export::request(&state.pool, ws.id(), Some(ws.user_id()), format, &filter).await {
        Ok(e) => {
            tracing::info!(export.id = %e.id, workspace.id = %ws.id(), "export requested");
            flash(
                &session,
                "success",
                "Export started: it is listed below while it is made.",
            )
            .await?;
            Ok(Redirect::to(EXPORTS).into_response())
        }
        Err(RequestError::Database(e)) => Err(e.into()),
        Err(RequestError::UnknownDevice) => {
            let e = ender_core::FieldError::new("device", RequestError::UnknownDevice.to_string());
            refused(vec![e], form, shell).await
        }
        Err(e @ RequestError::TooMany) => {
            let e = ender_core::FieldError::new("format", e.to_string());
            refused(vec![e], form, shell).await
        }
    }
}

/// The file of `id` in `ws`: a redirect to a presigned link (S3) or the bytes, streamed.
/// Another workspace's export, or one not finished, is not found.
async fn serve_file(state: &AppState, ws: WorkspaceId, id: &str) -> Result<Response, Option<String>> {
    let Ok(id) = id.parse::<Uuid>() else {
        return Err(None);
    };
    let mut conn = state.pool.acquire().await.map_err(|_| Some(String::new()))?;
    let e = export::get(&mut conn, ws, id)
        .await
        .map_err(|_| Some(String::new()))?
        .ok_or(None)?;
    drop(conn);
    let Some(key) = e.object_key.clone().filter(|_| e.downloadable()) else {
        return Err(None);
    };
    if let Some(url) = state
        .store
        .presigned_url(&key, &e.filename(), LINK_TTL)
        .await
        .map_err(|err| Some(err.to_string()))?
    {
        return Ok(Redirect::to(&url).into_response());
    }
    let object = match state.store.get(&key).await {
        Ok(o) => o,
        Err(StoreError::NotFound(_)) => return Err(None),
        Err(err) => return Err(Some(err.to_string())),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(e.format.content_type()),
    );
    if let Ok(v) = header::HeaderValue::from_str(&attachment(&e.filename())) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CONTENT_LENGTH, object.size.into());
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("private, no-store"),
    );
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(object.reader));
    Ok((headers, body).into_response())
}

async fn download_page(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    Path(id): Path<String>,
) -> AppResult<Response> {
    ws.may(Action::Export)?;
    match serve_file(&state, ws.id(), &id).await {
        Ok(res) => Ok(res),
        Err(None) => Err(AppError::NotFound),
        Err(Some(reason)) => {
            tracing::warn!(error = %reason, "an export download failed");
            Err(AppError::Unavailable)
        }
    }
}

fn export_json(e: &Export) -> Value {
    json!({
        "id": e.id,
        "format": e.format.as_str(),
        "filters": e.filter,
        "status": e.status,
        "rows_done": e.rows_done,
        "rows_total": e.rows_total,
        "size_bytes": e.size_bytes,
        "error": e.error,
        "created_at": ts(Some(e.created_at)),
        "finished_at": ts(e.finished_at),
        "expires_at": ts(e.expires_at),
        "download_url": if e.downloadable() { format!("/api/exports/{}/download", e.id) } else { String::new() },
    })
}

async fn api_create(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(form): ApiJson<ExportForm>,
) -> ApiResult<Json<Value>> {
    let (format, filter) = parse(&form).map_err(|e| ApiError::invalid(&e))?;
    match export::request(&state.pool, caller.workspace, caller.user, format, &filter).await {
        Ok(e) => Ok(Json(export_json(&e))),
        Err(RequestError::Database(e)) => Err(e.into()),
        Err(e @ RequestError::UnknownDevice) => Err(ApiError::invalid(&[ender_core::FieldError::new(
            "device",
            e.to_string(),
        )])),
        Err(e @ RequestError::TooMany) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
    }
}

async fn api_list(State(state): State<AppState>, caller: ApiCaller) -> ApiResult<Json<Value>> {
    let list = export::list(&mut *state.pool.acquire().await?, caller.workspace, LISTED).await?;
    Ok(Json(
        json!({ "items": list.iter().map(export_json).collect::<Vec<_>>() }),
    ))
}

fn not_found() -> ApiError {
    ApiError::not_found("Export not found.")
}

async fn api_get(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = id.parse::<Uuid>().map_err(|_| not_found())?;
    let e = export::get(&mut *state.pool.acquire().await?, caller.workspace, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(export_json(&e)))
}

async fn api_download(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    match serve_file(&state, caller.workspace, &id).await {
        Ok(res) => Ok(res),
        Err(None) => Err(not_found()),
        Err(Some(reason)) => {
            tracing::warn!(error = %reason, "an export download failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The file store cannot be reached: try again shortly.",
            ))
        }
    }
}

/// Messages in Vendel's one-file export at most (the whole history: `POST /api/exports`).
pub const VENDEL_EXPORT_MESSAGES: i64 = 50_000;

/// Vendel's exports per workspace per hour at most.
const VENDEL_EXPORTS_PER_HOUR: i32 = 10;

/// Vendel's `GET /api/user/export`: the caller and the current workspace in one JSON file
/// (`vendel-export.json`), with Vendel's field names. Secrets (keys, tokens, webhook
/// secrets, passwords) are never in it. At most [`VENDEL_EXPORT_MESSAGES`] messages, the
/// newest; `messages_truncated` says when there were more.
async fn vendel_export(State(state): State<AppState>, caller: ApiCaller) -> ApiResult<Response> {
    use ender_core::ratelimit::{self, Limit};
    let ws = caller.workspace;
    let mut conn = state.pool.acquire().await?;
    if !ratelimit::allow(
        &mut conn,
        &format!("user-export:{}", ws.0),
        Limit::per_hour(VENDEL_EXPORTS_PER_HOUR),
    )
    .await?
    {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("At most {VENDEL_EXPORTS_PER_HOUR} exports an hour: try again later."),
        ));
    }
    let user = match caller.user {
        Some(id) => ender_core::account::repo::find(&mut conn, id).await?,
        None => None,
    };
    let limits = ender_core::billing::plans::limits(&mut conn, ws, &state.sms, chrono::Utc::now()).await?;
    let used = ender_core::quota::used(&mut conn, ws, limits.allowance().period).await?;
    let subscription = ender_core::billing::subscriptions::current(&mut conn, ws).await?;
    drop(conn);
    let user = user.map_or_else(
        || json!({}),
        |u| {
            json!({
                "id": u.id.to_string(), "email": u.email, "full_name": u.full_name,
                "verified": u.email_verified_at.is_some(), "created": ts(Some(u.created_at)),
                "updated": ts(Some(u.created_at)),
            })
        },
    );
    let devices = ender_core::device::list(&state.pool, ws).await?;
    let device_rows: Vec<Value> = devices
        .iter()
        .map(|d| {
            json!({"id": d.id.to_string(), "created": ts(Some(d.created_at)), "name": d.name,
                   "phone_number": d.phone_number, "device_type": d.kind})
        })
        .collect();
    let mut messages = export::vendel_messages(&state.pool, ws, VENDEL_EXPORT_MESSAGES + 1)
        .await
        .map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "reading messages for an export failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
        })?;
    let truncated = messages.len() as i64 > VENDEL_EXPORT_MESSAGES;
    messages.truncate(usize::try_from(VENDEL_EXPORT_MESSAGES).unwrap_or(usize::MAX));
    let webhooks: Vec<Value> = ender_core::webhook::endpoint::list(&state.pool, ws)
        .await?
        .iter()
        .map(|e| {
            json!({"id": e.id.to_string(), "created": ts(Some(e.created_at)), "url": e.url,
                   "events": e.events, "active": e.active, "include_body": e.include_body})
        })
        .collect();
    let api_keys: Vec<Value> = ender_core::apikey::list(&state.pool, ws)
        .await?
        .iter()
        .map(|k| {
            json!({"id": k.id.to_string(), "created": ts(Some(k.created_at)), "name": k.name,
                   "is_active": k.is_active(), "expires_at": ts(k.expires_at), "last_used_at": ts(k.last_used_at)})
        })
        .collect();
    let (templates, _) = ender_core::template::repo::list(&state.pool, ws, 0, 10_000).await?;
    let templates: Vec<Value> = templates
        .iter()
        .map(|t| json!({"id": t.id.to_string(), "created": ts(Some(t.created_at)), "name": t.name, "body": t.body}))
        .collect();
    let (schedules, _) = ender_core::schedule::repo::list(&state.pool, ws, 0, 10_000).await?;
    let scheduled: Vec<Value> = schedules
        .iter()
        .map(|s| {
            let body = match &s.content {
                ender_core::schedule::Content::Body(b) => b.as_str(),
                ender_core::schedule::Content::Template { .. } => "",
            };
            json!({"id": s.id.to_string(), "created": ts(Some(s.created_at)), "name": s.name,
                   "recipients": s.recipients, "body": body, "schedule_type": s.kind(),
                   "scheduled_at": s.local_time(), "cron_expression": s.cron_expr(),
                   "timezone": s.timezone.name(), "status": s.status.as_str()})
        })
        .collect();
    let subscriptions: Vec<Value> = subscription
        .iter()
        .map(|s| {
            json!({"id": s.id.to_string(), "created": ts(Some(s.current_period_start)),
                   "billing_cycle": s.cycle.as_str(), "status": s.status.as_str(), "payment_method": "balance",
                   "current_period_start": ts(Some(s.current_period_start)),
                   "current_period_end": ts(Some(s.current_period_end)),
                   "cancel_at_period_end": s.cancel_at_period_end, "canceled_at": ts(s.ended_at)})
        })
        .collect();
    let payments: Vec<Value> = ender_core::billing::ledger::history(&state.pool, ws, 10_000)
        .await?
        .iter()
        .filter(|e| e.payment_id.is_some())
        .map(|e| {
            json!({"id": e.payment_id.map(|p| p.to_string()).unwrap_or_default(),
                   "created": ts(Some(e.created_at)), "amount": e.amount_cents as f64 / 100.0,
                   "currency": state.sms.billing.currency, "status": "completed", "provider": "",
                   "period_start": "", "period_end": "", "paid_at": ts(Some(e.created_at))})
        })
        .collect();
    let body = json!({
        "exported_at": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "user": user,
        "devices": device_rows,
        "messages": messages,
        "messages_truncated": truncated,
        "webhooks": webhooks,
        "api_keys": api_keys,
        "templates": templates,
        "scheduled_sms": scheduled,
        "quota": {
            "plan": limits.plan, "sms_sent_this_month": used, "devices_registered": devices.len(),
            "last_reset_date": limits.period_end.format("%Y-%m-%d").to_string(),
        },
        "subscriptions": subscriptions,
        "payments": payments,
    });
    Ok((
        [(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"vendel-export.json\"",
        )],
        Json(body),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConversationBody {
    number: String,
}

/// `POST /api/sms/conversations/delete` `{"number": "+1555…"}`: every message to and from
/// the number goes; answers `{"deleted": N}`.
async fn api_delete_conversation(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<ConversationBody>,
) -> ApiResult<Json<Value>> {
    let number = ender_core::sms::phone::PhoneNumber::parse(body.number.trim())
        .map_err(|_| {
            ApiError::invalid(&[ender_core::FieldError::new(
                "number",
                "Enter the number in international form, such as +15551234567.",
            )])
        })?
        .into_string();
    let n = ender_core::sms::repo::delete_conversation(&state.pool, caller.workspace, &number, caller.actor)
        .await?;
    tracing::info!(workspace.id = %caller.workspace, messages = n, "conversation deleted");
    Ok(Json(json!({ "deleted": n })))
}
