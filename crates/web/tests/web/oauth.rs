//! Sign-in through OAuth against a fake provider on loopback that checks PKCE.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::helpers::*;

/// Who the fake provider says is signing in.
#[derive(Clone)]
struct Identity {
    subject: String,
    email: String,
    verified: bool,
    name: String,
}

#[derive(Clone, Default)]
struct Provider {
    identity: Arc<Mutex<Option<Identity>>>,
    /// code → (PKCE challenge, identity)
    codes: Arc<Mutex<HashMap<String, (String, Identity)>>>,
    tokens: Arc<Mutex<HashMap<String, Identity>>>,
}

async fn authorize(State(p): State<Provider>, Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
    assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
    let identity = p.identity.lock().await.clone().expect("identity set");
    let code = ender_core::crypto::random_token(12);
    p.codes
        .lock()
        .await
        .insert(code.clone(), (q["code_challenge"].clone(), identity));
    Redirect::to(&format!("{}?code={code}&state={}", q["redirect_uri"], q["state"]))
}

async fn token(State(p): State<Provider>, Form(f): Form<HashMap<String, String>>) -> impl IntoResponse {
    let Some((challenge, identity)) = p.codes.lock().await.remove(&f["code"]) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response();
    };
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(f["code_verifier"].as_bytes()));
    if computed != challenge {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response();
    }
    let access = ender_core::crypto::random_token(20);
    p.tokens.lock().await.insert(access.clone(), identity);
    Json(json!({"access_token": access, "token_type": "bearer", "expires_in": 3600})).into_response()
}

async fn bearer(p: &Provider, headers: &axum::http::HeaderMap) -> Option<Identity> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .to_owned();
    p.tokens.lock().await.get(&token).cloned()
}

async fn google_userinfo(State(p): State<Provider>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    match bearer(&p, &headers).await {
        Some(i) => {
            Json(json!({"sub": i.subject, "email": i.email, "email_verified": i.verified, "name": i.name}))
                .into_response()
        }
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn github_user(State(p): State<Provider>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    match bearer(&p, &headers).await {
        Some(i) => Json(json!({"id": i.subject.parse::<i64>().unwrap(), "login": "octo", "name": i.name}))
            .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn github_emails(State(p): State<Provider>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    match bearer(&p, &headers).await {
        Some(i) => Json(json!([
            {"email": "noreply@users.example", "primary": false, "verified": true},
            {"email": i.email, "primary": true, "verified": i.verified}
        ]))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn start_provider() -> (Provider, String) {
    let p = Provider::default();
    let router = Router::new()
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/userinfo", get(google_userinfo))
        .route("/user", get(github_user))
        .route("/user/emails", get(github_emails))
        .with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (p, base)
}

async fn app_with_providers(base: &str, more: &[&str]) -> TestApp {
    let args = [
        ("--google-client-id", "google-id"),
        ("--google-client-secret", "google-secret"),
        ("--google-auth-url", &format!("{base}/authorize")),
        ("--google-token-url", &format!("{base}/token")),
        ("--google-userinfo-url", &format!("{base}/userinfo")),
        ("--github-client-id", "github-id"),
        ("--github-client-secret", "github-secret"),
        ("--github-auth-url", &format!("{base}/authorize")),
        ("--github-token-url", &format!("{base}/token")),
        ("--github-api-url", base),
    ];
    TestApp::spawn_with(Options {
        extra_args: args
            .iter()
            .flat_map(|(k, v)| [k.to_string(), v.to_string()])
            .chain(more.iter().map(|a| a.to_string()))
            .collect(),
        ..Default::default()
    })
    .await
}

/// Follows the redirect dance: Ender → provider → Ender's callback. Returns the callback's response.
async fn sign_in_with(app: &TestApp, provider: &str) -> reqwest::Response {
    let res = app.get(&format!("/auth/oauth/{provider}?next=%2Fsettings")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to_provider = location(&res);
    assert!(
        to_provider.contains("code_challenge="),
        "PKCE is used: {to_provider}"
    );
    let res = app.client.get(&to_provider).send().await.unwrap();
    let callback = location(&res);
    assert!(
        callback.starts_with(&app.url(&format!("/auth/oauth/{provider}/callback"))),
        "{callback}"
    );
    app.client.get(&callback).send().await.unwrap()
}

#[tokio::test]
async fn google_sign_in_creates_a_verified_account_and_reuses_it() {
    let (provider, base) = start_provider().await;
    let app = app_with_providers(&base, &[]).await;
    *provider.identity.lock().await = Some(Identity {
        subject: "g-123".into(),
        email: "gia@example.org".into(),
        verified: true,
        name: "Gia".into(),
    });
    let res = sign_in_with(&app, "google").await;
    assert_eq!(location(&res), "/settings");
    let page = app.get("/settings").await.text().await.unwrap();
    assert_eq!(select_attr(&page, "input#full_name", "value").unwrap(), "Gia");
    // No password yet: the settings page offers to set one without the current one.
    assert!(!has(&page, "input#current_password"));

    app.post_form("/", "/logout", &[]).await;
    sign_in_with(&app, "google").await;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn a_verified_provider_email_links_to_the_existing_account() {
    let (provider, base) = start_provider().await;
    let app = app_with_providers(&base, &[]).await;
    app.create_user("octo@example.org", "correct horse battery").await;
    *provider.identity.lock().await = Some(Identity {
        subject: "4242".into(),
        email: "Octo@Example.org".into(),
        verified: true,
        name: "Octo".into(),
    });
    let res = sign_in_with(&app, "github").await;
    assert_eq!(location(&res), "/settings");
    let linked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM oauth_identities i JOIN users u ON u.id = i.user_id WHERE u.email = 'octo@example.org' AND i.provider = 'github' AND i.subject = '4242'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(linked, 1);
}

#[tokio::test]
async fn a_provider_verified_owner_takes_over_an_unverified_account_made_in_their_name() {
    let (provider, base) = start_provider().await;
    let app = app_with_providers(&base, &[]).await;
    // Mallory signs up with Vic's address and a password; verification is required, so the
    // account waits for a confirmation Mallory cannot give.
    let mallory = app.new_client();
    let res = post_form_with(
        &mallory,
        &app,
        "/signup",
        "/signup",
        &[
            ("email", "vic@example.org"),
            ("password", "mallory's password"),
            ("full_name", "Mallory"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(has(&res.text().await.unwrap(), "#check-email"));
    let confirm_link = app.wait_for_mails(1).await;
    let confirm_link = link_in(&confirm_link[0], &app.url(""));
    // Later the operator turns verification off (a second server on the same database), and
    // Mallory signs in with the unverified account.
    let relaxed = TestApp::spawn_with(Options {
        extra_args: vec!["--require-email-verification".into(), "false".into()],
        pool: Some(app.pool().clone()),
        ..Default::default()
    })
    .await;
    let mallory = relaxed.new_client();
    let res = post_form_with(
        &mallory,
        &relaxed,
        "/login",
        "/login",
        &[("email", "vic@example.org"), ("password", "mallory's password")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        mallory.get(relaxed.url("/")).send().await.unwrap().status(),
        StatusCode::OK
    );

    // Vic signs in with Google, which vouches for the address.
    *provider.identity.lock().await = Some(Identity {
        subject: "g-vic".into(),
        email: "vic@example.org".into(),
        verified: true,
        name: "Vic".into(),
    });
    let res = sign_in_with(&app, "google").await;
    assert_eq!(location(&res), "/settings");
    let page = app.get("/settings").await.text().await.unwrap();
    assert!(!has(&page, "input#current_password"), "the password is gone");

    // Mallory's session ended, her password no longer signs in, her link is dead.
    assert_eq!(
        location(&mallory.get(relaxed.url("/")).send().await.unwrap()),
        "/login?next=%2F"
    );
    for server in [&app, &relaxed] {
        let res = post_form_with(
            &server.new_client(),
            server,
            "/login",
            "/login",
            &[("email", "vic@example.org"), ("password", "mallory's password")],
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            select_text(&res.text().await.unwrap(), "#form-error")[0],
            "Incorrect email or password."
        );
    }
    let res = app.new_client().get(app.url(&confirm_link)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Vic is still signed in.
    assert_eq!(app.get("/settings").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unverified_provider_email_does_not_take_over_an_account() {
    let (provider, base) = start_provider().await;
    let app = app_with_providers(&base, &[]).await;
    app.create_user("victim@example.org", "correct horse battery")
        .await;
    *provider.identity.lock().await = Some(Identity {
        subject: "g-evil".into(),
        email: "victim@example.org".into(),
        verified: false,
        name: "Mallory".into(),
    });
    let res = sign_in_with(&app, "google").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(select_text(&res.text().await.unwrap(), "#form-error")[0].contains("did not confirm"));
    let identities: i64 = sqlx::query_scalar("SELECT count(*) FROM oauth_identities")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(identities, 0);
    assert_eq!(location(&app.get("/").await), "/login?next=%2F");
}

#[tokio::test]
async fn a_forged_or_replayed_state_is_refused() {
    let (provider, base) = start_provider().await;
    let app = app_with_providers(&base, &[]).await;
    *provider.identity.lock().await = Some(Identity {
        subject: "g-1".into(),
        email: "s@example.org".into(),
        verified: true,
        name: String::new(),
    });
    // A callback this browser never started.
    let res = app.get("/auth/oauth/google/callback?code=abc&state=forged").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(has(&res.text().await.unwrap(), "#token-error"));

    // A real flow whose callback is replayed.
    let res = app.get("/auth/oauth/google").await;
    let res = app.client.get(location(&res)).send().await.unwrap();
    let callback = location(&res);
    let tampered = callback.replace("state=", "state=x");
    assert_eq!(
        app.client.get(&tampered).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    // The pending state was consumed by the failed attempt; the genuine callback no longer works either.
    assert_eq!(
        app.client.get(&callback).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn providers_without_a_client_id_are_shown_disabled() {
    let app = TestApp::spawn().await;
    let page = app.get("/login").await.text().await.unwrap();
    assert_eq!(select_text(&page, ".oauth-buttons span.btn.disabled").len(), 2);
    assert!(!has(&page, ".oauth-buttons a.btn"));
    assert_eq!(
        app.get("/auth/oauth/google").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/auth/oauth/myspace").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn with_sign_up_closed_a_provider_signs_in_existing_accounts_only() {
    let (provider, base) = start_provider().await;
    let app = app_with_providers(&base, &["--signup", "closed"]).await;
    *provider.identity.lock().await = Some(Identity {
        subject: "g-new".into(),
        email: "stranger@example.org".into(),
        verified: true,
        name: "Stranger".into(),
    });
    let res = sign_in_with(&app, "google").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(select_text(&res.text().await.unwrap(), "#form-error")[0].contains("Sign-up is closed"));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users, 0);

    app.create_user("member@example.org", "correct horse battery")
        .await;
    *provider.identity.lock().await = Some(Identity {
        subject: "g-member".into(),
        email: "member@example.org".into(),
        verified: true,
        name: "Member".into(),
    });
    assert_eq!(location(&sign_in_with(&app, "google").await), "/settings");
}

#[tokio::test]
async fn with_sign_up_by_invitation_a_provider_creates_no_account_and_says_how_to_get_one() {
    let (provider, base) = start_provider().await;
    let app = app_with_providers(&base, &["--signup", "invite"]).await;
    *provider.identity.lock().await = Some(Identity {
        subject: "g-new".into(),
        email: "stranger@example.org".into(),
        verified: true,
        name: "Stranger".into(),
    });
    let res = sign_in_with(&app, "google").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(select_text(&res.text().await.unwrap(), "#form-error")[0].contains("by invitation"));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users, 0);
}
