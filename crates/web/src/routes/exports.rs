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

fn size(bytes: Option<i64>) -> String {
    let Some(b) = bytes else { return String::new() };
    let b = b as f64;
    if b >= 1_048_576.0 {
        format!("{:.1} MiB", b / 1_048_576.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b} B")
    }
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
            size: size(e.size_bytes),
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
