//! Cross-cutting request handling: security headers, `no-store` on private answers, the
//! client's IP behind trusted proxies, and JSON answers for unknown `/api/` paths.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use tower_sessions::Session;

use crate::state::AppState;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; \
                   form-action 'self'; frame-ancestors 'none'";

/// Adds the security headers to every response (HSTS only when served over TLS).
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if state.config.is_https() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    res
}

/// Marks every API answer and every answer to a signed-in user `Cache-Control: no-store`,
/// so that no browser or proxy cache keeps a page or answer that may hold a key, a secret
/// or someone's messages. Public pages for signed-out visitors (and static assets, outside
/// this layer) keep their caching. The user is looked up after the handler ran, in the
/// session it already loaded; an unreadable session counts as signed in.
pub async fn no_store(session: Session, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    let private = api
        || session
            .get::<ender_core::account::UserId>(crate::session::USER_KEY)
            .await
            .map_or(true, |user| user.is_some());
    if private {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the nearest
/// untrusted address in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self(client_ip(peer, &forwarded, &state.config.trusted_proxies)))
    }
}

/// Walks `X-Forwarded-For` from the right while the hop is trusted.
pub fn client_ip(peer: IpAddr, forwarded_for: &str, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// Gives the bare 408 of the request timeout (`ENDER_REQUEST_TIMEOUT_SECS`) the caller's
/// format: the JSON envelope under `/api/`, the error page elsewhere.
pub async fn timeout_answer(req: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    let api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    if res.status() != axum::http::StatusCode::REQUEST_TIMEOUT
        || res.headers().contains_key(header::CONTENT_TYPE)
    {
        return res;
    }
    tracing::warn!("a request timed out; answering 408");
    if api {
        crate::routes::api::ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "The request took too long. Try again.",
        )
        .into_response()
    } else {
        crate::error::error_page(axum::http::StatusCode::REQUEST_TIMEOUT)
    }
}

/// How long clients are asked to wait during maintenance (`Retry-After`, seconds).
pub const MAINTENANCE_RETRY_SECS: u32 = 300;

/// Paths that keep working in maintenance mode for everyone: the device API (phones and
/// modems keep reporting, so nothing is lost), payment providers' callbacks (a payment
/// made is recorded), signing in (refused there for anyone but administrators) and out.
const MAINTENANCE_OPEN: &[&str] = &[
    "/api/sms/pending",
    "/api/sms/report",
    "/api/sms/incoming",
    "/api/sms/fcm-token",
    "/api/device/status",
    "/api/device/events",
    "/api/realtime",
    "/api/webhooks/stripe",
    "/api/webhooks/stripe/",
    "/api/webhooks/qvapay",
    "/api/webhooks/qvapay/",
    "/login",
    "/logout",
];

/// Maintenance mode: while it is on, a change (any method but GET, HEAD and OPTIONS) by
/// anyone but a signed-in administrator gets 503 with `Retry-After`: the maintenance page,
/// or the JSON envelope under `/api/`. Pages can still be read.
pub async fn maintenance(State(state): State<AppState>, req: Request, next: Next) -> Response {
    use axum::http::Method;
    use axum::response::IntoResponse;
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || MAINTENANCE_OPEN.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let settings = state.settings.get();
    if !settings.maintenance() {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let admin = crate::session::MaybeUser::from_request_parts(&mut parts, &state)
        .await
        .ok()
        .and_then(|u| u.0)
        .is_some_and(|u| u.is_admin);
    if admin {
        return next.run(Request::from_parts(parts, body)).await;
    }
    maintenance_answer(
        parts.uri.path().starts_with("/api/"),
        settings.get("maintenance_message"),
    )
    .into_response()
}

/// The 503 of maintenance mode, as a page or (`api`) the JSON envelope.
pub fn maintenance_answer(api: bool, message: &str) -> Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    if !api {
        return crate::error::AppError::Maintenance(message.to_owned()).into_response();
    }
    let mut res = crate::routes::api::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(MAINTENANCE_RETRY_SECS));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(ip("203.0.113.9"), "1.2.3.4", &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("10.0.0.2"), "1.2.3.4", &trusted), ip("1.2.3.4"));
        // A client cannot spoof by prepending: the rightmost untrusted hop wins.
        assert_eq!(
            client_ip(ip("10.0.0.2"), "6.6.6.6, 1.2.3.4, 10.0.0.7", &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(client_ip(ip("10.0.0.2"), "", &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), "garbage", &trusted), ip("10.0.0.2"));
    }
}
