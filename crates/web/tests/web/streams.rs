//! Limits on long-lived and slow connections: open streams per user and per device.

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
