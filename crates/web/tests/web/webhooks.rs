//! Webhook endpoints through the API against a receiver on loopback: create (secret once),
//! a signed test event, retry by log id, secret rotation, bad input and other users.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sms::Caller;

type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

async fn receiver() -> (Received, String) {
    let got: Received = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(got): State<Received>, headers: HeaderMap, body: Bytes| async move {
                    got.lock().unwrap().push((headers, body.to_vec()));
                    "ok"
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (got, url)
}

#[tokio::test]
async fn endpoints_are_managed_tested_and_retried_through_the_api() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "wh@example.org").await;
    let (got, url) = receiver().await;

    for (body, message) in [
        (
            json!({"url": "ftp://x.example/h", "events": ["sms_sent"]}),
            "Only http:// and https:// URLs can receive webhooks.",
        ),
        (
            json!({"url": "https://x.example/h", "events": ["sms_everything"]}),
            "Unknown event: sms_everything.",
        ),
        (
            json!({"url": "https://x.example/h", "events": []}),
            "Choose at least one event.",
        ),
        (
            json!({"url": "http://10.0.0.7/h", "events": ["sms_sent"]}),
            "This is a private or local address. An administrator can allow it (ENDER_WEBHOOK_ALLOW).",
        ),
    ] {
        let (status, res) = c.post("/api/webhooks", body).await;
        assert_eq!(
            (status, res["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some(message))
        );
    }

    let (status, created) = c
        .post(
            "/api/webhooks",
            json!({"url": url, "events": ["sms_sent", "sms_delivered"], "description": "CRM"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = c.get("/api/webhooks").await;
    assert!(
        listed["items"][0].get("secret").is_none(),
        "the secret is not listed"
    );
    let (_, shown) = c.get(&format!("/api/webhooks/{id}/secret")).await;
    assert_eq!(shown["secret"], secret.as_str());

    let (status, result) = c.post("/api/webhooks/test", json!({"webhook_id": id})).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(
        (
            result["delivery_status"].as_str(),
            result["response_status"].as_i64()
        ),
        (Some("succeeded"), Some(200))
    );
    let (headers, body) = got.lock().unwrap()[0].clone();
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["event"], "test");
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    let mut h = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        h.insert(name, headers[name].to_str().unwrap().parse().unwrap());
    }
    wh.verify(&body, &h).unwrap();

    let (status, again) = c
        .post("/api/webhooks/retry", json!({"log_id": result["log_id"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_ne!(again["log_id"], result["log_id"]);
    let second = got.lock().unwrap()[1].clone();
    assert_eq!(second.1, body, "a retry sends the same bytes");
    assert_eq!(second.0["webhook-id"], headers["webhook-id"]);

    // Rotation: both secrets sign during the overlap.
    let (_, rotated) = c
        .post(
            &format!("/api/webhooks/{id}/rotate-secret"),
            json!({"overlap_hours": 1}),
        )
        .await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    c.post("/api/webhooks/test", json!({"webhook_id": id})).await;
    let third = got.lock().unwrap()[2].clone();
    let mut h = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        h.insert(name, third.0[name].to_str().unwrap().parse().unwrap());
    }
    for s in [&secret, &new_secret] {
        standardwebhooks::Webhook::new(s)
            .unwrap()
            .verify(&third.1, &h)
            .unwrap();
    }

    // Updating and disabling; a test to a disabled endpoint still goes and says so.
    let (status, updated) = c
        .http
        .put(app.url(&format!("/api/webhooks/{id}")))
        .header("x-api-key", &c.key)
        .json(&json!({"url": url, "events": ["sms_failed"], "active": false}))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(
        (updated["active"].as_bool(), updated["events"][0].as_str()),
        (Some(false), Some("sms_failed"))
    );
    let (_, disabled_test) = c.post("/api/webhooks/test", json!({"webhook_id": id})).await;
    assert_eq!(disabled_test["endpoint_active"], false);

    // Another user sees nothing of it.
    let other = Caller::new(&app, "other-wh@example.org").await;
    assert_eq!(
        other.get(&format!("/api/webhooks/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        other.get(&format!("/api/webhooks/{id}/secret")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        other
            .post("/api/webhooks/test", json!({"webhook_id": id}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        other
            .post("/api/webhooks/retry", json!({"log_id": result["log_id"]}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let res = other
        .http
        .delete(app.url(&format!("/api/webhooks/{id}")))
        .header("x-api-key", &other.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = c
        .http
        .delete(app.url(&format!("/api/webhooks/{id}")))
        .header("x-api-key", &c.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        c.get(&format!("/api/webhooks/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn devices_going_online_and_offline_are_announced() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "presence@example.org").await;
    let (_, url) = receiver().await;
    let (status, _) = c
        .post(
            "/api/webhooks",
            json!({"url": url, "events": ["device_online", "device_offline"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let modem = crate::simulator::Sim::register(&app, "presence@example.org", "modem", "Dongle").await;
    let rx = modem.stream("/api/device/events").await;
    let wait_for = |n: i64| {
        let pool = app.pool().clone();
        async move {
            for _ in 0..50 {
                let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                if count >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("expected {n} deliveries");
        }
    };
    wait_for(1).await;
    // A second stream (a reconnect) is not news.
    let again = modem.stream("/api/device/events").await;
    drop(rx);
    drop(again);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Closing the stream is not the end: the device counts as reachable for 90 s after its
    // last contact (a quick reconnect announces nothing). Once that has passed, the sweep
    // announces it offline, once.
    let window = ender_core::config::SmsConfig::default().device_seen_window_secs;
    assert_eq!(
        ender_core::device::announce_presence(app.pool(), window, None)
            .await
            .unwrap(),
        0
    );
    sqlx::query("UPDATE devices SET last_seen_at = now() - interval '91 seconds', stream_until = NULL")
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(
        ender_core::device::announce_presence(app.pool(), window, None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ender_core::device::announce_presence(app.pool(), window, None)
            .await
            .unwrap(),
        0
    );
    wait_for(2).await;
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT event, body FROM webhook_deliveries ORDER BY created_at")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(
        (rows[0].0.as_str(), rows[1].0.as_str()),
        ("device_online", "device_offline")
    );
    assert_eq!(rows.len(), 2);
    let body: Value = serde_json::from_slice(&rows[0].1).unwrap();
    assert_eq!(
        (body["device_id"].as_str(), body["device_name"].as_str()),
        (Some(modem.id.as_str()), Some("Dongle"))
    );

    // A phone reached through FCM: online once it registers its token, offline when it has
    // not been seen for the seen window.
    let phone = crate::simulator::Sim::register(&app, "presence@example.org", "android", "Phone").await;
    sqlx::query("UPDATE devices SET fcm_token = 'tok', last_seen_at = now() WHERE id = $1::uuid")
        .bind(&phone.id)
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(
        ender_core::device::announce_presence(app.pool(), window, None)
            .await
            .unwrap(),
        1
    );
    sqlx::query("UPDATE devices SET last_seen_at = now() - make_interval(secs => $2) WHERE id = $1::uuid")
        .bind(&phone.id)
        .bind((window + 1) as f64)
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(
        ender_core::device::announce_presence(app.pool(), window, None)
            .await
            .unwrap(),
        1
    );
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event FROM webhook_deliveries WHERE convert_from(body, 'UTF8')::jsonb ->> 'device_id' = $1 ORDER BY created_at",
    )
    .bind(&phone.id)
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(events, ["device_online", "device_offline"]);
}
