//! The API keys page: create with chosen scopes (the key shown once, with the onboarding
//! QR), list with scopes and last use, revoke, rotate.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{NaiveDate, TimeZone, Utc};
use ender_core::apikey::{self, ApiKey, ApiKeyError, ApiKeyId, NewApiKey, Scope, Scopes};
use ender_core::workspace::{Action, WorkspaceId};
use serde_json::json;
use tower_sessions::Session;

use crate::audit::note;
use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::{CurrentWorkspace, flash};
use crate::state::AppState;
use crate::views::{Errors, Shell, ago, qr_svg};
use ender_core::workspace::audit::kind;

pub const PATH: &str = "/api-keys";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list).post(create))
        .route("/api-keys/{id}/revoke", post(revoke))
        .route("/api-keys/{id}/rotate", post(rotate))
}

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub scopes: String,
    pub active: bool,
    pub revoked: bool,
}

/// One scope checkbox of the create form.
pub struct ScopeChoice {
    pub name: &'static str,
    pub describe: &'static str,
    pub checked: bool,
}

fn scope_choices(chosen: Scopes) -> Vec<ScopeChoice> {
    Scope::ALL
        .into_iter()
        .map(|s| ScopeChoice {
            name: s.as_str(),
            describe: s.describe(),
            checked: chosen.contains(s),
        })
        .collect()
}

impl From<&ApiKey> for KeyRow {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created: k.created_at.format("%Y-%m-%d").to_string(),
            last_used: ago(k.last_used_at),
            expires: k
                .expires_at
                .map(|e| e.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "never".to_owned()),
            scopes: k.scopes.names().join(", "),
            active: k.is_active(),
            revoked: k.revoked_at.is_some(),
        }
    }
}

/// A key being shown its only time.
pub struct Revealed {
    pub name: String,
    pub secret: String,
    pub qr: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "keys/list.html")]
pub struct KeysPage {
    pub shell: Shell,
    pub keys: Vec<KeyRow>,
    pub revealed: Option<Revealed>,
    pub name: String,
    pub expires: String,
    pub scopes: Vec<ScopeChoice>,
    pub errors: Errors,
}

async fn page(state: &AppState, workspace: WorkspaceId, shell: Shell) -> AppResult<KeysPage> {
    let keys = apikey::list(&state.pool, workspace).await?;
    Ok(KeysPage {
        shell,
        keys: keys.iter().map(KeyRow::from).collect(),
        revealed: None,
        name: String::new(),
        expires: String::new(),
        scopes: scope_choices(Scopes::default_for_new_keys()),
        errors: Errors::default(),
    })
}

fn reveal(state: &AppState, created: &NewApiKey) -> Revealed {
    let qr_text = json!({
        "server_instance": state.config.public_url.as_str().trim_end_matches('/'),
        "api_key": created.secret,
        "version": "0.1",
    })
    .to_string();
    Revealed {
        name: created.key.name.clone(),
        secret: created.secret.clone(),
        qr: qr_svg(&qr_text),
    }
}

async fn list(State(state): State<AppState>, ws: CurrentWorkspace, shell: Shell) -> AppResult<KeysPage> {
    ws.may(Action::ManageKeys)?;
    page(&state, ws.id(), shell).await
}

#[derive(Default)]
pub struct CreateForm {
    name: String,
    expires: String,
    scopes: Vec<String>,
}

impl CreateForm {
    /// From the submitted pairs (`scopes` repeats, one per ticked box).
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "name" => f.name = v,
                "expires" => f.expires = v,
                "scopes" => f.scopes.push(v),
                _ => {}
            }
        }
        f
    }
}

async fn create(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageKeys)?;
    let form = CreateForm::from_pairs(pairs);
    let mut p = page(&state, ws.id(), shell).await?;
    p.name = form.name.clone();
    p.expires = form.expires.clone();
    p.scopes = scope_choices(Scopes::from_names(&form.scopes));
    let scopes = match Scopes::parse_requested(&form.scopes) {
        Ok(s) => s,
        Err(e) => {
            if let Err(name) = apikey::parse_name(&form.name) {
                p.errors.push(name);
            }
            p.errors.push(e);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
        }
    };
    let expires_at = match form.expires.trim() {
        "" => None,
        raw => match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Ok(d) => d.and_hms_opt(23, 59, 59).map(|t| Utc.from_utc_datetime(&t)),
            Err(_) => {
                p.errors = Errors::one(ender_core::FieldError::new(
                    "expires",
                    "Use a date like 2027-01-31.",
                ));
                return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
            }
        },
    };
    match apikey::create(
        &state.pool,
        ws.id(),
        Some(ws.user_id()),
        &form.name,
        scopes,
        expires_at,
        state.limits(ws.id()).await?.api_keys,
    )
    .await
    {
        Ok(created) => {
            tracing::info!(workspace.id = %ws.id(), key.id = %created.key.id, "API key created");
            let scopes = serde_json::json!({ "scopes": created.key.scopes.names() });
            note(
                &state,
                ws.id(),
                ws.actor(),
                kind::KEY_CREATED,
                &created.key.name,
                scopes,
            )
            .await;
            let mut p = page(&state, ws.id(), p.shell).await?;
            p.revealed = Some(reveal(&state, &created));
            Ok(p.into_response())
        }
        Err(ApiKeyError::Invalid(e)) => {
            p.errors = Errors::one(e);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response())
        }
        Err(ApiKeyError::TooMany(_)) => {
            p.errors = Errors::one(ender_core::FieldError::new(
                "name",
                format!(
                    "This workspace can hold at most {} active API keys. Revoke one first.",
                    state.limits(ws.id()).await?.api_keys
                ),
            ));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response())
        }
        Err(ApiKeyError::NotFound) => Err(AppError::NotFound),
        Err(ApiKeyError::Database(e)) => Err(e.into()),
    }
}

fn key_id(raw: &str) -> AppResult<ApiKeyId> {
    raw.parse::<uuid::Uuid>()
        .map(ApiKeyId)
        .map_err(|_| AppError::NotFound)
}

async fn revoke(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageKeys)?;
    let id = key_id(&raw)?;
    let name = apikey::find(&state.pool, ws.id(), id)
        .await
        .map(|k| k.name)
        .unwrap_or_default();
    match apikey::revoke(&state.pool, ws.id(), id).await {
        Ok(()) => {
            note(&state, ws.id(), ws.actor(), kind::KEY_REVOKED, &name, json!({})).await;
            flash(
                &session,
                "success",
                "The key was revoked. Requests using it now fail.",
            )
            .await?;
            Ok(Redirect::to(PATH))
        }
        Err(ApiKeyError::Database(e)) => Err(e.into()),
        Err(_) => Err(AppError::NotFound),
    }
}

async fn rotate(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Path(raw): Path<String>,
) -> AppResult<KeysPage> {
    ws.may(Action::ManageKeys)?;
    match apikey::rotate(&state.pool, ws.id(), Some(ws.user_id()), key_id(&raw)?).await {
        Ok(created) => {
            note(
                &state,
                ws.id(),
                ws.actor(),
                kind::KEY_ROTATED,
                &created.key.name,
                json!({}),
            )
            .await;
            let mut p = page(&state, ws.id(), shell).await?;
            p.revealed = Some(reveal(&state, &created));
            Ok(p)
        }
        Err(ApiKeyError::Database(e)) => Err(e.into()),
        Err(_) => Err(AppError::NotFound),
    }
}
