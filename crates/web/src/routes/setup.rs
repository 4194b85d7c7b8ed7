//! The one-time administrator setup page, reachable only with the printed token and only
//! while no administrator exists.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use ender_core::account::{AccountError, Email, FullName, Password};
use ender_core::{FieldError, ratelimit, setup};
use tower_sessions::Session;

use super::auth::{TOKEN_FORMS_IP, token_error};
use super::paths;
use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::middleware::ClientIp;
use crate::session::{flash, log_in};
use crate::state::AppState;
use crate::views::{Errors, Shell};

pub fn routes() -> Router<AppState> {
    Router::new().route(paths::SETUP, get(form).post(submit))
}

#[derive(Template, WebTemplate)]
#[template(path = "setup/form.html")]
pub struct SetupPage {
    pub shell: Shell,
    pub token: String,
    pub email: String,
    pub full_name: String,
    pub errors: Errors,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct TokenQuery {
    token: String,
}

async fn form(
    State(state): State<AppState>,
    shell: Shell,
    Query(q): Query<TokenQuery>,
) -> AppResult<Response> {
    if setup::admin_exists(&state.pool).await? {
        return Err(AppError::NotFound);
    }
    match setup::check_token(&state.pool, &q.token).await {
        Ok(()) => Ok(SetupPage {
            shell,
            token: q.token,
            email: String::new(),
            full_name: String::new(),
            errors: Errors::default(),
        }
        .into_response()),
        Err(AccountError::Token(e)) => Ok(setup_token_error(shell, e)),
        Err(e) => Err(e.into()),
    }
}

fn setup_token_error(shell: Shell, e: ender_core::account::TokenError) -> Response {
    token_error(
        shell,
        e,
        paths::LOGIN,
        "Go to sign in (restart Ender to print a new setup link)",
    )
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct SetupForm {
    token: String,
    email: String,
    full_name: String,
    password: String,
}

async fn submit(
    State(state): State<AppState>,
    session: Session,
    shell: Shell,
    ClientIp(ip): ClientIp,
    Form(form): Form<SetupForm>,
) -> AppResult<Response> {
    if setup::admin_exists(&state.pool).await? {
        return Err(AppError::NotFound);
    }
    let mut errors = Errors::default();
    let email = Email::parse(&form.email).map_err(|e| errors.push(e)).ok();
    let password = Password::parse(&form.password, "password")
        .map_err(|e| errors.push(e))
        .ok();
    let name = FullName::parse(&form.full_name).map_err(|e| errors.push(e)).ok();
    let rerender = |errors: Errors| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            SetupPage {
                shell: shell.clone(),
                token: form.token.clone(),
                email: form.email.trim().to_owned(),
                full_name: form.full_name.trim().to_owned(),
                errors,
            },
        )
            .into_response()
    };
    let (Some(email), Some(password), Some(name)) = (email, password, name) else {
        return Ok(rerender(errors));
    };
    if !ratelimit::allow(
        &mut *state.pool.acquire().await?,
        &format!("setup:ip:{ip}"),
        TOKEN_FORMS_IP,
    )
    .await?
    {
        return Err(AppError::RateLimited);
    }
    match setup::complete(&state.pool, &form.token, &email, &password, &name).await {
        Ok(user) => {
            log_in(&session, &user).await?;
            flash(&session, "success", "Your administrator account is ready.").await?;
            tracing::info!(user.id = %user.id, "first administrator created");
            Ok(Redirect::to(paths::ADMIN).into_response())
        }
        Err(AccountError::EmailTaken) => Ok(rerender(Errors::one(FieldError::new(
            "email",
            "An account with this email already exists. Use another address, or make it an administrator with `ender-web admin create --email …`.",
        )))),
        Err(AccountError::Token(e)) => Ok(setup_token_error(shell, e)),
        Err(e) => Err(e.into()),
    }
}
