//! The webhook pages: the endpoints with their state and health, adding one (its secret
//! shown once on the next page), and per endpoint: settings, re-enable and replay, a test
//! event, the secret on demand and its rotation, replaying failures since a time, the live
//! delivery log and each delivery with every attempt (and "retry now").

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use ender_core::FieldError;
use ender_core::webhook::Event;
use ender_core::webhook::endpoint::{self, Breaker, Endpoint, EndpointError, EndpointInput};
use ender_core::webhook::log::{self, DayStats, Delivery, DeliveryStatus, PageQuery};
use ender_core::workspace::{Action, WorkspaceId};
use ender_worker::webhooks::Attempt;
use tower_sessions::Session;
use uuid::Uuid;

use crate::audit::note;
use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::{CurrentWorkspace, flash};
use crate::state::AppState;
use crate::views::{Errors, Shell, ago, is_htmx, vary};
use ender_core::workspace::audit::kind;

pub const PATH: &str = "/webhooks";
pub const NEW: &str = "/webhooks/new";
/// Deliveries one page of the log shows.
const PAGE: i64 = 50;
/// Session key: the endpoint just created, whose secret its page shows once.
const CREATED_KEY: &str = "webhook_created";

impl From<EndpointError> for AppError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::Database(e) => e.into(),
            EndpointError::Secret(e) => AppError::Internal(anyhow::anyhow!("webhook secret: {e}")),
            // Validation is handled where a form is re-rendered; anything else is "not yours".
            EndpointError::Invalid(_) | EndpointError::TooMany(_) | EndpointError::NotFound => {
                AppError::NotFound
            }
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list))
        .route(NEW, get(new_form).post(create))
        .route("/webhooks/{id}", get(show).post(update))
        .route("/webhooks/{id}/enable", post(enable))
        .route("/webhooks/{id}/test", post(test))
        .route("/webhooks/{id}/secret", post(reveal))
        .route("/webhooks/{id}/rotate", post(rotate))
        .route("/webhooks/{id}/replay", post(replay))
        .route("/webhooks/{id}/delete", post(delete))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route("/webhooks/{id}/deliveries/{delivery_id}", get(delivery))
        .route("/webhooks/{id}/deliveries/{delivery_id}/retry", post(retry))
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Whether the endpoint sends, as its owner sees it.
pub struct StateView {
    /// `active`, `paused` (by its owner) or `disabled` (by Ender).
    pub kind: &'static str,
    pub badge: &'static str,
    pub reason: String,
    pub since: String,
}

impl StateView {
    fn of(e: &Endpoint) -> Self {
        match (e.active, e.disabled_at) {
            (true, _) => Self {
                kind: "active",
                badge: "badge-ok",
                reason: String::new(),
                since: String::new(),
            },
            (false, Some(at)) => Self {
                kind: "disabled",
                badge: "badge-err",
                reason: e.disabled_reason.clone(),
                since: when(at),
            },
            (false, None) => Self {
                kind: "paused",
                badge: "badge-muted",
                reason: String::new(),
                since: String::new(),
            },
        }
    }

    pub fn label(&self) -> &'static str {
        match self.kind {
            "active" => "active",
            "disabled" => "disabled by Ender",
            _ => "paused by you",
        }
    }
}

/// How deliveries to the endpoint have been going.
pub struct HealthView {
    pub success_rate: String,
    pub succeeded: i64,
    pub failed: i64,
    pub breaker: &'static str,
    pub breaker_label: &'static str,
    pub breaker_badge: &'static str,
    pub consecutive_failures: i32,
    pub last_failure: String,
    pub last_failure_at: String,
    pub failing_since: String,
}

impl HealthView {
    fn of(e: &Endpoint, stats: DayStats) -> Self {
        let breaker = e.breaker();
        Self {
            success_rate: stats
                .success_rate()
                .map(|r| format!("{:.1}%", r * 100.0))
                .unwrap_or_else(|| "—".to_owned()),
            succeeded: stats.succeeded,
            failed: stats.failed,
            breaker: breaker.as_str(),
            breaker_label: match breaker {
                Breaker::Closed => "closed",
                Breaker::Open => "open: deliveries wait",
                Breaker::HalfOpen => "half-open: probing",
            },
            breaker_badge: match breaker {
                Breaker::Closed => "badge-ok",
                Breaker::Open => "badge-err",
                Breaker::HalfOpen => "badge-warn",
            },
            consecutive_failures: e.consecutive_failures,
            last_failure: e.last_failure.clone(),
            last_failure_at: e.last_failure_at.map(when).unwrap_or_default(),
            failing_since: e.failing_since.map(when).unwrap_or_default(),
        }
    }

    /// "3 min ago" for the list.
    fn last_failure_ago(e: &Endpoint) -> String {
        if e.last_failure_at.is_none() {
            String::new()
        } else {
            ago(e.last_failure_at)
        }
    }
}

pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub state: StateView,
    pub health: HealthView,
    pub last_failure_ago: String,
}

impl EndpointRow {
    fn new(e: &Endpoint, stats: DayStats) -> Self {
        Self {
            id: e.id.to_string(),
            url: e.url.clone(),
            description: e.description.clone(),
            events: e.events.clone(),
            state: StateView::of(e),
            health: HealthView::of(e, stats),
            last_failure_ago: HealthView::last_failure_ago(e),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "webhooks/list.html")]
pub struct WebhooksPage {
    pub shell: Shell,
    pub endpoints: Vec<EndpointRow>,
}

async fn list(State(state): State<AppState>, ws: CurrentWorkspace, shell: Shell) -> AppResult<WebhooksPage> {
    let stats = endpoint::day_stats(&state.pool, ws.id()).await?;
    let endpoints = endpoint::list(&state.pool, ws.id())
        .await?
        .iter()
        .map(|e| EndpointRow::new(e, DayStats::of(&stats, e.id)))
        .collect();
    Ok(WebhooksPage { shell, endpoints })
}

fn event_label(e: Event) -> &'static str {
    match e {
        Event::SmsReceived => "SMS received",
        Event::SmsSent => "SMS sent",
        Event::SmsDelivered => "SMS delivered",
        Event::SmsFailed => "SMS failed",
        Event::SmsExpired => "SMS expired",
        Event::DeviceOnline => "Device online",
        Event::DeviceOffline => "Device offline",
        Event::Test => "Test",
    }
}

pub struct EventOption {
    pub name: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

/// The endpoint form's values as submitted (or as stored), and the choices it offers.
pub struct EndpointForm {
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub device_id: String,
    pub include_body: bool,
    pub active: bool,
    /// The user's devices: id and name.
    pub devices: Vec<(String, String)>,
}

impl EndpointForm {
    /// From the submitted pairs: `events` repeats, one per ticked box; an unticked
    /// checkbox is simply absent.
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self {
            url: String::new(),
            description: String::new(),
            events: Vec::new(),
            device_id: String::new(),
            include_body: false,
            active: false,
            devices: Vec::new(),
        };
        for (k, v) in pairs {
            match k.as_str() {
                "url" => f.url = v,
                "description" => f.description = v,
                "events" => f.events.push(v),
                "device_id" => f.device_id = v,
                "include_body" => f.include_body = true,
                "active" => f.active = true,
                _ => {}
            }
        }
        f
    }

    fn of(e: &Endpoint) -> Self {
        Self {
            url: e.url.clone(),
            description: e.description.clone(),
            events: e.events.clone(),
            device_id: e.device_id.map(|d| d.to_string()).unwrap_or_default(),
            include_body: e.include_body,
            active: e.active,
            devices: Vec::new(),
        }
    }

    fn blank() -> Self {
        Self::from_pairs(Vec::new())
    }

    async fn with_devices(mut self, state: &AppState, workspace: WorkspaceId) -> AppResult<Self> {
        self.devices = ender_core::device::list(&state.pool, workspace)
            .await?
            .into_iter()
            .map(|d| (d.id.to_string(), d.name))
            .collect();
        Ok(self)
    }

    fn parse(&self, state: &AppState) -> Result<EndpointInput, FieldError> {
        EndpointInput::parse(
            &self.url,
            &self.events,
            &self.description,
            Some(&self.device_id),
            self.include_body,
            &state.webhooks.allow,
        )
    }

    /// Every subscribable event, ticked when chosen.
    pub fn event_options(&self) -> Vec<EventOption> {
        Event::SUBSCRIBABLE
            .into_iter()
            .map(|e| EventOption {
                name: e.as_str(),
                label: event_label(e),
                checked: self.events.iter().any(|x| x == e.as_str()),
            })
            .collect()
    }
}

/// The field error of a failed create or update, or the failure to report otherwise.
fn field_error(e: EndpointError) -> AppResult<FieldError> {
    match e {
        EndpointError::Invalid(f) => Ok(f),
        EndpointError::TooMany(_) => Ok(FieldError::new("url", e.to_string())),
        other => Err(other.into()),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "webhooks/new.html")]
pub struct NewWebhookPage {
    pub shell: Shell,
    pub form: EndpointForm,
    pub errors: Errors,
}

async fn new_form(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
) -> AppResult<NewWebhookPage> {
    ws.may(Action::ManageWebhooks)?;
    Ok(NewWebhookPage {
        shell,
        form: EndpointForm::blank().with_devices(&state, ws.id()).await?,
        errors: Errors::default(),
    })
}

async fn create(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageWebhooks)?;
    let form = EndpointForm::from_pairs(pairs);
    let result = match form.parse(&state) {
        Ok(input) => {
            endpoint::create(
                &state.pool,
                &state.webhooks.keyring,
                ws.id(),
                &input,
                state.limits(ws.id()).await?.webhooks,
            )
            .await
        }
        Err(f) => Err(f.into()),
    };
    match result {
        Ok((e, _secret)) => {
            tracing::info!(workspace.id = %ws.id(), webhook.id = %e.id, "webhook endpoint added");
            note(
                &state,
                ws.id(),
                ws.actor(),
                kind::WEBHOOK_CREATED,
                &e.url,
                serde_json::json!({ "webhook_id": e.id.to_string() }),
            )
            .await;
            // The secret itself stays sealed in the database; the next page opens it once.
            session.insert(CREATED_KEY, e.id).await?;
            flash(&session, "success", "The endpoint was added.").await?;
            Ok(Redirect::to(&format!("/webhooks/{}", e.id)).into_response())
        }
        Err(e) => {
            let page = NewWebhookPage {
                shell,
                form: form.with_devices(&state, ws.id()).await?,
                errors: Errors::one(field_error(e)?),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

fn endpoint_id(raw: &str) -> AppResult<Uuid> {
    raw.parse().map_err(|_| AppError::NotFound)
}

async fn load(state: &AppState, workspace: WorkspaceId, raw: &str) -> AppResult<Endpoint> {
    Ok(endpoint::find(&state.pool, workspace, endpoint_id(raw)?).await?)
}

async fn row(state: &AppState, workspace: WorkspaceId, e: &Endpoint) -> AppResult<EndpointRow> {
    let stats = endpoint::day_stats(&state.pool, workspace).await?;
    Ok(EndpointRow::new(e, DayStats::of(&stats, e.id)))
}

/// A secret being shown, with the copy button.
pub struct SecretView {
    pub title: String,
    pub secret: String,
    pub note: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "webhooks/_secret.html")]
pub struct SecretPartial {
    pub secret: SecretView,
}

/// What one test or retry attempt did.
pub struct AttemptResult {
    pub delivery_status: String,
    pub badge: &'static str,
    pub response_status: String,
    pub duration_ms: i32,
    pub error: String,
    /// Said when the endpoint does not receive its events right now.
    pub note: String,
    pub link: String,
}

impl AttemptResult {
    fn new(a: &Attempt, e: &Endpoint, link: String) -> Self {
        Self {
            badge: badge(&a.delivery_status),
            delivery_status: a.delivery_status.clone(),
            response_status: a
                .response_status
                .map(|s| format!("HTTP {s}"))
                .unwrap_or_else(|| "no response".to_owned()),
            duration_ms: a.duration_ms,
            error: a.error.clone(),
            note: match StateView::of(e).kind {
                "disabled" => "Ender disabled this endpoint; the test was still sent.".to_owned(),
                "paused" => "This endpoint is paused; the test was still sent.".to_owned(),
                _ => String::new(),
            },
            link,
        }
    }

    /// One line for a toast.
    fn summary(&self) -> String {
        let mut s = format!("{} in {} ms", self.response_status, self.duration_ms);
        if !self.error.is_empty() {
            s.push_str(": ");
            s.push_str(&self.error);
        }
        s
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "webhooks/_test_result.html")]
pub struct TestResultPartial {
    pub result: AttemptResult,
}

pub fn badge(status: &str) -> &'static str {
    match status {
        "succeeded" => "badge-ok",
        "failed" | "dropped" => "badge-err",
        "pending" | "delivering" => "badge-warn",
        _ => "badge-muted",
    }
}

pub struct DeliveryRow {
    pub id: String,
    pub when: String,
    pub event: String,
    pub status: String,
    pub badge: &'static str,
    pub attempts: i32,
    pub last: String,
    pub next_attempt: String,
}

impl DeliveryRow {
    /// The last response for the table; the delivery's page has all of it.
    pub fn last_short(&self) -> String {
        const MAX: usize = 80;
        if self.last.chars().count() > MAX {
            format!("{}…", self.last.chars().take(MAX).collect::<String>())
        } else {
            self.last.clone()
        }
    }
}

impl From<&Delivery> for DeliveryRow {
    fn from(d: &Delivery) -> Self {
        let last = match (d.last_status, d.last_error.is_empty()) {
            (Some(s), true) => format!("HTTP {s}"),
            (Some(s), false) => format!("HTTP {s}: {}", d.last_error),
            (None, _) => d.last_error.clone(),
        };
        Self {
            id: d.id.to_string(),
            when: d.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            event: d.event.clone(),
            status: d.status.clone(),
            badge: badge(&d.status),
            attempts: d.attempts,
            last,
            next_attempt: if d.is_pending() {
                d.next_attempt_at.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                String::new()
            },
        }
    }
}

/// One page of an endpoint's deliveries; the first page refreshes itself.
pub struct DeliveryLog {
    pub endpoint_id: String,
    pub status: String,
    pub rows: Vec<DeliveryRow>,
    /// The id to continue from for older deliveries ("" on the last page).
    pub next: String,
    pub live: bool,
}

impl DeliveryLog {
    pub fn statuses(&self) -> Vec<&'static str> {
        DeliveryStatus::ALL
            .into_iter()
            .map(DeliveryStatus::as_str)
            .collect()
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct LogQuery {
    status: String,
    before: String,
}

async fn delivery_log(
    state: &AppState,
    workspace: WorkspaceId,
    e: &Endpoint,
    q: &LogQuery,
) -> AppResult<DeliveryLog> {
    let status = DeliveryStatus::parse(q.status.trim());
    let before = q.before.trim().parse::<Uuid>().ok();
    let rows = log::page(
        &state.pool,
        workspace,
        e.id,
        PageQuery {
            status,
            before,
            limit: PAGE,
        },
    )
    .await?;
    let next = if rows.len() as i64 == PAGE {
        rows.last().map(|d| d.id.to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(DeliveryLog {
        endpoint_id: e.id.to_string(),
        status: status.map(DeliveryStatus::as_str).unwrap_or("").to_owned(),
        rows: rows.iter().map(DeliveryRow::from).collect(),
        next,
        live: before.is_none(),
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "webhooks/show.html")]
pub struct WebhookPage {
    pub shell: Shell,
    pub endpoint: EndpointRow,
    pub form: EndpointForm,
    pub errors: Errors,
    pub revealed: Option<SecretView>,
    pub test_result: Option<AttemptResult>,
    /// The "replay failed since" field (UTC, as `datetime-local` writes it).
    pub since: String,
    pub log: DeliveryLog,
}

async fn webhook_page(
    state: &AppState,
    workspace: WorkspaceId,
    shell: Shell,
    e: &Endpoint,
) -> AppResult<WebhookPage> {
    Ok(WebhookPage {
        shell,
        endpoint: row(state, workspace, e).await?,
        form: EndpointForm::of(e).with_devices(state, workspace).await?,
        errors: Errors::default(),
        revealed: None,
        test_result: None,
        since: (Utc::now() - Duration::hours(24))
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
        log: delivery_log(state, workspace, e, &LogQuery::default()).await?,
    })
}

async fn show(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Path(raw): Path<String>,
) -> AppResult<WebhookPage> {
    let e = load(&state, ws.id(), &raw).await?;
    let mut page = webhook_page(&state, ws.id(), shell, &e).await?;
    if session.get::<Uuid>(CREATED_KEY).await? == Some(e.id) {
        session.remove::<Uuid>(CREATED_KEY).await?;
        let secret = endpoint::reveal_secret(&state.pool, &state.webhooks.keyring, ws.id(), e.id).await?;
        page.revealed = Some(SecretView {
            title: "The signing secret of your new endpoint".to_owned(),
            secret,
            note: "Your receiver checks each delivery's signature with it. You can show it again here at any time."
                .to_owned(),
        });
    }
    Ok(page)
}

async fn update(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Path(raw): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageWebhooks)?;
    let e = load(&state, ws.id(), &raw).await?;
    let form = EndpointForm::from_pairs(pairs);
    let result = match form.parse(&state) {
        Ok(input) => endpoint::update(&state.pool, ws.id(), e.id, &input, form.active).await,
        Err(f) => Err(f.into()),
    };
    match result {
        Ok(()) => {
            note(
                &state,
                ws.id(),
                ws.actor(),
                kind::WEBHOOK_CHANGED,
                &e.url,
                serde_json::json!({ "webhook_id": e.id.to_string() }),
            )
            .await;
            flash(&session, "success", "The endpoint was saved.").await?;
            Ok(Redirect::to(&format!("/webhooks/{}", e.id)).into_response())
        }
        Err(err) => {
            let mut page = webhook_page(&state, ws.id(), shell, &e).await?;
            page.form = form.with_devices(&state, ws.id()).await?;
            page.errors = Errors::one(field_error(err)?);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

async fn enable(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageWebhooks)?;
    let e = load(&state, ws.id(), &raw).await?;
    let n = endpoint::reenable_and_replay(&state.pool, ws.id(), e.id).await?;
    tracing::info!(workspace.id = %ws.id(), webhook.id = %e.id, replayed = n, "webhook endpoint re-enabled");
    flash(
        &session,
        "success",
        format!(
            "The endpoint is enabled again; {n} missed deliver{} queued.",
            if n == 1 { "y was" } else { "ies were" }
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("/webhooks/{}", e.id)))
}

async fn test(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    headers: HeaderMap,
    shell: Shell,
    Path(raw): Path<String>,
) -> AppResult<Response> {
    ws.may(Action::ManageWebhooks)?;
    let e = load(&state, ws.id(), &raw).await?;
    let delivery = endpoint::create_test_delivery(&state.pool, ws.id(), e.id).await?;
    let attempt = state
        .webhooks
        .deliverer
        .deliver_now(delivery)
        .await?
        .ok_or(AppError::NotFound)?;
    let result = AttemptResult::new(&attempt, &e, format!("/webhooks/{}/deliveries/{delivery}", e.id));
    if is_htmx(&headers) {
        return Ok(vary(TestResultPartial { result }.into_response()));
    }
    let mut page = webhook_page(&state, ws.id(), shell, &e).await?;
    page.test_result = Some(result);
    Ok(vary(page.into_response()))
}

async fn reveal(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    headers: HeaderMap,
    shell: Shell,
    Path(raw): Path<String>,
) -> AppResult<Response> {
    ws.may(Action::ManageWebhooks)?;
    let e = load(&state, ws.id(), &raw).await?;
    let secret = SecretView {
        title: "Signing secret".to_owned(),
        secret: endpoint::reveal_secret(&state.pool, &state.webhooks.keyring, ws.id(), e.id).await?,
        note: "Keep it like a password. Anyone holding it can forge deliveries from Ender.".to_owned(),
    };
    note(
        &state,
        ws.id(),
        ws.actor(),
        kind::WEBHOOK_SECRET_REVEALED,
        &e.url,
        serde_json::json!({ "webhook_id": e.id.to_string() }),
    )
    .await;
    if is_htmx(&headers) {
        return Ok(vary(SecretPartial { secret }.into_response()));
    }
    let mut page = webhook_page(&state, ws.id(), shell, &e).await?;
    page.revealed = Some(secret);
    Ok(vary(page.into_response()))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct RotateForm {
    overlap: String,
}

/// How long the previous secret keeps signing: `24h` (the default), `1h`, `7d` or `0`.
fn overlap(raw: &str) -> Option<(Duration, &'static str)> {
    match raw.trim() {
        "" | "24h" => Some((Duration::hours(24), "for 24 hours")),
        "1h" => Some((Duration::hours(1), "for 1 hour")),
        "7d" => Some((Duration::days(7), "for 7 days")),
        "0" => Some((Duration::zero(), "")),
        _ => None,
    }
}

async fn rotate(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Path(raw): Path<String>,
    Form(form): Form<RotateForm>,
) -> AppResult<Response> {
    ws.may(Action::ManageWebhooks)?;
    let e = load(&state, ws.id(), &raw).await?;
    let Some((overlap, phrase)) = overlap(&form.overlap) else {
        let mut page = webhook_page(&state, ws.id(), shell, &e).await?;
        page.errors = Errors::one(FieldError::new(
            "overlap",
            "Choose how long the old secret keeps working.",
        ));
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let secret =
        endpoint::rotate_secret(&state.pool, &state.webhooks.keyring, ws.id(), e.id, overlap).await?;
    tracing::info!(workspace.id = %ws.id(), webhook.id = %e.id, overlap_secs = overlap.num_seconds(), "webhook secret rotated");
    note(
        &state,
        ws.id(),
        ws.actor(),
        kind::WEBHOOK_SECRET_ROTATED,
        &e.url,
        serde_json::json!({ "webhook_id": e.id.to_string() }),
    )
    .await;
    let mut page = webhook_page(&state, ws.id(), shell, &e).await?;
    page.revealed = Some(SecretView {
        title: "The new signing secret".to_owned(),
        secret,
        note: if phrase.is_empty() {
            "The previous secret was revoked: deliveries are signed with this one only.".to_owned()
        } else {
            format!(
                "Deliveries carry signatures with both secrets {phrase}, so you can update your receiver in the meantime."
            )
        },
    });
    Ok(page.into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ReplayForm {
    since: String,
}

/// A `datetime-local` value, read as UTC, in the past.
fn parse_since(raw: &str) -> Result<DateTime<Utc>, FieldError> {
    let raw = raw.trim();
    let t = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .ok_or_else(|| FieldError::new("since", "Enter a date and time, like 2026-12-01T09:00 (UTC)."))?
        .and_utc();
    if t > Utc::now() {
        return Err(FieldError::new("since", "Choose a moment in the past."));
    }
    Ok(t)
}

async fn replay(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Path(raw): Path<String>,
    Form(form): Form<ReplayForm>,
) -> AppResult<Response> {
    ws.may(Action::ManageWebhooks)?;
    let e = load(&state, ws.id(), &raw).await?;
    let since = match parse_since(&form.since) {
        Ok(t) => t,
        Err(f) => {
            let mut page = webhook_page(&state, ws.id(), shell, &e).await?;
            page.since = form.since;
            page.errors = Errors::one(f);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let n = endpoint::replay_failed(&state.pool, ws.id(), e.id, since).await?;
    flash(
        &session,
        "success",
        format!(
            "{n} failed deliver{} since {} {} queued again.",
            if n == 1 { "y" } else { "ies" },
            since.format("%Y-%m-%d %H:%M UTC"),
            if n == 1 { "was" } else { "were" }
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("/webhooks/{}", e.id)).into_response())
}

async fn delete(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageWebhooks)?;
    let e = load(&state, ws.id(), &raw).await?;
    endpoint::delete(&state.pool, ws.id(), e.id).await?;
    tracing::info!(workspace.id = %ws.id(), webhook.id = %e.id, "webhook endpoint deleted");
    note(
        &state,
        ws.id(),
        ws.actor(),
        kind::WEBHOOK_DELETED,
        &e.url,
        serde_json::json!({ "webhook_id": e.id.to_string() }),
    )
    .await;
    flash(
        &session,
        "success",
        "The endpoint was deleted, with its delivery log.",
    )
    .await?;
    Ok(Redirect::to(PATH))
}

#[derive(Template, WebTemplate)]
#[template(path = "webhooks/_deliveries.html")]
pub struct DeliveriesPartial {
    pub log: DeliveryLog,
}

#[derive(Template, WebTemplate)]
#[template(path = "webhooks/deliveries.html")]
pub struct DeliveriesPage {
    pub shell: Shell,
    pub endpoint: EndpointRow,
    pub log: DeliveryLog,
}

/// The delivery log: the table alone for HTMX (the live refresh), the page otherwise.
async fn deliveries(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    headers: HeaderMap,
    shell: Shell,
    Path(raw): Path<String>,
    Query(q): Query<LogQuery>,
) -> AppResult<Response> {
    let e = load(&state, ws.id(), &raw).await?;
    let log = delivery_log(&state, ws.id(), &e, &q).await?;
    if is_htmx(&headers) {
        return Ok(vary(DeliveriesPartial { log }.into_response()));
    }
    Ok(vary(
        DeliveriesPage {
            shell,
            endpoint: row(&state, ws.id(), &e).await?,
            log,
        }
        .into_response(),
    ))
}

pub struct AttemptView {
    pub id: i64,
    pub when: String,
    pub response_status: String,
    pub duration_ms: i32,
    pub error: String,
    pub headers: Vec<(String, String)>,
    pub response_body: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "webhooks/delivery.html")]
pub struct DeliveryPage {
    pub shell: Shell,
    pub endpoint: EndpointRow,
    pub d: DeliveryRow,
    pub message_id: String,
    pub delivered_at: String,
    pub payload: String,
    pub attempts: Vec<AttemptView>,
}

/// The body as indented JSON (it is JSON unless something went very wrong).
fn pretty(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

fn delivery_id(raw: &str) -> AppResult<Uuid> {
    raw.parse().map_err(|_| AppError::NotFound)
}

async fn delivery(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Path((raw, raw_delivery)): Path<(String, String)>,
) -> AppResult<DeliveryPage> {
    let e = load(&state, ws.id(), &raw).await?;
    let detail = log::find(&state.pool, ws.id(), e.id, delivery_id(&raw_delivery)?).await?;
    let attempts = detail
        .attempts
        .iter()
        .map(|a| AttemptView {
            id: a.id,
            when: a.created_at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            response_status: a
                .response_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "—".to_owned()),
            duration_ms: a.duration_ms,
            error: a.error.clone(),
            headers: a
                .request_headers
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            response_body: a.response_body.clone(),
        })
        .collect();
    Ok(DeliveryPage {
        shell,
        endpoint: row(&state, ws.id(), &e).await?,
        d: DeliveryRow::from(&detail.delivery),
        message_id: detail.delivery.message_id.clone(),
        delivered_at: detail.delivery.delivered_at.map(when).unwrap_or_default(),
        payload: pretty(&detail.body),
        attempts,
    })
}

/// Sends the delivery again now, with the same id and bytes.
async fn retry(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path((raw, raw_delivery)): Path<(String, String)>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageWebhooks)?;
    let e = load(&state, ws.id(), &raw).await?;
    let detail = log::find(&state.pool, ws.id(), e.id, delivery_id(&raw_delivery)?).await?;
    let id = detail.delivery.id;
    let to = format!("/webhooks/{}/deliveries/{id}", e.id);
    match state.webhooks.deliverer.deliver_now(id).await? {
        Some(attempt) => {
            let result = AttemptResult::new(&attempt, &e, to.clone());
            let kind = if attempt.delivery_status == "succeeded" {
                "success"
            } else {
                "error"
            };
            flash(&session, kind, format!("Sent again: {}", result.summary())).await?;
        }
        None => {
            flash(
                &session,
                "error",
                "This delivery is being sent right now; try again in a moment.",
            )
            .await?;
        }
    }
    Ok(Redirect::to(&to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_since_is_a_past_utc_moment() {
        let t = parse_since("2026-01-14T09:30").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-14T09:30:00+00:00");
        assert!(parse_since("2026-01-14T09:30:15").is_ok());
        for bad in ["", "yesterday", "2026-13-01T00:00", "2999-01-01T00:00"] {
            assert_eq!(parse_since(bad).unwrap_err().field, "since", "{bad}");
        }
    }

    #[test]
    fn rotation_overlaps_are_the_offered_choices() {
        assert_eq!(overlap("").map(|o| o.0), Some(Duration::hours(24)));
        assert_eq!(overlap("1h").map(|o| o.0), Some(Duration::hours(1)));
        assert_eq!(overlap("7d").map(|o| o.0), Some(Duration::days(7)));
        assert_eq!(overlap("0").map(|o| o.0), Some(Duration::zero()));
        assert!(overlap("forever").is_none());
    }
}
