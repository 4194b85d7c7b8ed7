//! The workspace pages: choosing the workspace to look at (the switcher in the top bar
//! posts here; the choice lives in the session, so every page keeps its address whichever
//! workspace it shows), the Workspace page (members and their roles, invitations, rename,
//! leave, a new workspace), and the page an invitation link opens.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ender_core::account::{Email, TokenError, UserId};
use ender_core::invite::InvitationId;
use ender_core::mail::Mail;
use ender_core::ratelimit::{self, Limit};
use ender_core::workspace::{self, Action, Role, WorkspaceError, WorkspaceId, WorkspaceName, invitations};
use serde::Deserialize;
use tower_sessions::Session;

use ender_core::workspace::audit::{Actor, kind};
use serde_json::json;

use crate::audit::note;
use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::session::{CurrentUser, CurrentWorkspace, MaybeUser, flash, switch_workspace};
use crate::state::AppState;
use crate::views::{Errors, Shell};

pub const SWITCH: &str = "/workspaces/switch";
pub const PATH: &str = "/workspace";
pub const JOIN: &str = "/join";
pub const AUDIT: &str = "/workspace/audit";
/// Audit entries per page.
const AUDIT_PAGE: i64 = 50;

/// Workspace invitation mails one person may cause per hour.
const INVITES_PER_HOUR: Limit = Limit::per_hour(20);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(SWITCH, post(switch))
        .route("/workspaces", post(create))
        .route(PATH, get(show))
        .route("/workspace/rename", post(rename))
        .route("/workspace/leave", post(leave))
        .route("/workspace/delete", post(delete))
        .route("/workspace/invitations", post(invite))
        .route("/workspace/invitations/{id}/revoke", post(revoke))
        .route("/workspace/members/{id}/role", post(change_role))
        .route("/workspace/members/{id}/remove", post(remove))
        .route(JOIN, get(join_page).post(join))
        .route(AUDIT, get(audit_page))
}

#[derive(Deserialize)]
struct SwitchForm {
    workspace: String,
}

/// Makes the chosen workspace current, if the user belongs to it (otherwise the same 404
/// whether or not it exists), and opens its dashboard.
async fn switch(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    session: Session,
    Form(form): Form<SwitchForm>,
) -> AppResult<Redirect> {
    let id = form
        .workspace
        .trim()
        .parse::<uuid::Uuid>()
        .map_err(|_| AppError::NotFound)?;
    let m = workspace::membership(&state.pool, WorkspaceId(id), user.id).await?;
    switch_workspace(&session, &m).await?;
    flash(
        &session,
        "success",
        format!("You are now in {}.", m.workspace.name),
    )
    .await?;
    Ok(Redirect::to("/"))
}

pub struct MemberView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub joined: String,
    pub is_me: bool,
    /// The viewer may change this member's role or remove them.
    pub manageable: bool,
}

pub struct InvitationView {
    pub id: String,
    pub email: String,
    pub role: &'static str,
    pub invited_by: String,
    pub expires: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "workspace/show.html")]
pub struct WorkspacePage {
    pub shell: Shell,
    pub name: String,
    pub role: &'static str,
    /// The personal workspace of the person looking: they cannot leave it.
    pub mine: bool,
    pub can_manage: bool,
    pub can_rename: bool,
    /// An owner looking at a shared workspace: it may be deleted.
    pub can_delete: bool,
    /// Roles the viewer may give (owner only for owners).
    pub roles: Vec<&'static str>,
    pub members: Vec<MemberView>,
    pub invitations: Vec<InvitationView>,
    pub max_members: i64,
    pub invite_email: String,
    pub invite_role: String,
    pub new_name: String,
    pub errors: Errors,
}

async fn page(state: &AppState, ws: &CurrentWorkspace, shell: Shell) -> AppResult<WorkspacePage> {
    let m = &ws.0;
    let can_manage = m.role.may(Action::ManageMembers);
    let can_owners = m.role.may(Action::ManageOwners);
    let members = workspace::members(&state.pool, m)
        .await?
        .into_iter()
        .map(|x| MemberView {
            id: x.user_id.to_string(),
            is_me: x.user_id == m.user_id,
            manageable: can_manage
                && x.user_id != m.user_id
                && m.workspace.personal_for != Some(x.user_id)
                && (x.role != Role::Owner || can_owners),
            name: x.name,
            email: x.email,
            role: x.role.as_str(),
            joined: x.joined.format("%Y-%m-%d").to_string(),
        })
        .collect();
    let invitations = if can_manage {
        invitations::waiting_for(&state.pool, m.workspace.id)
            .await?
            .into_iter()
            .map(|i| InvitationView {
                id: i.id.to_string(),
                email: i.email,
                role: i.role.as_str(),
                invited_by: i.invited_by,
                expires: i.expires_at.format("%Y-%m-%d %H:%M").to_string(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let roles = Role::ALL
        .into_iter()
        .filter(|r| *r != Role::Owner || can_owners)
        .map(Role::as_str)
        .collect();
    Ok(WorkspacePage {
        shell,
        name: m.workspace.name.clone(),
        role: m.role.as_str(),
        mine: m.workspace.personal_for == Some(m.user_id),
        can_manage,
        can_rename: m.role.may(Action::Rename),
        can_delete: m.role.may(Action::Delete) && m.workspace.personal_for.is_none(),
        roles,
        members,
        invitations,
        max_members: state.limits(m.workspace.id).await?.members,
        invite_email: String::new(),
        invite_role: Role::Member.as_str().to_owned(),
        new_name: String::new(),
        errors: Errors::default(),
    })
}

async fn show(State(state): State<AppState>, ws: CurrentWorkspace, shell: Shell) -> AppResult<WorkspacePage> {
    page(&state, &ws, shell).await
}

/// A refusal the page can explain: back to the page with the reason as a message; a role
/// that does not allow the action is the 403 page.
async fn refused(session: &Session, e: WorkspaceError) -> AppResult<Response> {
    match e {
        e @ (WorkspaceError::LastOwner
        | WorkspaceError::Personal
        | WorkspaceError::NoSuchMember
        | WorkspaceError::TooManyWorkspaces { .. }) => {
            flash(session, "error", e.to_string()).await?;
            Ok(Redirect::to(PATH).into_response())
        }
        other => Err(other.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NameForm {
    name: String,
}

async fn rename(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(form): Form<NameForm>,
) -> AppResult<Response> {
    ws.may(Action::Rename)?;
    let name = match WorkspaceName::parse(&form.name) {
        Ok(n) => n,
        Err(e) => {
            let mut p = page(&state, &ws, shell).await?;
            p.errors = Errors::one(e);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
        }
    };
    match workspace::rename(&state.pool, &ws.0, &name).await {
        Ok(()) => {
            let detail = json!({ "from": ws.0.workspace.name });
            note(
                &state,
                ws.id(),
                ws.actor(),
                kind::WORKSPACE_RENAMED,
                name.as_str(),
                detail,
            )
            .await;
            flash(&session, "success", "The workspace was renamed.").await?;
            Ok(Redirect::to(PATH).into_response())
        }
        Err(e) => refused(&session, e).await,
    }
}

/// A new shared workspace, owned by its maker, who is switched to it.
async fn create(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(form): Form<NameForm>,
) -> AppResult<Response> {
    let rerender = |e: ender_core::FieldError, p: WorkspacePage| {
        let mut p = WorkspacePage {
            new_name: form.name.trim().to_owned(),
            ..p
        };
        p.errors = Errors::one(ender_core::FieldError::new("new_name", e.message));
        (StatusCode::UNPROCESSABLE_ENTITY, p).into_response()
    };
    let name = match WorkspaceName::parse(&form.name) {
        Ok(n) => n,
        Err(e) => return Ok(rerender(e, page(&state, &ws, shell).await?)),
    };
    let max = state.sms.limits.max_workspaces_per_user;
    match workspace::create(&state.pool, ws.user_id(), &name, max).await {
        Ok(w) => {
            let m = workspace::membership(&state.pool, w.id, ws.user_id()).await?;
            switch_workspace(&session, &m).await?;
            tracing::info!(workspace.id = %w.id, "workspace created");
            note(
                &state,
                w.id,
                ws.actor(),
                kind::WORKSPACE_CREATED,
                &w.name,
                json!({}),
            )
            .await;
            flash(
                &session,
                "success",
                format!("{} is ready: invite the people you work with.", w.name),
            )
            .await?;
            Ok(Redirect::to(PATH).into_response())
        }
        Err(e @ WorkspaceError::TooManyWorkspaces { .. }) => Ok(rerender(
            ender_core::FieldError::new("new_name", e.to_string()),
            page(&state, &ws, shell).await?,
        )),
        Err(e) => Err(e.into()),
    }
}

async fn leave(State(state): State<AppState>, ws: CurrentWorkspace, session: Session) -> AppResult<Response> {
    match workspace::leave(&state.pool, &ws.0).await {
        Ok(()) => {
            let me = ender_core::account::find(&state.pool, ws.user_id())
                .await?
                .map(|u| u.email)
                .unwrap_or_default();
            note(&state, ws.id(), ws.actor(), kind::MEMBER_LEFT, &me, json!({})).await;
            session.remove_value(crate::session::WORKSPACE_KEY).await?;
            flash(&session, "success", format!("You left {}.", ws.0.workspace.name)).await?;
            Ok(Redirect::to("/").into_response())
        }
        Err(e) => refused(&session, e).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeleteForm {
    /// The workspace's name, typed again.
    confirm: String,
}

/// Deletes the workspace (owners; not a personal one) once its name is typed again: its
/// queued messages are cancelled, its members, devices and keys go at once.
async fn delete(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(form): Form<DeleteForm>,
) -> AppResult<Response> {
    ws.may(Action::Delete)?;
    if form.confirm.trim() != ws.0.workspace.name {
        let mut p = page(&state, &ws, shell).await?;
        p.errors = Errors::one(ender_core::FieldError::new(
            "confirm",
            "Type the workspace's name exactly as shown to delete it.",
        ));
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
    }
    match workspace::delete::delete(&state.pool, &ws.0).await {
        Ok(done) => {
            session.remove_value(crate::session::WORKSPACE_KEY).await?;
            let n = done.messages_cancelled;
            flash(
                &session,
                "success",
                format!(
                    "{} was deleted. {n} queued message{} cancelled; you are back in your personal workspace.",
                    ws.0.workspace.name,
                    if n == 1 { " was" } else { "s were" }
                ),
            )
            .await?;
            Ok(Redirect::to("/").into_response())
        }
        Err(e) => refused(&session, e).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InviteForm {
    email: String,
    role: String,
}

async fn invite(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    CurrentUser(user): CurrentUser,
    session: Session,
    shell: Shell,
    Form(form): Form<InviteForm>,
) -> AppResult<Response> {
    ws.may(Action::ManageMembers)?;
    let mut p = page(&state, &ws, shell).await?;
    p.invite_email = form.email.trim().to_owned();
    p.invite_role = form.role.trim().to_owned();
    let mut errors = Errors::default();
    let email = Email::parse(&form.email).map_err(|e| errors.push(e)).ok();
    let role = Role::parse(&form.role).map_err(|e| errors.push(e)).ok();
    let (Some(email), Some(role)) = (email, role) else {
        p.errors = errors;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response());
    };
    if !ratelimit::allow(
        &mut *state.pool.acquire().await?,
        &format!("workspace-invite:user:{}", user.id),
        INVITES_PER_HOUR,
    )
    .await?
    {
        p.errors = Errors::one(ender_core::FieldError::new(
            "email",
            "You have sent 20 invitations in the last hour. Try again later.",
        ));
        return Ok((StatusCode::TOO_MANY_REQUESTS, p).into_response());
    }
    let max = state.limits(ws.id()).await?.members;
    match invitations::invite(&state.pool, &ws.0, &email, role, max).await {
        Ok(issued) => {
            tracing::info!(workspace.id = %ws.id(), invitation.id = %issued.invitation.id, "workspace invitation sent");
            let detail = json!({ "role": role.as_str() });
            note(
                &state,
                ws.id(),
                ws.actor(),
                kind::MEMBER_INVITED,
                email.as_str(),
                detail,
            )
            .await;
            let mail = invitation_mail(
                &state,
                user.display_name(),
                &ws.0.workspace.name,
                role,
                email.as_str(),
                &issued.token,
            );
            super::auth::send_in_background(&state, mail);
            flash(
                &session,
                "success",
                format!(
                    "Invitation sent to {}. The link works for 7 days, once.",
                    email.as_str()
                ),
            )
            .await?;
            Ok(Redirect::to(PATH).into_response())
        }
        Err(e @ (WorkspaceError::AlreadyMember { .. } | WorkspaceError::TooManyMembers { .. })) => {
            p.errors = Errors::one(ender_core::FieldError::new("email", e.to_string()));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, p).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// The mail with a workspace invitation's link, naming who sent it and the role.
fn invitation_mail(
    state: &AppState,
    inviter: &str,
    workspace: &str,
    role: Role,
    to: &str,
    token: &str,
) -> Mail {
    let link = state.config.absolute(&format!("{JOIN}?token={token}"));
    Mail {
        to: to.to_owned(),
        subject: format!("{inviter} invited you to {workspace} on Ender"),
        text: format!(
            "Hello,\n\n{inviter} invited you to join the workspace \"{workspace}\" on their Ender SMS gateway, as {article} {role}.\n\nAccept here (with your account for this address, or make one):\n\n{link}\n\nThe link works for 7 days and only once. If you do not know who sent it, ignore this mail.\n",
            article = if role == Role::Admin || role == Role::Owner {
                "an"
            } else {
                "a"
            },
        ),
    }
}

async fn revoke(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageMembers)?;
    let id: InvitationId = raw.parse().map_err(|_| AppError::NotFound)?;
    invitations::revoke(&state.pool, &ws.0, id).await?;
    note(
        &state,
        ws.id(),
        ws.actor(),
        kind::INVITATION_WITHDRAWN,
        &id.to_string(),
        json!({}),
    )
    .await;
    flash(
        &session,
        "success",
        "The invitation was withdrawn. Its link no longer works.",
    )
    .await?;
    Ok(Redirect::to(PATH))
}

async fn email_of(state: &AppState, user: UserId) -> AppResult<String> {
    Ok(ender_core::account::find(&state.pool, user)
        .await?
        .map(|u| u.email)
        .unwrap_or_default())
}

fn member_id(raw: &str) -> AppResult<UserId> {
    raw.parse::<uuid::Uuid>()
        .map(UserId)
        .map_err(|_| AppError::NotFound)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RoleForm {
    role: String,
}

async fn change_role(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
    Form(form): Form<RoleForm>,
) -> AppResult<Response> {
    ws.may(Action::ManageMembers)?;
    let target = member_id(&raw)?;
    let Ok(role) = Role::parse(&form.role) else {
        flash(&session, "error", "Choose owner, admin, member or viewer.").await?;
        return Ok(Redirect::to(PATH).into_response());
    };
    match workspace::change_role(&state.pool, &ws.0, target, role).await {
        Ok(()) => {
            tracing::info!(workspace.id = %ws.id(), member.id = %target, role = role.as_str(), "member role changed");
            let who = email_of(&state, target).await?;
            note(
                &state,
                ws.id(),
                ws.actor(),
                kind::MEMBER_ROLE_CHANGED,
                &who,
                json!({ "role": role.as_str() }),
            )
            .await;
            flash(&session, "success", format!("Their role is now {role}.")).await?;
            Ok(Redirect::to(PATH).into_response())
        }
        Err(e) => refused(&session, e).await,
    }
}

async fn remove(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Response> {
    ws.may(Action::ManageMembers)?;
    let target = member_id(&raw)?;
    match workspace::remove_member(&state.pool, &ws.0, target).await {
        Ok(()) => {
            tracing::info!(workspace.id = %ws.id(), member.id = %target, "member removed");
            let who = email_of(&state, target).await?;
            note(&state, ws.id(), ws.actor(), kind::MEMBER_REMOVED, &who, json!({})).await;
            flash(
                &session,
                "success",
                "They are no longer a member; their open pages lost access at once.",
            )
            .await?;
            Ok(Redirect::to(PATH).into_response())
        }
        Err(e) => refused(&session, e).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenQuery {
    token: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "workspace/join.html")]
pub struct JoinPage {
    pub shell: Shell,
    pub token: String,
    pub workspace: String,
    pub role: &'static str,
    pub invited_by: String,
    pub email: String,
    pub expires: String,
    /// Signed in with the invited address: the page offers to join.
    pub can_join: bool,
    /// Signed in with another address: why they cannot, as a sentence.
    pub wrong_account: String,
    pub signed_in: bool,
    pub login_link: String,
    pub signup_link: String,
    /// Why the link does not work (spent, withdrawn, expired), or "".
    pub refused: String,
}

pub(crate) fn token_refusal(e: TokenError) -> &'static str {
    match e {
        TokenError::Invalid => "This invitation is not valid: it may have been withdrawn. Ask for a new one.",
        TokenError::Expired => "This invitation has expired. Ask for a new one.",
        TokenError::Used => "This invitation has already been used.",
    }
}

async fn join_page(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    shell: Shell,
    Query(q): Query<TokenQuery>,
) -> AppResult<Response> {
    let next = format!(
        "{JOIN}?token={}",
        url::form_urlencoded::byte_serialize(q.token.as_bytes()).collect::<String>()
    );
    let mut p = JoinPage {
        shell,
        token: q.token.clone(),
        workspace: String::new(),
        role: "",
        invited_by: String::new(),
        email: String::new(),
        expires: String::new(),
        can_join: false,
        wrong_account: String::new(),
        signed_in: user.is_some(),
        login_link: format!(
            "{}?next={}",
            super::paths::LOGIN,
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ),
        signup_link: format!("{}?invite={}", super::paths::SIGNUP, p_token(&q.token)),
        refused: String::new(),
    };
    match invitations::lookup(&state.pool, &q.token).await {
        Ok(i) => {
            p.workspace = i.workspace_name;
            p.role = i.role.as_str();
            p.invited_by = i.invited_by;
            p.expires = i.expires_at.format("%Y-%m-%d %H:%M").to_string();
            if let Some(u) = &user {
                let same = Email::parse(&u.email).ok().map(|e| e.normalized())
                    == Email::parse(&i.email).ok().map(|e| e.normalized());
                if same {
                    p.can_join = true;
                } else {
                    p.wrong_account = WorkspaceError::WrongAccount {
                        invited: i.email.clone(),
                        signed_in: u.email.clone(),
                    }
                    .to_string();
                }
            }
            p.email = i.email;
            Ok(p.into_response())
        }
        Err(WorkspaceError::Token(e)) => {
            p.refused = token_refusal(e).to_owned();
            Ok((StatusCode::BAD_REQUEST, p).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

fn p_token(token: &str) -> String {
    url::form_urlencoded::byte_serialize(token.as_bytes()).collect()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JoinForm {
    token: String,
}

/// Joins the invitation's workspace with the signed-in account and switches to it.
async fn join(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    session: Session,
    Form(form): Form<JoinForm>,
) -> AppResult<Response> {
    match invitations::accept(&state.pool, &form.token, &user).await {
        Ok(m) => {
            tracing::info!(workspace.id = %m.workspace.id, "workspace invitation accepted");
            let detail = json!({ "role": m.role.as_str() });
            note(
                &state,
                m.workspace.id,
                Actor::User(user.id),
                kind::MEMBER_JOINED,
                &user.email,
                detail,
            )
            .await;
            switch_workspace(&session, &m).await?;
            flash(&session, "success", format!("Welcome to {}.", m.workspace.name)).await?;
            Ok(Redirect::to("/").into_response())
        }
        Err(e @ WorkspaceError::WrongAccount { .. }) => {
            flash(&session, "error", e.to_string()).await?;
            Ok(Redirect::to(&format!("{JOIN}?token={}", p_token(&form.token))).into_response())
        }
        Err(WorkspaceError::Token(e)) => {
            flash(&session, "error", token_refusal(e)).await?;
            Ok(Redirect::to(&format!("{JOIN}?token={}", p_token(&form.token))).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub struct AuditRow {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "workspace/audit.html")]
pub struct AuditPage {
    pub shell: Shell,
    pub name: String,
    pub entries: Vec<AuditRow>,
    /// The link to older entries, when there are some.
    pub older: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuditQuery {
    before: String,
}

/// The workspace's audit trail, newest first, for owners and admins.
async fn audit_page(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Query(q): Query<AuditQuery>,
) -> AppResult<AuditPage> {
    ws.may(Action::ReadAudit)?;
    let before = match q.before.trim() {
        "" => None,
        raw => Some(
            raw.parse::<i64>()
                .map_err(|_| AppError::BadRequest("before must be an entry number".to_owned()))?,
        ),
    };
    let (entries, more) = ender_core::workspace::audit::page(&state.pool, &ws.0, before, AUDIT_PAGE).await?;
    let older = more
        .then(|| entries.last().map(|e| format!("{AUDIT}?before={}", e.id)))
        .flatten();
    Ok(AuditPage {
        shell,
        name: ws.0.workspace.name.clone(),
        entries: entries
            .into_iter()
            .map(|e| AuditRow {
                when: e.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                actor: e.actor,
                action: e.action,
                subject: e.subject,
                detail: match &e.detail {
                    serde_json::Value::Object(m) if m.is_empty() => String::new(),
                    serde_json::Value::Object(m) => m
                        .iter()
                        .map(|(k, v)| {
                            format!("{k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => other.to_string(),
                },
            })
            .collect(),
        older,
    })
}
