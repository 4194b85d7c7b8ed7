//! Sessions in Postgres for tower-sessions, and sign-in state on top of them: who is signed
//! in, since when (absolute expiry), the CSRF token and flash messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use ender_core::account::{User, UserId};
use ender_core::session::repo;
use ender_core::workspace::{Action, Membership, WorkspaceError, WorkspaceId};
use sqlx::PgPool;
use tower_sessions::Session;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub const USER_KEY: &str = "user_id";
pub const AUTH_AT_KEY: &str = "auth_at";
pub const CSRF_KEY: &str = "csrf";
pub const FLASH_KEY: &str = "flash";
/// The workspace chosen with the switcher; absent means the personal workspace.
pub const WORKSPACE_KEY: &str = "workspace";

/// tower-sessions store on the `sessions` table. The signed-in user id is mirrored into a
/// column so ending a user's sessions is one statement.
#[derive(Debug, Clone)]
pub struct PgSessionStore {
    pool: PgPool,
}

impl PgSessionStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Prefix of store errors caused by an unreachable database, so they become 503s.
pub const UNAVAILABLE: &str = "database unavailable: ";

tokio::task_local! {
    /// Set by the store when the database was unreachable during this request.
    static STORE_UNAVAILABLE: Arc<AtomicBool>;
}

/// Outside the session layer: tower-sessions turns a failed save into a bare 500; when the
/// cause was an unreachable database, answer with the 503 page instead.
pub async fn unavailable_as_503(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let flag = Arc::new(AtomicBool::new(false));
    let res = STORE_UNAVAILABLE.scope(flag.clone(), next.run(req)).await;
    if flag.load(Ordering::Relaxed) && res.status() == StatusCode::INTERNAL_SERVER_ERROR {
        if api {
            return crate::routes::api::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable.",
            )
            .into_response();
        }
        return crate::error::error_page(StatusCode::SERVICE_UNAVAILABLE);
    }
    res
}

fn backend(e: sqlx::Error) -> session_store::Error {
    if ender_core::db::is_unavailable(&e) {
        let _ = STORE_UNAVAILABLE.try_with(|f| f.store(true, Ordering::Relaxed));
        session_store::Error::Backend(format!("{UNAVAILABLE}{e}"))
    } else {
        session_store::Error::Backend(e.to_string())
    }
}

fn to_chrono(t: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_else(Utc::now)
}

fn to_time(t: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
}

fn user_of(record: &Record) -> Option<UserId> {
    record
        .data
        .get(USER_KEY)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn encode(record: &Record) -> session_store::Result<serde_json::Value> {
    serde_json::to_value(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = encode(record)?;
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        // An id collision is astronomically unlikely; pick another one if it happens.
        while !repo::create(
            &mut conn,
            &record.id.to_string(),
            &data,
            to_chrono(record.expiry_date),
            user_of(record),
        )
        .await
        .map_err(backend)?
        {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = encode(record)?;
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        repo::save(
            &mut conn,
            &record.id.to_string(),
            &data,
            to_chrono(record.expiry_date),
            user_of(record),
        )
        .await
        .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let Some((data, expiry)) = repo::load(&mut conn, &id.to_string()).await.map_err(backend)? else {
            return Ok(None);
        };
        let data = serde_json::from_value(data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date: to_time(expiry),
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        repo::delete(&mut conn, &id.to_string()).await.map_err(backend)
    }
}

/// Signs `user` in: a new session id (the old one is discarded), the sign-in time for the
/// absolute expiry, and a fresh CSRF token.
pub async fn log_in(session: &Session, user: &User) -> AppResult<()> {
    session.cycle_id().await?;
    session.remove_value(WORKSPACE_KEY).await?;
    session.insert(USER_KEY, user.id).await?;
    session.insert(AUTH_AT_KEY, Utc::now().timestamp()).await?;
    session
        .insert(CSRF_KEY, ender_core::crypto::random_token(32))
        .await?;
    Ok(())
}

/// Ends the session entirely (the row is deleted and the cookie cleared).
pub async fn log_out(session: &Session) -> AppResult<()> {
    session.flush().await?;
    Ok(())
}

/// The session's CSRF token, created on first use.
pub async fn csrf_token(session: &Session) -> AppResult<String> {
    if let Some(token) = session.get::<String>(CSRF_KEY).await? {
        return Ok(token);
    }
    let token = ender_core::crypto::random_token(32);
    session.insert(CSRF_KEY, &token).await?;
    Ok(token)
}

/// The session id as stored, for "end every other session".
pub fn session_id(session: &Session) -> Option<String> {
    session.id().map(|id| id.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    pub kind: String,
    pub text: String,
}

/// Queues a message for the next page the user sees.
pub async fn flash(session: &Session, kind: &str, text: impl Into<String>) -> AppResult<()> {
    let mut all: Vec<Flash> = session.get(FLASH_KEY).await?.unwrap_or_default();
    all.push(Flash {
        kind: kind.to_owned(),
        text: text.into(),
    });
    session.insert(FLASH_KEY, all).await?;
    Ok(())
}

/// Takes the queued messages.
pub async fn take_flashes(session: &Session) -> AppResult<Vec<Flash>> {
    Ok(session.remove(FLASH_KEY).await?.unwrap_or_default())
}

/// The signed-in user, if any (loaded once per request and cached in its extensions).
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<User>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        if let Some(cached) = parts.extensions.get::<MaybeUser>() {
            return Ok(cached.clone());
        }
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("session layer missing")))?;
        let user = load_user(&session, state).await?;
        let found = MaybeUser(user);
        parts.extensions.insert(found.clone());
        Ok(found)
    }
}

async fn load_user(session: &Session, state: &AppState) -> AppResult<Option<User>> {
    let Some(id) = session.get::<UserId>(USER_KEY).await? else {
        return Ok(None);
    };
    let auth_at: i64 = session.get(AUTH_AT_KEY).await?.unwrap_or(0);
    let max_age = state.config.session_max_hours.saturating_mul(3600);
    if Utc::now().timestamp() - auth_at > max_age {
        session.flush().await?;
        return Ok(None);
    }
    match ender_core::account::find(&state.pool, id)
        .await
        .map_err(AppError::from)?
    {
        // A suspended account's sessions are ended when it is suspended; one that slipped
        // through (a request in flight then) ends here.
        Some(user) if user.suspended_at.is_none() => Ok(Some(user)),
        _ => {
            session.flush().await?;
            Ok(None)
        }
    }
}

/// A signed-in user; otherwise the request is redirected to sign in and back.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        match MaybeUser::from_request_parts(parts, state).await?.0 {
            Some(user) => Ok(Self(user)),
            None => Err(AppError::LoginRequired {
                next: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/".to_owned()),
            }),
        }
    }
}

/// A signed-in administrator; 403 for anyone else signed in.
#[derive(Debug, Clone)]
pub struct AdminUser(pub User);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if user.is_admin {
            Ok(Self(user))
        } else {
            Err(AppError::Forbidden)
        }
    }
}

/// The workspace a signed-in user is acting in, with their role: the one chosen in the
/// session, or their personal workspace. Read afresh on every request, so a member who is
/// removed, or whose role changes, is treated as such from their next click; one whose
/// chosen workspace is no longer theirs gets the "no longer have access" page once and is
/// back in their personal workspace.
#[derive(Debug, Clone)]
pub struct CurrentWorkspace(pub Membership);

impl CurrentWorkspace {
    pub fn id(&self) -> WorkspaceId {
        self.0.workspace.id
    }

    /// The member: the signed-in user.
    pub fn user_id(&self) -> UserId {
        self.0.user_id
    }

    /// The member, as the audit trail names who did something.
    pub fn actor(&self) -> ender_core::workspace::audit::Actor {
        ender_core::workspace::audit::Actor::User(self.0.user_id)
    }

    /// Refuses (a 403 page, or the envelope on the API) unless the role may do `action`.
    pub fn may(&self, action: Action) -> AppResult<()> {
        if self.0.role.may(action) {
            Ok(())
        } else {
            Err(AppError::RoleForbids(action))
        }
    }
}

impl FromRequestParts<AppState> for CurrentWorkspace {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        if let Some(cached) = parts.extensions.get::<CurrentWorkspace>() {
            return Ok(cached.clone());
        }
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("session layer missing")))?;
        let current = current_workspace(&session, state, &user).await?;
        parts.extensions.insert(current.clone());
        Ok(current)
    }
}

async fn current_workspace(session: &Session, state: &AppState, user: &User) -> AppResult<CurrentWorkspace> {
    let chosen = session.get::<WorkspaceId>(WORKSPACE_KEY).await?;
    match ender_core::workspace::current(&state.pool, user.id, chosen).await {
        Ok(m) => Ok(CurrentWorkspace(m)),
        Err(WorkspaceError::NotFound) if chosen.is_some() => {
            session.remove_value(WORKSPACE_KEY).await?;
            Err(AppError::NoLongerMember)
        }
        Err(WorkspaceError::Db(e)) => Err(e.into()),
        Err(e) => Err(AppError::Internal(anyhow::anyhow!("no personal workspace: {e}"))),
    }
}

/// Makes `workspace` the session's current one (the caller has checked the membership).
pub async fn switch_workspace(session: &Session, workspace: &Membership) -> AppResult<()> {
    if workspace.workspace.personal_for == Some(workspace.user_id) {
        session.remove_value(WORKSPACE_KEY).await?;
    } else {
        session.insert(WORKSPACE_KEY, workspace.workspace.id).await?;
    }
    Ok(())
}
