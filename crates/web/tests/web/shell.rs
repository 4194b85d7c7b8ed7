//! The frame around every feature: error pages and envelopes, probes, headers, limits,
//! placeholders for later sections, static files, and surviving a database outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::helpers::*;

#[tokio::test]
async fn unknown_pages_get_the_404_page_and_unknown_api_paths_the_envelope() {
    let app = TestApp::spawn().await;
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        select_text(&res.text().await.unwrap(), ".error-page .code")[0],
        "404"
    );

    let res = app.get("/api/no/such/thing").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"data": {}, "message": "Not found.", "status": 404})
    );

    let res = app
        .client
        .post(app.url("/api/nothing"))
        .header("x-api-key", "vk_x")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["status"], 404);

    // A state-changing method without the CSRF token is refused before routing...
    let res = app.client.delete(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // ...and with it, a method the page does not take is 405.
    let token = app.csrf("/login").await;
    let res = app
        .client
        .delete(app.url("/login"))
        .header("x-csrf-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/health").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"message": "API is healthy.", "code": 200, "data": {}})
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let spec = app.get("/api/openapi.yaml").await.text().await.unwrap();
    assert!(
        spec.starts_with("openapi: 3.1") && spec.contains("/api/sms/send"),
        "{}",
        &spec[..80.min(spec.len())]
    );
    // Probes do not create sessions.
    assert!(app.get("/healthz").await.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/login", "/no/such/page", "/api/health", "/static/app.css"] {
        let res = app.get(path).await;
        let h = res.headers();
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(
            h.get("referrer-policy").unwrap(),
            "strict-origin-when-cross-origin"
        );
        assert!(h.get("x-request-id").is_some());
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS over plain HTTP"
        );
    }
    let cookie = app
        .get("/login")
        .await
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"));
}

#[tokio::test]
async fn behind_tls_cookies_are_secure_and_hsts_is_sent() {
    let app = TestApp::spawn_with(Options {
        extra_args: vec!["--public-url".into(), "https://sms.example.org".into()],
        ..Default::default()
    })
    .await;
    let res = app.get("/login").await;
    assert!(res.headers().get("strict-transport-security").is_some());
    assert!(
        res.headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Secure")
    );
}

#[tokio::test]
async fn oversized_forms_are_refused_with_413() {
    let app = TestApp::spawn().await;
    let token = app.csrf("/login").await;
    let big = "x".repeat(2 * 1024 * 1024);
    let res = app
        .client
        .post(app.url("/login"))
        .header("x-csrf-token", token)
        .form(&[("email", big.as_str()), ("password", "p")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn malformed_forms_get_400_not_a_crash() {
    let app = TestApp::spawn().await;
    let token = app.csrf("/login").await;
    let res = app
        .client
        .post(app.url("/login"))
        .header("x-csrf-token", token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=%ZZ&password")
        .send()
        .await
        .unwrap();
    assert!(res.status() == StatusCode::BAD_REQUEST || res.status() == StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn with_billing_off_there_is_no_billing_page_link_or_route() {
    let app = TestApp::spawn().await;
    app.signed_in_user("nav@example.org", "correct horse battery")
        .await;
    let home = app.get("/").await.text().await.unwrap();
    assert!(select_attr(&home, ".sidenav a[href='/billing']", "href").is_none());
    assert!(select_text(&home, "#usage").is_empty(), "no usage card");
    for path in [
        "/billing",
        "/billing/receipts/00000000-0000-0000-0000-000000000000",
    ] {
        assert_eq!(app.get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for path in ["/api/plans", "/api/plans/balance"] {
        assert_eq!(app.get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let quota: serde_json::Value = app.get("/api/plans/quota").await.json().await.unwrap();
    assert_eq!(quota["plan"], "Self-hosted");
}

#[tokio::test]
async fn static_files_are_served_from_the_binary() {
    let app = TestApp::spawn().await;
    for (path, mime) in [
        ("/static/app.css", "text/css"),
        ("/static/app.js", "text/javascript"),
        ("/static/vendor/htmx.min.js", "text/javascript"),
        ("/static/vendor/htmx-ext-sse.js", "text/javascript"),
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with(mime));
    }
    assert_eq!(
        app.get("/static/../Cargo.toml").await.status(),
        StatusCode::NOT_FOUND
    );
}

/// A TCP proxy in front of the test database that can be cut and restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    async fn start(target: PgConnectOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                conns2.lock().await.spawn(async move {
                    match target.get_socket() {
                        Some(dir) => {
                            let path = dir.join(format!(".s.PGSQL.{}", target.get_port()));
                            let Ok(mut out) = tokio::net::UnixStream::connect(path).await else {
                                return;
                            };
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        }
                        None => {
                            let addr = format!("{}:{}", target.get_host(), target.get_port());
                            let Ok(mut out) = tokio::net::TcpStream::connect(addr).await else {
                                return;
                            };
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        }
                    }
                });
            }
        });
        Self { port, up, conns }
    }

    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.conns.lock().await.abort_all();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_database_outage_gives_503s_and_recovers_without_a_restart() {
    let db = ender_core::testing::test_db().await;
    let target = db.connect_options();
    let proxy = Proxy::start(target.clone()).await;
    let mut through = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(proxy.port)
        .username(target.get_username())
        .ssl_mode(sqlx::postgres::PgSslMode::Disable);
    if let Some(name) = target.get_database() {
        through = through.database(name);
    }
    if let Ok(pw) = std::env::var("ENDER_TEST_DATABASE_PASSWORD") {
        through = through.password(&pw);
    }
    let pool = ender_core::db::pool_options(4)
        .connect_with(through)
        .await
        .unwrap();
    let app = TestApp::spawn_with(Options {
        pool: Some(pool),
        ..Default::default()
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/login").await.status(), StatusCode::OK);

    proxy.cut().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let res = app.new_client().get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        select_text(&res.text().await.unwrap(), ".error-page .code")[0],
        "503"
    );
    assert_eq!(app.get("/login").await.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The liveness probe does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    proxy.restore();
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/login").await.status(), StatusCode::OK);
    drop(db);
}
