//! Android wake-ups through a fake FCM on loopback: the service-account JWT is verified
//! with the account's public key, the access token is cached, and each dispatch to a
//! phone with a token sends one high-priority data message `type=tickle`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use ender_core::config::SmsConfig;
use ender_core::testing::test_db;
use ender_worker::fcm::{Fcm, FcmConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct FakeFcm {
    public_pem: Arc<String>,
    token_requests: Arc<Mutex<u32>>,
    pushes: Arc<Mutex<Vec<(String, Value)>>>,
}

async fn token(
    State(f): State<FakeFcm>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> impl IntoResponse {
    assert_eq!(form["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(f.public_pem.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // The audience is this server's token URL, checked below.
    validation.validate_aud = false;
    let claims = match jsonwebtoken::decode::<Value>(&form["assertion"], &key, &validation) {
        Ok(c) => c.claims,
        Err(_) => return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_grant"}))).into_response(),
    };
    assert_eq!(claims["iss"], "ender@test.iam.example");
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );
    assert!(claims["aud"].as_str().unwrap().ends_with("/token"));
    *f.token_requests.lock().unwrap() += 1;
    Json(json!({"access_token": "access-1", "expires_in": 3600, "token_type": "Bearer"})).into_response()
}

async fn send(
    State(f): State<FakeFcm>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer access-1") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    f.pushes.lock().unwrap().push((project, body));
    Json(json!({"name": "projects/p/messages/1"})).into_response()
}

fn openssl(args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn phones_with_a_token_are_woken_through_fcm() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("key.pem");
    let private = openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    std::fs::write(&key_path, &private).unwrap();
    let public = openssl(&["pkey", "-in", key_path.to_str().unwrap(), "-pubout"]);

    let fake = FakeFcm {
        public_pem: Arc::new(public),
        ..Default::default()
    };
    let router = Router::new()
        .route("/token", post(token))
        .route("/v1/projects/{project}/messages:send", post(send))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let account = json!({
        "type": "service_account", "project_id": "ender-test", "client_email": "ender@test.iam.example",
        "private_key": private, "token_uri": "https://oauth2.googleapis.com/token",
    });
    let fcm = Fcm::from_config(&FcmConfig {
        fcm_service_account: Some(account.to_string().into()),
        fcm_url: base.clone(),
        fcm_token_url: Some(format!("{base}/token")),
    })
    .unwrap()
    .unwrap();

    let db = test_db().await;
    let user_id = ender_core::testing::create_workspace(&db.pool, "fcm@example.org").await;
    let input = ender_core::device::DeviceInput::parse("Phone", "android", "").unwrap();
    let device = ender_core::device::create(&db.pool, user_id, &input, 10)
        .await
        .unwrap()
        .device;
    ender_core::device::set_fcm_token(&db.pool, device.id, "registration-1")
        .await
        .unwrap();
    sqlx::query("UPDATE devices SET per_minute_limit = 100")
        .execute(&db.pool)
        .await
        .unwrap();

    let shutdown = CancellationToken::new();
    let cfg = SmsConfig::default();
    tokio::spawn(ender_worker::dispatcher::run(
        db.pool.clone(),
        cfg.clone(),
        Some(Arc::new(fcm)),
        shutdown.clone(),
    ));
    let send_one = |n: u32| {
        let pool = db.pool.clone();
        let cfg = cfg.clone();
        async move {
            let req = ender_core::sms::send::SendRequest {
                recipients: vec![format!("+1555000{n:04}")],
                body: "Wake up".into(),
                ..Default::default()
            };
            ender_core::sms::send::send(&pool, &cfg, user_id, &req, None)
                .await
                .unwrap();
        }
    };
    send_one(1).await;
    wait_for(|| fake.pushes.lock().unwrap().len() == 1).await;
    send_one(2).await;
    wait_for(|| fake.pushes.lock().unwrap().len() == 2).await;
    shutdown.cancel();

    let pushes = fake.pushes.lock().unwrap().clone();
    let (project, body) = &pushes[0];
    assert_eq!(project, "ender-test");
    assert_eq!(
        body,
        &json!({"message": {"token": "registration-1", "data": {"type": "tickle", "count": "1"}, "android": {"priority": "high"}}})
    );
    assert_eq!(
        *fake.token_requests.lock().unwrap(),
        1,
        "the access token is cached"
    );
    let assigned: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'assigned'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(assigned, 2);
}

async fn wait_for(done: impl Fn() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out");
}
