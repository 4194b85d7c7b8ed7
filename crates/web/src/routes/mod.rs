//! The router: each feature module owns its routes; this file composes them with the
//! layers, in order.

pub mod account;
pub mod admin;
pub mod api;
pub mod assets;
pub mod auth;
pub mod billing;
pub mod contacts;
pub mod dashboard;
pub mod devices;
pub mod events;
pub mod exports;
pub mod health;
pub mod invitations;
pub mod keys;
pub mod messages;
pub mod oauth;
pub mod scheduled;
pub mod send;
pub mod setup;
pub mod templates;
pub mod webhooks;
pub mod workspaces;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use std::time::Duration;

use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
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
        .merge(invitations::routes())
        .merge(setup::routes())
        .merge(admin::routes())
        .merge(keys::routes())
        .merge(devices::routes())
        .merge(send::routes())
        .merge(messages::routes())
        .merge(exports::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(contacts::routes())
        .merge(templates::routes())
        .merge(scheduled::routes())
        .merge(workspaces::routes())
        .merge(billing::routes())
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { error_page(StatusCode::METHOD_NOT_ALLOWED) });

    Router::new()
        .merge(pages)
        .nest("/api", api::routes())
        .layer(from_fn_with_state(state.clone(), crate::middleware::maintenance))
        .layer(from_fn(crate::middleware::no_store))
        .layer(from_fn(crate::csrf::verify))
        .layer(sessions)
        .layer(from_fn(crate::session::unavailable_as_503))
        .merge(health::routes())
        .merge(assets::routes())
        // Until the answer starts: a started event stream is not cut (review L4).
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(state.config.request_timeout_secs.max(1)),
        ))
        .layer(from_fn(crate::middleware::timeout_answer))
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

/// A redirect target from user input, kept on this site: a path (one `/`, then anything
/// but `/` or `\\`) that resolves against the public URL to the same origin. Control
/// characters, backslashes and `//` are refused at every level of percent-decoding, since
/// a browser strips tabs and newlines and treats `\\` as `/` (so `/%09/evil.example` would
/// leave the site), and a later decode must not turn a value hostile either.
pub fn safe_next(next: Option<&str>, public_url: &url::Url) -> String {
    next.and_then(|n| same_site_path(n, public_url))
        .unwrap_or_else(|| paths::HOME.to_owned())
}

fn same_site_path(raw: &str, public_url: &url::Url) -> Option<String> {
    /// Deeper nesting than this is refused rather than decoded further.
    const MAX_DECODES: usize = 4;
    if !raw.starts_with('/') || raw.len() > 2048 {
        return None;
    }
    let mut layer = std::borrow::Cow::Borrowed(raw);
    let mut settled = false;
    for _ in 0..=MAX_DECODES {
        if layer.chars().any(|c| c.is_control() || c == '\\') {
            return None;
        }
        let path = layer.split(['?', '#']).next().unwrap_or_default();
        if path.contains("//") {
            return None;
        }
        let decoded = percent_encoding::percent_decode_str(&layer).decode_utf8().ok()?;
        if decoded == layer {
            settled = true;
            break;
        }
        layer = std::borrow::Cow::Owned(decoded.into_owned());
    }
    if !settled {
        return None;
    }
    let resolved = public_url.join(raw).ok()?;
    if resolved.origin() != public_url.origin() {
        return None;
    }
    Some(resolved[url::Position::BeforePath..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        let base = url::Url::parse("https://ender.example").unwrap();
        for (next, expected) in [
            ("/settings?tab=1", "/settings?tab=1"),
            ("/ok?x=1", "/ok?x=1"),
            ("/contacts", "/contacts"),
            ("/", "/"),
            ("/messages?q=a%20b", "/messages?q=a%20b"),
            ("//evil.example", "/"),
            ("//evil", "/"),
            ("///evil.example", "/"),
            ("https://evil.example/", "/"),
            ("https://evil.example", "/"),
            ("http://ender.example/", "/"),
            ("evil.example", "/"),
            ("", "/"),
            ("/\\evil.example", "/"),
            ("/\t/evil.example", "/"),
            ("/\t\\evil", "/"),
            ("/\r\nLocation: x", "/"),
            ("/\n/evil.example", "/"),
            ("/\u{7f}/evil.example", "/"),
            ("/\u{85}/evil.example", "/"),
            ("/%09/evil.example", "/"),
            ("/%0a/evil.example", "/"),
            ("/%0D%0A/evil.example", "/"),
            ("/%7F/evil.example", "/"),
            ("/%5Cevil", "/"),
            ("/%5cevil", "/"),
            ("/%2F%2Fevil", "/"),
            ("/%2f/evil", "/"),
            ("/a%2F%2Fevil", "/"),
            ("/%252F%252Fevil", "/"),
            ("/%2509/evil.example", "/"),
            ("/%255Cevil", "/"),
            ("/%25252F%25252Fevil", "/"),
            ("/%2525252525252F", "/"),
            ("/x?y=%5C", "/"),
            ("/%ff", "/"),
        ] {
            assert_eq!(safe_next(Some(next), &base), expected, "{next:?}");
        }
        assert_eq!(safe_next(None, &base), "/");
    }
}
