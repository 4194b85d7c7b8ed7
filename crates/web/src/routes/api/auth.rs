//! Who is calling the API: an integration key (`X-API-Key: vk_…`, legacy `ek_…`) or the
//! signed-in session for integration routes; a device key (`dk_…`) for device routes.
//! Each credential has its own request budget. An integration key acts in its workspace and
//! may call only the routes its scopes cover ([`ender_core::apikey::for_route`]); a session
//! acts in its current workspace and may call the routes its role allows
//! ([`ender_core::apikey::action_for`]).

use axum::Json;
use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use ender_core::account::UserId;
use ender_core::apikey::{Scope, Scopes};
use ender_core::device::Device;
use ender_core::workspace::audit::Actor;
use ender_core::workspace::{Action, Role, WorkspaceId};
use serde_json::json;

use super::ApiError;
use crate::error::{AppError, NO_LONGER_MEMBER, role_forbids};
use crate::ratelimit::Limited;
use crate::session::{CurrentWorkspace, MaybeUser};
use crate::state::AppState;

/// The workspace an integration request acts in.
#[derive(Debug, Clone, Copy)]
pub struct ApiWorkspace(pub WorkspaceId);

/// The workspace an integration request acts in, the person behind it (the signed-in user,
/// or the key's maker while that account exists) and the scopes its credential holds (every
/// scope for a session), for routes that hand on permissions, as key creation does.
#[derive(Debug, Clone, Copy)]
pub struct ApiCaller {
    pub workspace: WorkspaceId,
    pub user: Option<UserId>,
    pub scopes: Scopes,
    /// Who the audit trail names: the key, or the signed-in person.
    pub actor: Actor,
}

/// The device a device request comes from.
#[derive(Debug, Clone)]
pub struct ApiDevice(pub Device);

/// 429 in the envelope plus the quota keys every SDK reads from any 429.
pub struct RateLimited(pub Limited);

impl IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        let Limited { limit, used } = self.0;
        let message = format!("Too many requests: at most {limit} per minute for this credential.");
        let body = json!({
            "data": {}, "message": message, "status": 429,
            "detail": message, "error": "rate_limited",
            "limit": limit, "used": used, "available": 0,
        });
        (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "60")], Json(body)).into_response()
    }
}

pub enum AuthRejection {
    Api(ApiError),
    Limited(RateLimited),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Api(e) => e.into_response(),
            Self::Limited(l) => l.into_response(),
        }
    }
}

impl From<sqlx::Error> for AuthRejection {
    fn from(e: sqlx::Error) -> Self {
        Self::Api(e.into())
    }
}

impl From<ApiError> for AuthRejection {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

fn api_key(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

impl FromRequestParts<AppState> for ApiWorkspace {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        ApiCaller::from_request_parts(parts, state)
            .await
            .map(|c| Self(c.workspace))
    }
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<ApiCaller>() {
            return Ok(*caller);
        }
        let unauthorized = || ApiError::new(StatusCode::UNAUTHORIZED, "Authentication required.");
        let (workspace, user, scopes, credential, actor) = match api_key(parts) {
            Some(key) => {
                let grant = ender_core::apikey::authenticate(&state.pool, key)
                    .await?
                    .ok_or_else(unauthorized)?;
                check_scope(parts, grant.scopes)?;
                (
                    grant.workspace,
                    grant.created_by,
                    grant.scopes,
                    format!("key:{}", grant.key),
                    Actor::Key(grant.key),
                )
            }
            None => {
                let as_api = |e: AppError| match e {
                    AppError::Unavailable => ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service temporarily unavailable.",
                    ),
                    AppError::NoLongerMember => ApiError::new(StatusCode::FORBIDDEN, NO_LONGER_MEMBER),
                    _ => unauthorized(),
                };
                let MaybeUser(user) = MaybeUser::from_request_parts(parts, state)
                    .await
                    .map_err(as_api)?;
                let user = user.ok_or_else(unauthorized)?;
                let current = CurrentWorkspace::from_request_parts(parts, state)
                    .await
                    .map_err(as_api)?;
                check_role(parts, &current)?;
                (
                    current.id(),
                    Some(user.id),
                    Scopes::all(),
                    format!("user:{}", user.id),
                    Actor::User(user.id),
                )
            }
        };
        state
            .limiter
            .check(&credential)
            .map_err(|l| AuthRejection::Limited(RateLimited(l)))?;
        let caller = Self {
            workspace,
            user,
            scopes,
            actor,
        };
        parts.extensions.insert(caller);
        Ok(caller)
    }
}

fn route_template(parts: &Parts) -> &str {
    parts
        .extensions
        .get::<MatchedPath>()
        .map_or_else(|| parts.uri.path(), MatchedPath::as_str)
}

/// 403 unless the session's role in its current workspace allows what the route does.
fn check_role(parts: &Parts, current: &CurrentWorkspace) -> Result<(), ApiError> {
    match ender_core::apikey::action_for(parts.method.as_str(), route_template(parts)) {
        Some(action) => current.may(action).map_err(|_| role_refusal(action)),
        None if current.0.role == Role::Owner => Ok(()),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Only an owner of the workspace may call this route.",
        )),
    }
}

/// The envelope for a role that does not allow `action`.
pub fn role_refusal(action: Action) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, role_forbids(action))
}

/// 403 unless the key's scopes cover the route being called. A route the scope table does
/// not name needs every scope.
fn check_scope(parts: &Parts, scopes: Scopes) -> Result<(), ApiError> {
    let template = route_template(parts);
    let missing: Vec<Scope> = match ender_core::apikey::for_route(parts.method.as_str(), template) {
        Some(needed) => (!scopes.contains(needed)).then_some(needed).into_iter().collect(),
        None => Scopes::all().iter().filter(|s| !scopes.contains(*s)).collect(),
    };
    match missing.as_slice() {
        [] => Ok(()),
        [one] => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("This API key does not have the `{one}` scope."),
        )),
        many => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "This API key does not have the scopes this route needs: {}.",
                many.iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

impl FromRequestParts<AppState> for ApiDevice {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let invalid = || ApiError::new(StatusCode::UNAUTHORIZED, "Invalid API key.");
        let key = api_key(parts).ok_or_else(invalid)?;
        let device = ender_core::device::authenticate(&state.pool, key)
            .await?
            .ok_or_else(invalid)?;
        state
            .limiter
            .check(&format!("device:{}", device.id))
            .map_err(|l| AuthRejection::Limited(RateLimited(l)))?;
        Ok(Self(device))
    }
}
