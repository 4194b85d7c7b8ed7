//! The administrators' console: people (this module), workspaces, plans and promo codes,
//! instance settings, health and the audit log. Every route takes [`AdminUser`]: anyone
//! else gets 403. The work is done by `ender_core::admin`, which the CLI shares.

mod health;
mod plans;
pub mod settings;
mod workspaces;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use ender_core::account::UserId;
use ender_core::admin::people::{self, Cursor, Filter};
use ender_core::admin::{Admin, AdminError};
use serde::Deserialize;
use tower_sessions::Session;

use super::paths;
use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::{AdminUser, flash};
use crate::state::AppState;
use crate::views::Shell;

/// Rows per page of the people and workspace lists.
pub const PAGE: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::ADMIN, get(people_page))
        .route("/admin/people/{id}", get(person_page))
        .route("/admin/people/{id}/{action}", post(person_action))
        .merge(workspaces::routes())
        .merge(plans::routes())
        .merge(settings::routes())
        .merge(health::routes())
}

/// The console's JSON routes, nested under `/api`.
pub fn api_routes() -> Router<AppState> {
    settings::api_routes().merge(health::api_routes())
}

/// Every admin page's route, for the test that walks them as a member.
pub const PAGES: &[&str] = &[
    paths::ADMIN,
    "/admin/workspaces",
    "/admin/plans",
    "/admin/plans/new",
    "/admin/promos",
    "/admin/settings",
    "/admin/health",
    "/admin/audit",
];

pub(super) fn admin_of(user: &ender_core::account::User) -> Admin {
    Admin::user(user)
}

/// What an action's refusal does on a page: back to `back` with the reason (a database
/// failure is an error page).
pub(super) async fn refused(session: &Session, back: &str, e: AdminError) -> AppResult<Response> {
    match e {
        AdminError::Database(d) => Err(d.into()),
        AdminError::NotFound => Err(AppError::NotFound),
        AdminError::Invalid(f) => {
            flash(session, "error", f.message).await?;
            Ok(Redirect::to(back).into_response())
        }
        AdminError::Refused(m) | AdminError::NeedsConfirmation(m) => {
            flash(session, "error", m).await?;
            Ok(Redirect::to(back).into_response())
        }
    }
}

pub(super) async fn done(session: &Session, back: &str, text: impl Into<String>) -> AppResult<Response> {
    flash(session, "success", text).await?;
    Ok(Redirect::to(back).into_response())
}

fn parse_user(raw: &str) -> AppResult<UserId> {
    raw.parse::<uuid::Uuid>()
        .map(UserId)
        .map_err(|_| AppError::NotFound)
}

pub(super) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[derive(Debug, Default, Deserialize)]
pub struct PeopleQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    admins: Option<String>,
    #[serde(default)]
    unverified: Option<String>,
    #[serde(default)]
    suspended: Option<String>,
    #[serde(default)]
    since: String,
    #[serde(default)]
    after: String,
}

pub struct PersonRow {
    pub id: String,
    pub email: String,
    pub full_name: String,
    pub is_admin: bool,
    pub verified: bool,
    pub suspended: bool,
    pub created: String,
    pub last_sign_in: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/people.html")]
pub struct PeoplePage {
    pub shell: Shell,
    pub total_users: i64,
    pub q: String,
    pub admins: bool,
    pub unverified: bool,
    pub suspended: bool,
    pub since: String,
    pub since_error: String,
    pub people: Vec<PersonRow>,
    /// The query string of the next page, when there is one.
    pub next: Option<String>,
}

async fn people_page(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    shell: Shell,
    Query(query): Query<PeopleQuery>,
) -> AppResult<PeoplePage> {
    let q: String = query.q.trim().chars().take(100).collect();
    let (since, since_error) = match query.since.trim() {
        "" => (None, String::new()),
        raw => match chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Ok(d) => (Some(d), String::new()),
            Err(_) => (None, "Enter a date as YYYY-MM-DD.".to_owned()),
        },
    };
    let filter = Filter {
        q: q.clone(),
        admins: query.admins.is_some(),
        unverified: query.unverified.is_some(),
        suspended: query.suspended.is_some(),
        since,
    };
    let (rows, next) = people::list(&state.pool, &filter, Cursor::decode(&query.after), PAGE).await?;
    let total_users = ender_core::account::repo::count(&mut *state.pool.acquire().await?).await?;
    let next = next.map(|c| {
        let mut qs = url::form_urlencoded::Serializer::new(String::new());
        qs.append_pair("q", &q);
        for (name, on) in [
            ("admins", filter.admins),
            ("unverified", filter.unverified),
            ("suspended", filter.suspended),
        ] {
            if on {
                qs.append_pair(name, "on");
            }
        }
        if let Some(d) = filter.since {
            qs.append_pair("since", &d.to_string());
        }
        qs.append_pair("after", &c.encode());
        qs.finish()
    });
    Ok(PeoplePage {
        shell,
        total_users,
        q,
        admins: filter.admins,
        unverified: filter.unverified,
        suspended: filter.suspended,
        since: filter.since.map(|d| d.to_string()).unwrap_or_default(),
        since_error,
        people: rows
            .into_iter()
            .map(|p| PersonRow {
                id: p.id.to_string(),
                email: p.email,
                full_name: p.full_name,
                is_admin: p.is_admin,
                verified: p.verified,
                suspended: p.suspended,
                created: when(p.created_at),
                last_sign_in: p.last_sign_in_at.map(when).unwrap_or_else(|| "never".to_owned()),
            })
            .collect(),
        next,
    })
}

pub struct MembershipRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub personal: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/person.html")]
pub struct PersonPage {
    pub shell: Shell,
    pub person: PersonRow,
    pub me: bool,
    pub has_password: bool,
    pub suspended_since: String,
    pub workspaces: Vec<MembershipRow>,
    pub sessions: i64,
    pub oauth: Vec<(String, String)>,
    pub removes: &'static str,
}

async fn person_page(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    shell: Shell,
    Path(id): Path<String>,
) -> AppResult<PersonPage> {
    let id = parse_user(&id)?;
    let d = people::detail(&state.pool, id).await.map_err(|e| match e {
        AdminError::Database(d) => d.into(),
        _ => AppError::NotFound,
    })?;
    Ok(PersonPage {
        shell,
        me: admin.id == id,
        has_password: d.has_password,
        suspended_since: d.suspended_at.map(when).unwrap_or_default(),
        sessions: d.sessions,
        oauth: d.oauth.into_iter().map(|(p, t)| (p, when(t))).collect(),
        workspaces: d
            .workspaces
            .into_iter()
            .map(|w| MembershipRow {
                id: w.workspace_id.to_string(),
                name: w.name,
                role: w.role,
                personal: w.personal,
            })
            .collect(),
        person: PersonRow {
            id: d.person.id.to_string(),
            email: d.person.email,
            full_name: d.person.full_name,
            is_admin: d.person.is_admin,
            verified: d.person.verified,
            suspended: d.person.suspended,
            created: when(d.person.created_at),
            last_sign_in: d
                .person
                .last_sign_in_at
                .map(when)
                .unwrap_or_else(|| "never".to_owned()),
        },
        removes: people::DELETE_REMOVES,
    })
}

fn person_path(id: UserId) -> String {
    format!("/admin/people/{id}")
}

/// An action's answer on a page: on success to `to` with `text`, on refusal back to `back`
/// with the reason.
pub(super) async fn settle(
    session: &Session,
    result: Result<(), AdminError>,
    back: &str,
    to: &str,
    text: impl Into<String>,
) -> AppResult<Response> {
    match result {
        Ok(()) => done(session, to, text).await,
        Err(e) => refused(session, back, e).await,
    }
}

#[derive(Debug, Default, Deserialize)]
struct ConfirmForm {
    /// Ticked to confirm an action on another administrator.
    #[serde(default)]
    confirm: Option<String>,
}

/// `POST /admin/people/{id}/{action}`: each action, its service call and what the page
/// says after it.
async fn person_action(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    session: Session,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ConfirmForm>,
) -> AppResult<Response> {
    let id = parse_user(&id)?;
    let pool = &state.pool;
    let by = admin_of(&admin);
    let confirmed = form.confirm.is_some();
    let back = person_path(id);
    let (result, to, text): (_, &str, String) = match action.as_str() {
        "suspend" => (
            people::set_suspended(pool, &by, id, true).await,
            &back,
            "Suspended: their sessions have ended and they cannot sign in.".into(),
        ),
        "unsuspend" => (
            people::set_suspended(pool, &by, id, false).await,
            &back,
            "The suspension is lifted: they may sign in again.".into(),
        ),
        "promote" => (
            people::set_admin(pool, &by, id, true).await,
            &back,
            "They are now an administrator.".into(),
        ),
        "demote" if id == admin.id => (
            people::set_admin(pool, &by, id, false).await,
            "/",
            "You are no longer an administrator.".into(),
        ),
        "demote" => (
            people::set_admin(pool, &by, id, false).await,
            &back,
            "They are no longer an administrator.".into(),
        ),
        "verify" => (
            people::mark_verified(pool, &by, id).await,
            &back,
            "The address is marked as confirmed.".into(),
        ),
        "resend-verification" => (
            people::verification_link(pool, &by, id).await.map(|link| {
                super::auth::send_in_background(
                    &state,
                    super::auth::verification_mail(&state, &link.email, &link.token),
                );
            }),
            &back,
            "A new confirmation link is on its way.".into(),
        ),
        "reset-password" => (
            people::password_reset_link(pool, &by, id, confirmed)
                .await
                .map(|link| {
                    super::auth::send_in_background(
                        &state,
                        super::auth::reset_mail(&state, &link.email, &link.token),
                    );
                }),
            &back,
            "A password reset link is on its way to them.".into(),
        ),
        "sign-out" if id == admin.id => (
            Err(AdminError::Refused(
                "To end your own sessions, use your account settings.".into(),
            )),
            &back,
            String::new(),
        ),
        "sign-out" => match people::sign_out_everywhere(pool, &by, id).await {
            Ok(n) => (Ok(()), &back, format!("{n} session(s) ended.")),
            Err(e) => (Err(e), &back, String::new()),
        },
        "delete" => (
            people::delete(pool, &by, id, confirmed).await,
            paths::ADMIN,
            "The account and what it owned are deleted.".into(),
        ),
        _ => return Err(AppError::NotFound),
    };
    settle(&session, result, &back, to, text).await
}
