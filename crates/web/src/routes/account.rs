//! The signed-in user's settings: profile, password, and deleting the account.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ender_core::FieldError;
use ender_core::account::{self, AccountError, FullName, Password};
use ender_core::ratelimit::{self, Limit};
use tower_sessions::Session;

use super::paths;
use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::{CurrentUser, flash, log_out, session_id};
use crate::state::AppState;
use crate::views::{Errors, Shell};

/// Current-password confirmations (password change, account deletion) per minute per
/// user, counted before the password is checked.
const PASSWORD_CONFIRMS: Limit = Limit::per_minute(5);

/// Counts a confirmation of the current password; Err once over the limit.
async fn confirm_attempt(state: &AppState, user: account::UserId) -> AppResult<String> {
    let key = format!("confirm-password:user:{user}");
    if !ratelimit::attempt(&mut *state.pool.acquire().await?, &key, PASSWORD_CONFIRMS).await? {
        return Err(AppError::RateLimited);
    }
    Ok(key)
}

/// Takes back the attempt of a confirmation that had the right password.
async fn confirmed(state: &AppState, key: &str) -> AppResult<()> {
    ratelimit::forgive(&mut *state.pool.acquire().await?, key, PASSWORD_CONFIRMS).await?;
    Ok(())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::SETTINGS, get(show))
        .route("/settings/profile", post(update_profile))
        .route("/settings/password", post(change_password))
        .route("/settings/delete", post(delete_account))
}

#[derive(Template, WebTemplate)]
#[template(path = "account/settings.html")]
pub struct SettingsPage {
    pub shell: Shell,
    pub email: String,
    pub full_name: String,
    pub has_password: bool,
    pub errors: Errors,
}

impl SettingsPage {
    fn new(shell: Shell, user: &account::User) -> Self {
        Self {
            shell,
            email: user.email.clone(),
            full_name: user.full_name.clone(),
            has_password: user.has_password,
            errors: Errors::default(),
        }
    }

    fn with_error(mut self, e: FieldError) -> Response {
        self.errors = Errors::one(e);
        (StatusCode::UNPROCESSABLE_ENTITY, self).into_response()
    }
}

async fn show(CurrentUser(user): CurrentUser, shell: Shell) -> SettingsPage {
    SettingsPage::new(shell, &user)
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ProfileForm {
    full_name: String,
}

async fn update_profile(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    shell: Shell,
    Form(form): Form<ProfileForm>,
) -> AppResult<Response> {
    let name = match FullName::parse(&form.full_name) {
        Ok(n) => n,
        Err(e) => {
            let mut page = SettingsPage::new(shell, &user);
            page.full_name = form.full_name;
            return Ok(page.with_error(e));
        }
    };
    account::update_profile(&state.pool, user.id, &name).await?;
    flash(&session, "success", "Your profile was saved.").await?;
    Ok(Redirect::to(paths::SETTINGS).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
    new_password_confirm: String,
}

async fn change_password(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    shell: Shell,
    Form(form): Form<PasswordForm>,
) -> AppResult<Response> {
    let page = SettingsPage::new(shell, &user);
    let new = match Password::parse(&form.new_password, "new_password") {
        Ok(_) if form.new_password != form.new_password_confirm => {
            return Ok(page.with_error(FieldError::new(
                "new_password_confirm",
                "The two passwords differ.",
            )));
        }
        Ok(p) => p,
        Err(e) => return Ok(page.with_error(e)),
    };
    let attempt = confirm_attempt(&state, user.id).await?;
    // A new session id too, so a stolen cookie from before the change stops working.
    session.cycle_id().await?;
    session.save().await?;
    match account::change_password(
        &state.pool,
        user.id,
        &form.current_password,
        &new,
        session_id(&session).as_deref(),
    )
    .await
    {
        Ok(()) => {
            confirmed(&state, &attempt).await?;
            flash(
                &session,
                "success",
                "Your password was changed. Your other sessions were signed out.",
            )
            .await?;
            tracing::info!(user.id = %user.id, "password changed");
            Ok(Redirect::to(paths::SETTINGS).into_response())
        }
        Err(AccountError::WrongPassword) => Ok(page.with_error(FieldError::new(
            "current_password",
            "The current password is incorrect.",
        ))),
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct DeleteForm {
    password: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "account/deleted.html")]
pub struct DeletedPage {
    pub shell: Shell,
}

async fn delete_account(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    shell: Shell,
    Form(form): Form<DeleteForm>,
) -> AppResult<Response> {
    confirm_attempt(&state, user.id).await?;
    match account::delete_account(&state.pool, user.id, &form.password).await {
        Ok(()) => {
            tracing::info!(user.id = %user.id, "account deleted");
            log_out(&session).await?;
            let mut shell = shell;
            shell.user = None;
            Ok(DeletedPage { shell }.into_response())
        }
        Err(AccountError::WrongPassword) => Ok(SettingsPage::new(shell, &user).with_error(FieldError::new(
            "delete_password",
            "The password is incorrect; the account was not deleted.",
        ))),
        Err(AccountError::Invalid(f)) => Ok(SettingsPage::new(shell, &user).with_error(f)),
        Err(e) => Err(e.into()),
    }
}
