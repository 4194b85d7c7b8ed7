//! Limits on long-lived and slow connections: open streams per user and per device, the
//! header-read and request timeouts.

use std::time::Duration;

use ender_core::config::{SmsConfig, TenantLimits};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::simulator::Sim;

const PW: &str = "correct horse battery";

fn limits(limits: TenantLimits) -> Options {
    Options {
        sms: Some(SmsConfig {
            limits,
            ..SmsConfig::default()
        }),
        ..Default::default()
    }
}

/// Opens `path` with the device's key and returns the answer, its stream unread.
async fn device_stream(sim: &Sim, path: &str) -> reqwest::Response {
    sim.http
        .get(format!("{}{path}", sim.base))
        .header("x-api-key", &sim.key)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap()
}

/// Retries `open` until it is let in: a closed stream gives its slot back once the server
/// notices the connection is gone.
async fn admitted<F, Fut>(open: F) -> reqwest::Response
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    for _ in 0..100 {
        let res = open().await;
        if res.status() == StatusCode::OK {
            return res;
        }
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the stream was never let in again");
}

#[tokio::test]
async fn a_user_holds_at_most_the_configured_number_of_live_streams() {
    let app = TestApp::spawn_with(limits(TenantLimits {
        max_streams_per_user: 2,
        ..TenantLimits::default()
    }))
    .await;
    app.signed_in_user("tabs@example.org", PW).await;
    let first = app.get("/events").await;
    let second = app.get("/events").await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );

    let refused = app.get("/events").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let text = refused.text().await.unwrap();
    assert!(text.contains("at most 2 per user"), "{text}");

    // Another user has their own count.
    let other = app.new_client();
    app.create_user("other@example.org", PW).await;
    post_form_with(
        &other,
        &app,
        "/login",
        "/login",
        &[("email", "other@example.org"), ("password", PW)],
    )
    .await;
    let theirs = other.get(app.url("/events")).send().await.unwrap();
    assert_eq!(theirs.status(), StatusCode::OK);

    drop(first);
    let again = admitted(|| app.get("/events")).await;
    assert_eq!(app.get("/events").await.status(), StatusCode::TOO_MANY_REQUESTS);
    drop((second, again, theirs));
}

#[tokio::test]
async fn a_device_holds_at_most_the_configured_number_of_event_streams() {
    let app = TestApp::spawn_with(limits(TenantLimits {
        max_streams_per_device: 2,
        ..TenantLimits::default()
    }))
    .await;
    app.create_user("modem@example.org", PW).await;
    let modem = Sim::register(&app, "modem@example.org", "modem", "Dongle").await;
    let spare = Sim::register(&app, "modem@example.org", "modem", "Spare").await;
    let ender = device_stream(&modem, "/api/device/events").await;
    let pocketbase = device_stream(&modem, "/api/realtime").await;
    assert_eq!(
        (ender.status(), pocketbase.status()),
        (StatusCode::OK, StatusCode::OK)
    );

    for path in ["/api/device/events", "/api/realtime"] {
        let refused = device_stream(&modem, path).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["status"], 429);
        assert_eq!(body["data"], serde_json::json!({}));
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("at most 2"), "{message}");
    }
    let theirs = device_stream(&spare, "/api/device/events").await;
    assert_eq!(theirs.status(), StatusCode::OK, "each device has its own count");

    drop(pocketbase);
    let again = admitted(|| device_stream(&modem, "/api/realtime")).await;
    assert_eq!(
        device_stream(&modem, "/api/device/events").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    drop((ender, again, theirs));
}

fn timeouts(header_secs: u64, request_secs: u64) -> Options {
    Options {
        extra_args: vec![
            "--header-read-timeout-secs".into(),
            header_secs.to_string(),
            "--request-timeout-secs".into(),
            request_secs.to_string(),
        ],
        ..Default::default()
    }
}

/// Writes `head` and then nothing more; what the server sends back until it closes, or
/// `None` if it still holds the connection after `wait`.
async fn stall(app: &TestApp, head: &str, wait: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    match tokio::time::timeout(wait, conn.read_to_end(&mut answer)).await {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected() {
    let app = TestApp::spawn_with(timeouts(1, 30)).await;
    let answer = stall(
        &app,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_secs(10),
    )
    .await;
    assert!(answer.is_some(), "the connection is still open after 10 s");
    // A whole request on a fresh connection is served as usual.
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_is_answered_408_in_the_callers_format() {
    let app = TestApp::spawn_with(timeouts(30, 1)).await;
    let key = crate::sms::Caller::new(&app, "slow-api@example.org")
        .await
        .key
        .clone();
    let api = format!(
        "POST /api/sms/send HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"to\":"
    );
    let answer = stall(&app, &api, Duration::from_secs(10))
        .await
        .expect("answered");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["message"], "The request took too long. Try again.");
    assert_eq!(body["status"], 408);

    // A page: the sign-in form with a real session and token, its body stalled.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = anonymous.get(app.url("/login")).send().await.unwrap();
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let token = select_attr(&login.text().await.unwrap(), "meta[name=csrf-token]", "content").unwrap();
    let page = format!(
        "POST /login HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-CSRF-Token: {token}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\nemail="
    );
    let answer = stall(&app, &page, Duration::from_secs(10))
        .await
        .expect("answered");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("Request timed out"), "{answer}");

    // An event stream outlives the request timeout once it has started.
    app.create_user("slow-stream@example.org", PW).await;
    let sim = Sim::register(&app, "slow-stream@example.org", "modem", "Dongle").await;
    let mut stream = device_stream(&sim, "/api/device/events").await;
    assert_eq!(stream.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let more = tokio::time::timeout(Duration::from_secs(1), stream.chunk()).await;
    assert!(
        !matches!(more, Ok(Ok(None)) | Ok(Err(_))),
        "the stream ended: {more:?}"
    );
}

#[tokio::test]
async fn a_device_reporting_more_incoming_sms_than_its_limit_is_told_to_retry() {
    let app = TestApp::spawn_with(limits(TenantLimits {
        max_incoming_per_minute: 3,
        ..TenantLimits::default()
    }))
    .await;
    app.create_user("chatty@example.org", PW).await;
    let phone = Sim::register(&app, "chatty@example.org", "android", "Phone").await;
    let other = Sim::register(&app, "chatty@example.org", "android", "Other").await;
    let report = |sim: &Sim, i: u32| {
        let body = serde_json::json!({"from_number": format!("+1555000{i:04}"), "body": format!("Hi {i}")});
        sim.http
            .post(format!("{}/api/sms/incoming", sim.base))
            .header("x-api-key", &sim.key)
            .json(&body)
            .send()
    };
    // A minute boundary between the first reports would reset the count: start early in one.
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 50 {
        tokio::time::sleep(Duration::from_secs(61 - second as u64)).await;
    }
    for i in 0..3 {
        assert_eq!(report(&phone, i).await.unwrap().status(), StatusCode::OK);
    }
    let res = report(&phone, 3).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "60");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Too many incoming messages from this device: at most 3 per minute (ENDER_MAX_INCOMING_PER_MINUTE). Retry later."
    );
    // Nothing of the refused one was stored; another device has its own allowance.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE direction = 'incoming'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, 3);
    assert_eq!(report(&other, 9).await.unwrap().status(), StatusCode::OK);
}
