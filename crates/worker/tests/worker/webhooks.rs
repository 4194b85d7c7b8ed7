//! Webhook delivery to a real receiver on loopback: signatures verified as receivers do,
//! retries with the same id and bytes, 410 disabling the endpoint, the SSRF guard on the
//! resolved address, and oversized events dropped.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Utc;
use ender_core::secret::Keyring;
use ender_core::testing::test_db;
use ender_core::webhook::endpoint::{self, EndpointInput};
use ender_core::webhook::{Event, Payload};
use ender_core::workspace::WorkspaceId;
use ender_worker::webhooks::{Deliverer, WebhookConfig};

/// Requests the receiver got: headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct Receiver {
    /// Statuses to answer, in order (then 200).
    script: Arc<Mutex<Vec<u16>>>,
    got: Received,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.got.lock().unwrap().push((headers, body.to_vec()));
    let mut script = r.script.lock().unwrap();
    let code = if script.is_empty() { 200 } else { script.remove(0) };
    StatusCode::from_u16(code).unwrap()
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = Router::new().route("/hook", post(receive)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

fn loopback() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.0/8".parse().unwrap()]
}

async fn setup(
    url: &str,
    allowed: &[ipnet::IpNet],
) -> (
    ender_core::testing::TestDb,
    Arc<Keyring>,
    WorkspaceId,
    uuid::Uuid,
    String,
) {
    let db = test_db().await;
    let keyring = Arc::new(Keyring::parse(&Keyring::generate_entry(1)).unwrap());
    let user = ender_core::testing::create_workspace(&db.pool, "hook@example.org").await;
    let input = EndpointInput::parse(url, &["sms_sent".to_owned()], "", None, false, allowed).unwrap();
    let (ep, secret) = endpoint::create(&db.pool, &keyring, user, &input, i64::MAX)
        .await
        .unwrap();
    (db, keyring, user, ep.id, secret)
}

fn config(retry: Vec<u64>) -> WebhookConfig {
    WebhookConfig {
        webhook_retry_secs: retry,
        webhook_timeout_secs: 2,
        webhook_concurrency: 4,
        ..WebhookConfig::default()
    }
}

async fn enqueue(db: &ender_core::testing::TestDb, user: WorkspaceId, body_text: &str) {
    let mut tx = db.pool.begin().await.unwrap();
    let payload = Payload::new(Event::SmsSent, "m-1", Utc::now())
        .with("to", "+15550001111")
        .with("status", "sent");
    let payload = if body_text.is_empty() {
        payload
    } else {
        payload.with("note", body_text)
    };
    endpoint::enqueue(&mut tx, user, Event::SmsSent, None, &payload, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn deliveries_are_signed_retried_with_the_same_id_and_logged() {
    let (r, url) = receiver().await;
    r.script.lock().unwrap().push(500);
    let (db, keyring, user, _, secret) = setup(&url, &loopback()).await;
    enqueue(&db, user, "").await;
    let d = Arc::new(Deliverer::new(db.pool.clone(), keyring, config(vec![0]), loopback(), None).unwrap());
    assert_eq!(d.pass().await.unwrap(), 1);
    assert_eq!(d.pass().await.unwrap(), 1, "retried at once (0 s wait)");
    assert_eq!(d.pass().await.unwrap(), 0, "delivered: nothing left");

    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0["webhook-id"], got[1].0["webhook-id"]);
    assert_eq!(got[0].1, got[1].1, "retries send the original bytes");
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    let mut h = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        h.insert(name, got[1].0[name].to_str().unwrap().parse().unwrap());
    }
    wh.verify(&got[1].1, &h).unwrap();
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&got[1].1);
    assert_eq!(
        got[1].0["x-webhook-signature"].to_str().unwrap(),
        hex::encode(mac.finalize().into_bytes())
    );
    assert!(got[1].0["user-agent"].to_str().unwrap().starts_with("Ender/"));

    let (status, attempts): (String, i32) = sqlx::query_as("SELECT status, attempts FROM webhook_deliveries")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!((status.as_str(), attempts), ("succeeded", 2));
    let logged: Vec<Option<i32>> =
        sqlx::query_scalar("SELECT response_status FROM webhook_attempts ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(logged, [Some(500), Some(200)]);
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_the_last_retry_fails() {
    let (r, url) = receiver().await;
    r.script.lock().unwrap().extend([410]);
    let (db, keyring, user, ep, _) = setup(&url, &loopback()).await;
    enqueue(&db, user, "").await;
    let d = Arc::new(
        Deliverer::new(
            db.pool.clone(),
            keyring.clone(),
            config(vec![0]),
            loopback(),
            None,
        )
        .unwrap(),
    );
    d.pass().await.unwrap();
    let active: bool = sqlx::query_scalar("SELECT active FROM webhook_endpoints")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(!active, "410 disables");

    sqlx::query("UPDATE webhook_endpoints SET active = true")
        .execute(&db.pool)
        .await
        .unwrap();
    r.script.lock().unwrap().extend([500, 502]);
    enqueue(&db, user, "").await;
    d.pass().await.unwrap();
    d.pass().await.unwrap();
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM webhook_deliveries ORDER BY created_at")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        statuses,
        ["failed", "failed"],
        "one retry configured, then failed"
    );
    let failures: i32 =
        sqlx::query_scalar("SELECT consecutive_failures FROM webhook_endpoints WHERE id = $1")
            .bind(ep)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    // The 410 counts too (the endpoint was switched back on behind Ender's back, so its
    // count was not reset).
    assert_eq!(failures, 3);
}

#[tokio::test]
async fn internal_addresses_are_refused_at_connect_time_and_big_events_dropped() {
    let (r, url) = receiver().await;
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/hook")
        .to_owned();
    // Allowed when the endpoint was created, the allowance is gone at delivery time.
    let (db, keyring, user, ep, _) = setup(&url, &loopback()).await;
    sqlx::query("UPDATE webhook_endpoints SET url = $2 WHERE id = $1")
        .bind(ep)
        .bind(format!("http://localhost:{port}/hook"))
        .execute(&db.pool)
        .await
        .unwrap();
    enqueue(&db, user, "").await;
    let d = Arc::new(Deliverer::new(db.pool.clone(), keyring, config(vec![]), Vec::new(), None).unwrap());
    d.pass().await.unwrap();
    let error: String = sqlx::query_scalar("SELECT error FROM webhook_attempts")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(error.contains("blocked"), "{error}");
    assert!(r.got.lock().unwrap().is_empty(), "nothing reached the receiver");
    // A name is checked on the addresses it resolves to, when connecting.
    let refused = ender_worker::webhooks::resolve_allowed("localhost", &[])
        .await
        .unwrap_err();
    assert!(refused.contains("blocked"), "{refused}");
    assert!(
        !ender_worker::webhooks::resolve_allowed("localhost", &loopback())
            .await
            .unwrap()
            .is_empty()
    );

    sqlx::query("DELETE FROM webhook_deliveries")
        .execute(&db.pool)
        .await
        .unwrap();
    enqueue(&db, user, &"x".repeat(300 * 1024)).await;
    d.pass().await.unwrap();
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM webhook_deliveries")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "dropped");
    assert!(error.contains("larger than"), "{error}");
}

/// Seconds until the (only) endpoint's breaker closes, rounded.
async fn pause(db: &ender_core::testing::TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT round(extract(epoch FROM breaker_open_until - now()))::int8 FROM webhook_endpoints",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_failing_endpoint_trips_its_breaker_and_recovers_through_one_probe() {
    let (r, url) = receiver().await;
    r.script.lock().unwrap().extend(std::iter::repeat_n(500, 9));
    let (db, keyring, user, ep, _) = setup(&url, &loopback()).await;
    for _ in 0..8 {
        enqueue(&db, user, "").await;
    }
    let d =
        Arc::new(Deliverer::new(db.pool.clone(), keyring, config(vec![0; 10]), loopback(), None).unwrap());
    assert_eq!(d.pass().await.unwrap(), 4, "the per-endpoint cap");
    assert_eq!(d.pass().await.unwrap(), 4);
    // Eight failures in a row (four of them in flight together when the count passed the
    // threshold) open the breaker for its first pause, 30 s.
    let first = pause(&db).await;
    assert!((25..=30).contains(&first), "first pause {first} s");
    let before: i64 = sqlx::query_scalar("SELECT sum(attempts) FROM webhook_deliveries")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(d.pass().await.unwrap(), 0, "nothing goes while it is open");
    let after: i64 = sqlx::query_scalar("SELECT sum(attempts) FROM webhook_deliveries")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(before, after, "waiting burns no attempts");

    // Half-open: one probe; it fails (the ninth 500), the breaker opens again.
    sqlx::query("UPDATE webhook_endpoints SET breaker_open_until = now() - interval '1 second'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(d.pass().await.unwrap(), 1);
    let second = pause(&db).await;
    assert!(
        (55..=60).contains(&second),
        "a failed probe doubles the pause: {second} s"
    );
    // The receiver is back: the next probe succeeds and closes the breaker.
    sqlx::query("UPDATE webhook_endpoints SET breaker_open_until = now() - interval '1 second'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(d.pass().await.unwrap(), 1);
    let (failures, breaker, opened): (i32, Option<chrono::DateTime<Utc>>, i32) = sqlx::query_as(
        "SELECT consecutive_failures, breaker_open_until, breaker_opened FROM webhook_endpoints WHERE id = $1",
    )
    .bind(ep)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((failures, breaker, opened), (0, None, 0));
    assert_eq!(d.pass().await.unwrap(), 4, "back to the full cap");
}

#[tokio::test]
async fn huge_silent_and_redirecting_receivers_are_handled() {
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::post as route_post;
    let app = Router::new()
        .route("/huge", route_post(|| async { "x".repeat(10 * 1024 * 1024) }))
        .route(
            "/silent",
            route_post(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/moved",
            route_post(|| async { Redirect::temporary("https://example.com/elsewhere").into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    for (path, expect_status, expect_error) in [
        ("/huge", Some(200), ""),
        ("/silent", None, "did not answer in time"),
        ("/moved", Some(307), "redirects are not followed"),
    ] {
        let (db, keyring, user, _, _) = setup(&format!("{base}{path}"), &loopback()).await;
        enqueue(&db, user, "").await;
        let d =
            Arc::new(Deliverer::new(db.pool.clone(), keyring, config(vec![60]), loopback(), None).unwrap());
        d.pass().await.unwrap();
        let (status, body, error): (Option<i32>, String, String) =
            sqlx::query_as("SELECT response_status, response_body, error FROM webhook_attempts")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(status, expect_status, "{path}");
        assert!(error.contains(expect_error), "{path}: {error}");
        assert!(body.len() <= 16 * 1024, "{path}: at most the cap is kept");
        let delivery: String = sqlx::query_scalar("SELECT status FROM webhook_deliveries")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(
            delivery,
            if path == "/huge" { "succeeded" } else { "pending" },
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_tenant_with_slow_receivers_cannot_hold_every_slot() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    // Tenant A's receiver takes 10 s to answer (counting requests and answers); tenant B's
    // answers at once and reports, when its delivery arrives, how many of A's had answered.
    #[derive(Clone, Default)]
    struct Slow {
        arrived: Arc<AtomicUsize>,
        answered: Arc<AtomicUsize>,
    }
    let slow = Slow::default();
    let app = Router::new()
        .route(
            "/slow",
            post(|State(s): State<Slow>| async move {
                s.arrived.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(10)).await;
                s.answered.fetch_add(1, Ordering::SeqCst);
                "late"
            }),
        )
        .with_state(slow.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/slow", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (fast_tx, mut fast_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let answered = slow.answered.clone();
    let app = Router::new().route(
        "/fast",
        post(move || {
            let _ = fast_tx.send(answered.load(Ordering::SeqCst));
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fast_url = format!("http://{}/fast", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (db, keyring, a, _, _) = setup(&slow_url, &loopback()).await;
    for _ in 1..20 {
        let input =
            EndpointInput::parse(&slow_url, &["sms_sent".to_owned()], "", None, false, &loopback()).unwrap();
        endpoint::create(&db.pool, &keyring, a, &input, i64::MAX)
            .await
            .unwrap();
    }
    let b = ender_core::testing::create_workspace(&db.pool, "fast@example.org").await;
    let input =
        EndpointInput::parse(&fast_url, &["sms_sent".to_owned()], "", None, false, &loopback()).unwrap();
    endpoint::create(&db.pool, &keyring, b, &input, i64::MAX)
        .await
        .unwrap();

    // Four slots in this worker, four per endpoint: without a per-user share, A's twenty
    // deliveries would take all four for 10 s.
    let cfg = WebhookConfig {
        webhook_retry_secs: vec![60],
        webhook_timeout_secs: 15,
        webhook_concurrency: 4,
        webhook_workspace_concurrency: 2,
        webhook_max_in_flight: 4,
        ..WebhookConfig::default()
    };
    let d = Arc::new(Deliverer::new(db.pool.clone(), keyring, cfg, loopback(), None).unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let engine = tokio::spawn(d.run(shutdown.clone()));
    enqueue(&db, a, "").await;
    while slow.arrived.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A now holds its share; B's event comes after.
    enqueue(&db, b, "").await;
    let answered_before = tokio::time::timeout(Duration::from_secs(60), fast_rx.recv())
        .await
        .expect("B's delivery arrives")
        .unwrap();
    assert_eq!(
        answered_before, 0,
        "B's delivery went while every one of A's was still hanging"
    );
    assert_eq!(
        slow.arrived.load(Ordering::SeqCst),
        2,
        "A never had more than its share in flight"
    );
    engine.abort();
}
