//! The devices pages: add a phone or modem (its key shown once with the onboarding QR),
//! the live list (online, last seen), and per device: rename, pacing, enable or disable,
//! rotate the key, delete.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ender_core::device::{self, Device, DeviceError, DeviceId, DeviceInput};
use ender_core::workspace::{Action, WorkspaceId};
use serde_json::json;
use tower_sessions::Session;

use super::keys::Revealed;
use crate::audit::note;
use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::{CurrentWorkspace, flash};
use crate::state::AppState;
use crate::views::{Errors, Shell, ago, is_htmx, qr_svg, vary};
use ender_core::workspace::audit::kind;

pub const PATH: &str = "/devices";

impl From<DeviceError> for AppError {
    fn from(e: DeviceError) -> Self {
        match e {
            DeviceError::Database(e) => e.into(),
            // Validation is handled where a form is re-rendered; anything else is "not yours".
            _ => AppError::NotFound,
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list).post(create))
        .route("/devices/{id}", get(show).post(update))
        .route("/devices/{id}/pacing", post(pacing))
        .route("/devices/{id}/enabled", post(enabled))
        .route("/devices/{id}/rotate", post(rotate))
        .route("/devices/{id}/delete", post(delete))
}

pub struct DeviceRow {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub phone_number: String,
    pub online: bool,
    pub enabled: bool,
    pub last_seen: String,
    pub pacing: String,
    /// What a modem last reported about its radio, e.g. "−71 dBm · Operator · home".
    pub radio: String,
    /// Signal bars 0–4 for the report, when there is one.
    pub bars: Option<u8>,
}

impl DeviceRow {
    fn new(d: &Device, window: i64) -> Self {
        Self {
            id: d.id.to_string(),
            name: d.name.clone(),
            kind: if d.kind == "modem" {
                "Modem"
            } else {
                "Android phone"
            },
            phone_number: d.phone_number.clone(),
            online: d.is_online(window),
            enabled: d.enabled,
            last_seen: ago(d.last_seen_at),
            pacing: format!("{}/min, {}/day", d.per_minute_limit, d.per_day_limit),
            radio: radio(d),
            bars: d.signal_dbm.map(bars),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "devices/list.html")]
pub struct DevicesPage {
    pub shell: Shell,
    pub devices: Vec<DeviceRow>,
    pub revealed: Option<Revealed>,
    pub name: String,
    pub kind: String,
    pub phone_number: String,
    pub errors: Errors,
    /// With billing on: what the plan allows ("Your Free plan allows 1 device.").
    pub plan_note: String,
}

/// The plan's device allowance, said where devices are added (billing on only).
async fn plan_note(state: &AppState, workspace: ender_core::workspace::WorkspaceId) -> AppResult<String> {
    if !state.sms.billing.enabled {
        return Ok(String::new());
    }
    let l = state.limits(workspace).await?;
    let n = l.devices;
    Ok(format!(
        "Your {} plan allows {n} device{}.",
        l.plan,
        if n == 1 { "" } else { "s" }
    ))
}

#[derive(Template, WebTemplate)]
#[template(path = "devices/_table.html")]
pub struct DevicesTable {
    pub devices: Vec<DeviceRow>,
}

async fn rows(state: &AppState, workspace: WorkspaceId) -> AppResult<Vec<DeviceRow>> {
    let window = state.sms.device_seen_window_secs;
    Ok(device::list(&state.pool, workspace)
        .await?
        .iter()
        .map(|d| DeviceRow::new(d, window))
        .collect())
}

async fn list(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    headers: HeaderMap,
    shell: Shell,
) -> AppResult<Response> {
    let devices = rows(&state, ws.id()).await?;
    let res = if is_htmx(&headers) {
        DevicesTable { devices }.into_response()
    } else {
        DevicesPage {
            shell,
            devices,
            revealed: None,
            name: String::new(),
            kind: "android".to_owned(),
            phone_number: String::new(),
            errors: Errors::default(),
            plan_note: plan_note(&state, ws.id()).await?,
        }
        .into_response()
    };
    Ok(vary(res))
}

pub fn reveal_device(state: &AppState, name: &str, secret: &str) -> Revealed {
    let text = json!({
        "server_instance": state.config.public_url.as_str().trim_end_matches('/'),
        "api_key": secret,
        "version": "0.1",
    })
    .to_string();
    Revealed {
        name: name.to_owned(),
        secret: secret.to_owned(),
        qr: qr_svg(&text),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct DeviceForm {
    name: String,
    kind: String,
    phone_number: String,
}

async fn create(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Form(form): Form<DeviceForm>,
) -> AppResult<Response> {
    ws.may(Action::ManageDevices)?;
    let mut page = DevicesPage {
        shell,
        devices: Vec::new(),
        revealed: None,
        name: form.name.clone(),
        kind: form.kind.clone(),
        phone_number: form.phone_number.clone(),
        errors: Errors::default(),
        plan_note: plan_note(&state, ws.id()).await?,
    };
    let result = match DeviceInput::parse(&form.name, &form.kind, &form.phone_number) {
        Ok(input) => device::create(&state.pool, ws.id(), &input, state.limits(ws.id()).await?.devices).await,
        Err(errors) => {
            Err(DeviceError::Invalid(errors.into_iter().next().unwrap_or_else(
                || ender_core::FieldError::new("name", "Check the form."),
            )))
        }
    };
    match result {
        Ok(created) => {
            tracing::info!(workspace.id = %ws.id(), device.id = %created.device.id, "device added");
            let detail = serde_json::json!({ "device_id": created.device.id.to_string() });
            note(
                &state,
                ws.id(),
                ws.actor(),
                kind::DEVICE_ADDED,
                &created.device.name,
                detail,
            )
            .await;
            page.devices = rows(&state, ws.id()).await?;
            page.revealed = Some(reveal_device(&state, &created.device.name, &created.secret));
            page.name.clear();
            page.phone_number.clear();
            Ok(page.into_response())
        }
        Err(DeviceError::Invalid(e)) => {
            page.devices = rows(&state, ws.id()).await?;
            page.errors = Errors::one(e);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(DeviceError::TooMany(n)) => {
            page.devices = rows(&state, ws.id()).await?;
            page.errors = Errors::one(ender_core::FieldError::new(
                "name",
                format!("This workspace can register at most {n} devices."),
            ));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(DeviceError::NotFound) => Err(AppError::NotFound),
        Err(DeviceError::Database(e)) => Err(e.into()),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "devices/show.html")]
pub struct DevicePage {
    pub shell: Shell,
    pub device: DeviceRow,
    pub per_minute: String,
    pub per_day: String,
    pub revealed: Option<Revealed>,
    pub errors: Errors,
}

fn device_id(raw: &str) -> AppResult<DeviceId> {
    raw.parse().map_err(|_| AppError::NotFound)
}

async fn load(state: &AppState, workspace: WorkspaceId, raw: &str) -> AppResult<Device> {
    Ok(device::find(&state.pool, workspace, device_id(raw)?).await?)
}

fn device_page(state: &AppState, shell: Shell, d: &Device) -> DevicePage {
    DevicePage {
        shell,
        device: DeviceRow::new(d, state.sms.device_seen_window_secs),
        per_minute: d.per_minute_limit.to_string(),
        per_day: d.per_day_limit.to_string(),
        revealed: None,
        errors: Errors::default(),
    }
}

async fn show(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Path(raw): Path<String>,
) -> AppResult<DevicePage> {
    let d = load(&state, ws.id(), &raw).await?;
    Ok(device_page(&state, shell, &d))
}

fn field_error(e: DeviceError) -> AppResult<ender_core::FieldError> {
    match e {
        DeviceError::Invalid(f) => Ok(f),
        other => Err(other.into()),
    }
}

async fn update(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Path(raw): Path<String>,
    Form(form): Form<DeviceForm>,
) -> AppResult<Response> {
    ws.may(Action::ManageDevices)?;
    let d = load(&state, ws.id(), &raw).await?;
    match device::update(&state.pool, ws.id(), d.id, &form.name, &form.phone_number).await {
        Ok(()) => {
            flash(&session, "success", "The device was saved.").await?;
            Ok(Redirect::to(&format!("/devices/{}", d.id)).into_response())
        }
        Err(e) => {
            let mut page = device_page(&state, shell, &d);
            page.device.name = form.name;
            page.device.phone_number = form.phone_number;
            page.errors = Errors::one(field_error(e)?);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct PacingForm {
    per_minute_limit: String,
    per_day_limit: String,
}

async fn pacing(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Path(raw): Path<String>,
    Form(form): Form<PacingForm>,
) -> AppResult<Response> {
    ws.may(Action::ManageDevices)?;
    let d = load(&state, ws.id(), &raw).await?;
    let parse = |s: &str| s.trim().parse::<i32>().unwrap_or(0);
    match device::set_pacing(
        &state.pool,
        ws.id(),
        d.id,
        parse(&form.per_minute_limit),
        parse(&form.per_day_limit),
    )
    .await
    {
        Ok(()) => {
            flash(&session, "success", "Pacing saved.").await?;
            Ok(Redirect::to(&format!("/devices/{}", d.id)).into_response())
        }
        Err(e) => {
            let mut page = device_page(&state, shell, &d);
            page.per_minute = form.per_minute_limit;
            page.per_day = form.per_day_limit;
            page.errors = Errors::one(field_error(e)?);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct EnabledForm {
    enabled: String,
}

async fn enabled(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
    Form(form): Form<EnabledForm>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageDevices)?;
    let d = load(&state, ws.id(), &raw).await?;
    let on = form.enabled == "true";
    device::set_enabled(&state.pool, ws.id(), d.id, on)
        .await
        .map_err(AppError::from)?;
    flash(
        &session,
        "success",
        if on {
            "The device is enabled."
        } else {
            "The device is disabled; its waiting messages went back to the queue."
        },
    )
    .await?;
    Ok(Redirect::to(&format!("/devices/{}", d.id)))
}

async fn rotate(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Path(raw): Path<String>,
) -> AppResult<DevicePage> {
    ws.may(Action::ManageDevices)?;
    let d = load(&state, ws.id(), &raw).await?;
    let secret = device::rotate_key(&state.pool, ws.id(), d.id)
        .await
        .map_err(AppError::from)?;
    let detail = serde_json::json!({ "device_id": d.id.to_string() });
    note(
        &state,
        ws.id(),
        ws.actor(),
        kind::DEVICE_KEY_ROTATED,
        &d.name,
        detail,
    )
    .await;
    let mut page = device_page(&state, shell, &d);
    page.revealed = Some(reveal_device(&state, &d.name, &secret));
    Ok(page)
}

async fn delete(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageDevices)?;
    let d = load(&state, ws.id(), &raw).await?;
    device::delete(&state.pool, ws.id(), d.id)
        .await
        .map_err(AppError::from)?;
    let detail = serde_json::json!({ "device_id": d.id.to_string() });
    note(&state, ws.id(), ws.actor(), kind::DEVICE_REMOVED, &d.name, detail).await;
    flash(
        &session,
        "success",
        "The device was deleted. Messages it had not sent went back to the queue.",
    )
    .await?;
    Ok(Redirect::to(PATH))
}

/// Bars as phones show them, from dBm.
fn bars(dbm: i32) -> u8 {
    match dbm {
        d if d >= -73 => 4,
        d if d >= -83 => 3,
        d if d >= -93 => 2,
        d if d >= -109 => 1,
        _ => 0,
    }
}

fn radio(d: &Device) -> String {
    if d.status_at.is_none() {
        return String::new();
    }
    let mut parts = Vec::new();
    if let Some(dbm) = d.signal_dbm {
        parts.push(format!("{dbm} dBm"));
    }
    if !d.network_operator.is_empty() {
        parts.push(d.network_operator.clone());
    }
    if !d.registration.is_empty() {
        parts.push(d.registration.replace('_', " "));
    }
    parts.join(" · ")
}
