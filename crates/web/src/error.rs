//! The one mapping from failures to responses: pages get an error page (or a redirect to
//! sign in), `/api/` routes get the JSON envelope. Causes are logged once, here.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ender_core::account::AccountError;
use ender_core::workspace::{Action, Role, WorkspaceError};

use crate::routes::paths;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    /// The member's role in the current workspace does not allow the action.
    #[error("the role does not allow: {}", .0.describe())]
    RoleForbids(Action),
    /// The workspace the session was looking at is no longer theirs (they were removed, or
    /// it was deleted); the session is back in the personal workspace.
    #[error("no longer a member of the workspace")]
    NoLongerMember,
    #[error("the security token of the form was missing or wrong")]
    Csrf,
    #[error("sign-in required")]
    LoginRequired { next: String },
    #[error("too many requests")]
    RateLimited,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("database unavailable")]
    Unavailable,
    /// Maintenance mode refuses the change: 503 with `Retry-After` and the operator's words.
    #[error("under maintenance")]
    Maintenance(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if ender_core::db::is_unavailable(&e) {
            Self::Unavailable
        } else {
            Self::Internal(e.into())
        }
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        if e.to_string().contains(crate::session::UNAVAILABLE) {
            return Self::Unavailable;
        }
        Self::Internal(anyhow::anyhow!("session: {e}"))
    }
}

impl From<AccountError> for AppError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Database(e) => e.into(),
            AccountError::NotFound => Self::NotFound,
            other => Self::Internal(anyhow::anyhow!("unhandled account error: {other}")),
        }
    }
}

impl From<WorkspaceError> for AppError {
    fn from(e: WorkspaceError) -> Self {
        match e {
            WorkspaceError::Db(e) => e.into(),
            WorkspaceError::NotFound => Self::NotFound,
            WorkspaceError::Forbidden(action) => Self::RoleForbids(action),
            other => Self::BadRequest(other.to_string()),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub code: u16,
    pub title: &'static str,
    pub message: String,
}

impl ErrorPage {
    pub fn for_status(status: StatusCode) -> Self {
        let (title, message) = match status.as_u16() {
            400 => ("Bad request", "The request could not be understood."),
            403 => (
                "Forbidden",
                "You do not have access to this page, or the form expired. Go back, reload the page and try again.",
            ),
            404 => ("Page not found", "There is nothing at this address."),
            405 => (
                "Method not allowed",
                "This address does not accept that kind of request.",
            ),
            408 => (
                "Request timed out",
                "The request took too long to arrive or to answer. Try again.",
            ),
            413 => ("Too large", "What you sent is larger than this server accepts."),
            429 => (
                "Too many attempts",
                "Too many attempts in a short time. Wait a minute and try again.",
            ),
            503 => (
                "Temporarily unavailable",
                "Ender cannot reach its database right now. It recovers on its own; try again in a moment.",
            ),
            _ => (
                "Something went wrong",
                "An unexpected error happened. It has been logged; try again.",
            ),
        };
        Self {
            code: status.as_u16(),
            title,
            message: message.to_owned(),
        }
    }
}

/// An error page with the right status.
pub fn error_page(status: StatusCode) -> Response {
    (status, ErrorPage::for_status(status)).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Forbidden | Self::Csrf => StatusCode::FORBIDDEN,
            Self::RoleForbids(action) => {
                let page = ErrorPage {
                    code: 403,
                    title: "Not allowed for your role",
                    message: role_forbids(*action),
                };
                return (StatusCode::FORBIDDEN, page).into_response();
            }
            Self::NoLongerMember => {
                let page = ErrorPage {
                    code: 403,
                    title: "You no longer have access",
                    message: NO_LONGER_MEMBER.to_owned(),
                };
                return (StatusCode::FORBIDDEN, page).into_response();
            }
            Self::LoginRequired { next } => {
                let to = format!(
                    "{}?next={}",
                    paths::LOGIN,
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                return Redirect::to(&to).into_response();
            }
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable => {
                tracing::warn!("database unavailable; answering 503");
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Maintenance(message) => {
                let page = ErrorPage {
                    code: 503,
                    title: "Under maintenance",
                    message: message.clone(),
                };
                let mut res = (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
                res.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(crate::middleware::MAINTENANCE_RETRY_SECS),
                );
                return res;
            }
            Self::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        error_page(status)
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// Why a role check refused, as pages and the API say it.
pub fn role_forbids(action: Action) -> String {
    let who = match action.least_role() {
        Role::Owner => "an owner",
        Role::Admin => "an admin or an owner",
        Role::Member | Role::Viewer => "a member, an admin or an owner",
    };
    format!(
        "Your role in this workspace does not allow you to {}: ask {who} of the workspace.",
        action.describe()
    )
}

pub const NO_LONGER_MEMBER: &str = "You are no longer a member of the workspace you were looking at: \
     someone removed you, or it was deleted. You are back in your personal workspace.";
