//! The router: each feature module owns its routes; this file composes them with the
//! layers, in order.

pub mod account;
pub mod admin;
pub mod api;
pub mod assets;
pub mod auth;
pub mod contacts;
pub mod dashboard;
pub mod devices;
pub mod events;
pub mod health;
pub mod keys;
pub mod messages;
pub mod oauth;
pub mod scheduled;
pub mod send;
pub mod setup;
pub mod templates;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::error::{AppError, error_page};
use crate::session::PgSessionStore;
use crate::state::AppState;

/// Paths shared by handlers, redirects and templates.
pub mod paths {
    pub const HOME: &str = "/";
    pub const LOGIN: &str = "/login";
    pub const LOGOUT: &str = "/logout";
    pub const SIGNUP: &str = "/signup";
    pub const VERIFY_EMAIL: &str = "/verify-email";
    pub const RESEND_VERIFICATION: &str = "/verify-email/resend";
    pub const FORGOT_PASSWORD: &str = "/forgot-password";
    pub const RESET_PASSWORD: &str = "/reset-password";
    pub const SETTINGS: &str = "/settings";
    pub const SETUP: &str = "/setup";
    pub const ADMIN: &str = "/admin";
}

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "ender_session";

/// Largest request body any route accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let idle = time::Duration::minutes(state.config.session_idle_minutes.max(1));
    let sessions = SessionManagerLayer::new(PgSessionStore::new(state.pool.clone()))
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.is_https())
        .with_expiry(Expiry::OnInactivity(idle));

    let pages = Router::new()
        .merge(dashboard::routes())
        .merge(auth::routes())
        .merge(oauth::routes())
        .merge(account::routes())
        .merge(setup::routes())
        .merge(admin::routes())
        .merge(keys::routes())
        .merge(devices::routes())
        .merge(send::routes())
        .merge(messages::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(contacts::routes())
        .merge(templates::routes())
        .merge(scheduled::routes())
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { error_page(StatusCode::METHOD_NOT_ALLOWED) });

    Router::new()
        .merge(pages)
        .nest("/api", api::routes())
        .layer(from_fn(crate::csrf::verify))
        .layer(sessions)
        .layer(from_fn(crate::session::unavailable_as_503))
        .merge(health::routes())
        .merge(assets::routes())
        .layer(from_fn_with_state(state.clone(), crate::middleware::security_headers))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| error_page(StatusCode::INTERNAL_SERVER_ERROR).into_response()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request.id = %id)
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// A redirect target from user input, kept on this site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.contains(['\r', '\n']) =>
        {
            n.to_owned()
        }
        _ => paths::HOME.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/settings?tab=1")), "/settings?tab=1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
