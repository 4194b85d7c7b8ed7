//! Instance settings: the Settings page, `GET/PUT /api/system-config` for administrators,
//! and the public `GET /api/utils/app-settings` Vendel's clients read.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ender_core::FieldError;
use ender_core::account::User;
use ender_core::admin::settings::{self, KEYS, Kind, Settings};
use serde_json::{Value, json};
use tower_sessions::Session;

use super::{admin_of, done};
use crate::error::AppResult;
use crate::extract::{ApiJson, Form};
use crate::routes::api::ApiError;
use crate::session::{AdminUser, MaybeUser};
use crate::state::AppState;
use crate::views::{Errors, Shell};

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/settings", get(page).post(save_form))
}

/// The JSON routes, nested under `/api`.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/system-config", get(api_get).put(api_put))
        .route("/utils/app-settings", get(app_settings))
}

pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    /// `text`, `email`, `url`, `bool`, `choice` or `secret`.
    pub kind: &'static str,
    /// For choices: each option and whether it is the current one.
    pub options: Vec<(&'static str, bool)>,
    pub value: String,
    /// The environment variable that sets it, when one does (the field is then read-only).
    pub pinned: Option<&'static str>,
    pub restart: bool,
    /// For secrets: whether one is set.
    pub set: bool,
}

fn fields(s: &Settings, typed: Option<&[(String, String)]>) -> Vec<Field> {
    KEYS.iter()
        .map(|k| {
            let (kind, options) = match k.kind {
                Kind::Text(_) => ("text", &[][..]),
                Kind::Email => ("email", &[][..]),
                Kind::Url => ("url", &[][..]),
                Kind::Bool => ("bool", &[][..]),
                Kind::Choice(o) => ("choice", o),
                Kind::Secret => ("secret", &[][..]),
            };
            let typed_value = typed.and_then(|t| t.iter().find(|(n, _)| n == k.key).map(|(_, v)| v.clone()));
            let value = if k.kind == Kind::Secret {
                String::new()
            } else if k.kind == Kind::Bool && typed.is_some() && settings::pinned_by_env(k).is_none() {
                // An unticked box is not sent.
                if typed_value.is_some() { "true" } else { "false" }.to_owned()
            } else {
                typed_value.unwrap_or_else(|| s.get(k.key).to_owned())
            };
            Field {
                key: k.key,
                label: k.label,
                help: k.help,
                kind,
                options: options.iter().map(|o| (*o, *o == value)).collect(),
                value,
                pinned: settings::pinned_by_env(k),
                restart: k.restart,
                set: s.is_set(k.key),
            }
        })
        .collect()
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/settings.html")]
pub struct SettingsPage {
    pub shell: Shell,
    pub fields: Vec<Field>,
    pub errors: Errors,
}

async fn page(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    shell: Shell,
) -> AppResult<SettingsPage> {
    let current = settings::load(&mut *state.pool.acquire().await?).await?;
    Ok(SettingsPage {
        shell,
        fields: fields(&current, None),
        errors: Errors::default(),
    })
}

/// Saves (the log entry is written with it) and refreshes this process's copy at once
/// (the others hear the notification).
async fn save(state: &AppState, admin: &User, input: &[(String, String)]) -> Result<usize, Vec<FieldError>> {
    let changes = settings::save(&state.pool, &admin_of(admin), input).await?;
    if !changes.is_empty()
        && let Err(e) = state.settings.reload(&state.pool).await
    {
        tracing::warn!(error = %e, "reloading the instance settings failed");
    }
    Ok(changes.len())
}

async fn save_form(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    session: Session,
    shell: Shell,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let mut input: Vec<(String, String)> = Vec::new();
    let mut unknown = Vec::new();
    for (name, value) in &pairs {
        if name == "_csrf" {
            continue;
        }
        if settings::key(name).is_none() {
            unknown.push(FieldError::new(
                "settings",
                format!("There is no setting called “{name}”."),
            ));
            continue;
        }
        input.push((name.clone(), value.clone()));
    }
    // Every editable checkbox is part of the form: an unticked one means "false".
    for k in KEYS {
        if k.kind == Kind::Bool
            && settings::pinned_by_env(k).is_none()
            && !input.iter().any(|(n, _)| n == k.key)
        {
            input.push((k.key.to_owned(), "false".to_owned()));
        }
    }
    // Pinned fields are shown read-only and not sent; ignore any that are.
    input.retain(|(n, _)| settings::key(n).and_then(settings::pinned_by_env).is_none());
    let result = if unknown.is_empty() {
        save(&state, &admin, &input).await
    } else {
        Err(unknown)
    };
    match result {
        Ok(0) => done(&session, "/admin/settings", "Nothing changed.").await,
        Ok(_) => done(&session, "/admin/settings", "Settings saved.").await,
        Err(errors) => {
            let current = settings::load(&mut *state.pool.acquire().await?).await?;
            let typed: Vec<(String, String)> = pairs.into_iter().filter(|(n, _)| n != "_csrf").collect();
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                SettingsPage {
                    shell,
                    fields: fields(&current, Some(&typed)),
                    errors: Errors(errors),
                },
            )
                .into_response())
        }
    }
}

/// A signed-in administrator for the JSON routes: 401 or 403 envelopes otherwise.
pub struct ApiAdmin(pub User);

impl FromRequestParts<AppState> for ApiAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = MaybeUser::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service temporarily unavailable.",
                )
            })?
            .0
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Sign in as an administrator."))?;
        if user.is_admin {
            Ok(Self(user))
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "Administrators only."))
        }
    }
}

fn config_json(s: &Settings) -> Value {
    let data: Vec<Value> = KEYS
        .iter()
        .map(|k| {
            let value = if k.kind == Kind::Secret {
                String::new()
            } else {
                s.get(k.key).to_owned()
            };
            json!({ "key": k.key, "value": value, "set": k.kind != Kind::Secret || s.is_set(k.key),
                    "restart_needed": k.restart })
        })
        .collect();
    let hints: serde_json::Map<String, Value> = KEYS
        .iter()
        .filter(|k| k.env.is_some())
        .map(|k| {
            (
                k.key.to_owned(),
                Value::Bool(settings::pinned_by_env(k).is_some()),
            )
        })
        .collect();
    json!({ "data": data, "env_hints": hints })
}

async fn api_get(State(state): State<AppState>, ApiAdmin(_admin): ApiAdmin) -> Result<Json<Value>, ApiError> {
    let current = settings::load(&mut *state.pool.acquire().await?).await?;
    Ok(Json(config_json(&current)))
}

/// `PUT /api/system-config`: `{"key": "value", …}`. Vendel's `app_name` is accepted for
/// `instance_name`; an empty secret leaves it as it is. All or nothing: one bad value
/// and nothing is saved (400 with `data.errors`).
async fn api_put(
    State(state): State<AppState>,
    ApiAdmin(admin): ApiAdmin,
    ApiJson(body): ApiJson<serde_json::Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let mut input = Vec::new();
    for (k, v) in body {
        let name = if k == "app_name" {
            "instance_name".to_owned()
        } else {
            k
        };
        let value = match v {
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => String::new(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "The value of {name} must be a string."
                )));
            }
        };
        input.push((name, value));
    }
    let updated = save(&state, &admin, &input)
        .await
        .map_err(|e| ApiError::invalid(&e))?;
    Ok(Json(json!({ "updated": updated })))
}

/// Vendel's public settings: its field names, `maintenance_mode` as the string it used.
async fn app_settings(State(state): State<AppState>) -> Json<Value> {
    let s = state.settings.get();
    let providers: Vec<Value> = if state.sms.billing.enabled {
        crate::payments::configured(&state.config.payments)
            .into_iter()
            .map(|p| json!({ "name": p.as_str(), "display_name": p.label() }))
            .collect()
    } else {
        Vec::new()
    };
    Json(json!({
        "app_name": s.instance_name(),
        "support_email": s.get("support_email"),
        "maintenance_mode": if s.maintenance() { "true" } else { "false" },
        "payment_providers": providers,
        "banner_text": s.get("banner_text"),
        "banner_link": s.get("banner_link"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_in_the_config_answer() {
        let s = Settings::defaults();
        let v = config_json(&s);
        for entry in v["data"].as_array().unwrap() {
            if entry["key"].as_str().unwrap().contains("secret") {
                assert_eq!(entry["value"], "");
            }
        }
    }
}
