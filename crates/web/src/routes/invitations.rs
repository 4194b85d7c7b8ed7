//! Settings → Invitations: invite an address to create an account (the way in when
//! `ENDER_SIGNUP=invite`), see what became of one's invitations, revoke a pending one.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use ender_core::account::Email;
use ender_core::invite::{self, InvitationId, InviteError};
use ender_core::mail::Mail;
use ender_core::ratelimit::{self, Limit};
use tower_sessions::Session;

use super::paths;
use crate::config::SignupPolicy;
use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::{CurrentUser, flash};
use crate::state::AppState;
use crate::views::{Errors, Shell};

pub const PATH: &str = "/settings/invitations";

/// Invitation mails one user may cause per hour.
const INVITES_PER_USER: Limit = Limit::per_hour(10);
/// Invitations listed on the page (finished ones are removed after 30 days).
const LISTED: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(show).post(create))
        .route("/settings/invitations/{id}/revoke", post(revoke))
}

pub struct InvitationRow {
    pub id: String,
    pub email: String,
    pub sent: String,
    pub expires: String,
    pub state: &'static str,
    pub pending: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "account/invitations.html")]
pub struct InvitationsPage {
    pub shell: Shell,
    /// Sign-up is closed: nobody can accept an invitation, so the page has no form.
    pub closed: bool,
    pub max_pending: i64,
    pub invitations: Vec<InvitationRow>,
    pub email: String,
    pub errors: Errors,
}

async fn page(
    state: &AppState,
    user: ender_core::account::UserId,
    shell: Shell,
) -> AppResult<InvitationsPage> {
    let now = Utc::now();
    let invitations = invite::list(&state.pool, user, LISTED)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|i| {
            let s = i.state(now);
            InvitationRow {
                id: i.id.to_string(),
                email: i.email.clone(),
                sent: i.created_at.format("%Y-%m-%d %H:%M").to_string(),
                expires: i.expires_at.format("%Y-%m-%d %H:%M").to_string(),
                state: s.label(),
                pending: s == invite::InvitationState::Pending,
            }
        })
        .collect();
    Ok(InvitationsPage {
        shell,
        closed: state.signup() == SignupPolicy::Closed,
        max_pending: state.config.max_pending_invitations,
        invitations,
        email: String::new(),
        errors: Errors::default(),
    })
}

fn internal(e: InviteError) -> AppError {
    match e {
        InviteError::Database(e) => e.into(),
        InviteError::NotFound => AppError::NotFound,
        other => AppError::Internal(anyhow::anyhow!(other.to_string())),
    }
}

async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    shell: Shell,
) -> AppResult<InvitationsPage> {
    page(&state, user.id, shell).await
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct InviteForm {
    email: String,
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    session: Session,
    shell: Shell,
    Form(form): Form<InviteForm>,
) -> AppResult<Response> {
    let mut p = page(&state, user.id, shell).await?;
    if p.closed {
        return Ok((StatusCode::FORBIDDEN, p).into_response());
    }
    p.email = form.email.trim().to_owned();
    let email = match Email::parse(&form.email) {
        Ok(e) => e,
        Err(e) => {
            p.errors = Errors::one(e);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
        }
    };
    if !ratelimit::allow(
        &mut *state.pool.acquire().await?,
        &format!("invite:user:{}", user.id),
        INVITES_PER_USER,
    )
    .await?
    {
        p.errors = Errors::one(ender_core::FieldError::new(
            "email",
            "You have sent 10 invitations in the last hour. Try again later.",
        ));
        return Ok((StatusCode::TOO_MANY_REQUESTS, p).into_response());
    }
    match invite::create(
        &state.pool,
        Some(user.id),
        &email,
        state.config.max_pending_invitations,
    )
    .await
    {
        Ok(issued) => {
            tracing::info!(user.id = %user.id, invitation.id = %issued.invitation.id, "invitation sent");
            let mail = invitation_mail(&state, user.display_name(), email.as_str(), &issued.token);
            super::auth::send_in_background(&state, mail);
            flash(
                &session,
                "success",
                &format!(
                    "Invitation sent to {}. The link works for 7 days.",
                    email.as_str()
                ),
            )
            .await?;
            Ok(Redirect::to(PATH).into_response())
        }
        Err(e @ InviteError::TooManyPending(_)) => {
            p.errors = Errors::one(ender_core::FieldError::new("email", e.to_string()));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response())
        }
        Err(e) => Err(internal(e)),
    }
}

/// The mail with the invitation link. `inviter` is who the invitee will recognise.
pub fn invitation_mail(state: &AppState, inviter: &str, to: &str, token: &str) -> Mail {
    let link = state
        .config
        .absolute(&format!("{}?invite={token}", paths::SIGNUP));
    Mail {
        to: to.to_owned(),
        subject: "You are invited to Ender".to_owned(),
        text: format!(
            "Hello,\n\n{inviter} invited you to create an account on their Ender SMS gateway. Create it here:\n\n{link}\n\nThe link works for 7 days and only once. If you do not know who sent it, ignore this mail.\n"
        ),
    }
}

async fn revoke(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    let id: InvitationId = raw.parse().map_err(|_| AppError::NotFound)?;
    invite::revoke(&state.pool, user.id, id).await.map_err(internal)?;
    flash(
        &session,
        "success",
        "The invitation was withdrawn. Its link no longer works.",
    )
    .await?;
    Ok(Redirect::to(PATH))
}
