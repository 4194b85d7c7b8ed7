//! CSRF protection for every state-changing request made with a session: the session's
//! token must come back in the `X-CSRF-Token` header (HTMX) or the `_csrf` form field. A
//! file upload (`multipart/form-data`) carries it as a `_csrf` query parameter of the form's
//! action instead, so the body (up to the route's own limit) is never buffered here.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::error::AppError;
use crate::session::CSRF_KEY;

pub const HEADER: &str = "x-csrf-token";
pub const FIELD: &str = "_csrf";
/// Largest form body read while looking for the token.
const MAX_FORM_BYTES: usize = 256 * 1024;

pub async fn verify(session: Session, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    // API calls made with a key, or with no session cookie at all, cannot ride on a
    // browser's session: nothing to forge (they fail authentication on their own).
    if req.uri().path().starts_with("/api/")
        && (req.headers().contains_key("x-api-key") || !has_session_cookie(&req))
    {
        return next.run(req).await;
    }
    let api = req.uri().path().starts_with("/api/");
    let reject = || reject(api);
    let expected = match session.get::<String>(CSRF_KEY).await {
        Ok(Some(t)) => t,
        Ok(None) => return reject(),
        Err(e) => return AppError::from(e).into_response(),
    };
    if let Some(sent) = req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        return if matches(sent, &expected) {
            next.run(req).await
        } else {
            reject()
        };
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("multipart/form-data") {
        let sent = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == FIELD)
            .map(|(_, v)| v.into_owned());
        return match sent {
            Some(sent) if matches(&sent, &expected) => next.run(req).await,
            _ => reject(),
        };
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return reject();
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => return AppError::PayloadTooLarge.into_response(),
    };
    let sent = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned());
    match sent {
        Some(sent) if matches(&sent, &expected) => {
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        _ => reject(),
    }
}

fn has_session_cookie(req: &Request) -> bool {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| {
            c.split(';')
                .any(|p| p.trim_start().starts_with(crate::routes::SESSION_COOKIE))
        })
}

fn matches(sent: &str, expected: &str) -> bool {
    sent.len() == expected.len() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

fn reject(api: bool) -> Response {
    tracing::info!("rejected a request without a valid CSRF token");
    if api {
        return crate::routes::api::ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "Missing or invalid CSRF token: send the page's token in the X-CSRF-Token header.",
        )
        .into_response();
    }
    AppError::Csrf.into_response()
}
