//! Webhook endpoints through the API against a receiver on loopback: create (secret once),
//! a signed test event, retry by log id, secret rotation, health, the delivery log, replay
//! and re-enable, bad input and other users.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;
use crate::sms::Caller;

pub type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

pub async fn receiver() -> (Received, String) {
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

/// Writes a delivery of the endpoint with the given status, created (and last changed)
/// `minutes_ago`.
pub async fn insert_delivery(app: &TestApp, endpoint: &str, status: &str, minutes_ago: i64) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, workspace_id, event, message_id, body, status, last_error,
                                         created_at, updated_at)
         SELECT $1, id, workspace_id, 'sms_sent', 'm-1', convert_to('{\"event\":\"sms_sent\"}', 'UTF8'), $3,
                CASE WHEN $3 = 'failed' THEN 'HTTP 500' ELSE '' END, now() - make_interval(mins => $4::int),
                now() - make_interval(mins => $4::int)
         FROM webhook_endpoints WHERE id = $2::uuid",
    )
    .bind(id)
    .bind(endpoint)
    .bind(status)
    .bind(minutes_ago as i32)
    .execute(app.pool())
    .await
    .unwrap();
    id
}

pub async fn status_of(app: &TestApp, delivery: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM webhook_deliveries WHERE id = $1")
        .bind(delivery)
        .fetch_one(app.pool())
        .await
        .unwrap()
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
    // Turned on again by an edit: its failure streak and breaker start afresh, like after
    // "re-enable and replay" or a success.
    sqlx::query(
        "UPDATE webhook_endpoints SET consecutive_failures = 9, failing_since = now(),
                breaker_open_until = now() + interval '4 minutes', breaker_opened = 3
         WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(app.pool())
    .await
    .unwrap();
    let status = c
        .http
        .put(app.url(&format!("/api/webhooks/{id}")))
        .header("x-api-key", &c.key)
        .json(&json!({"url": url, "events": ["sms_failed"], "active": true}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let health: (i32, bool, bool, i32) = sqlx::query_as(
        "SELECT consecutive_failures, failing_since IS NULL, breaker_open_until IS NULL, breaker_opened
         FROM webhook_endpoints WHERE id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(health, (0, true, true, 0));

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
    let rows = ender_core::testing::webhook_payloads(app.pool()).await;
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
    let events: Vec<String> = ender_core::testing::webhook_payloads(app.pool())
        .await
        .into_iter()
        .filter(|(_, body)| {
            serde_json::from_slice::<Value>(body).unwrap()["device_id"].as_str() == Some(phone.id.as_str())
        })
        .map(|(event, _)| event)
        .collect();
    assert_eq!(events, ["device_online", "device_offline"]);
}

/// Creates an endpoint through the API; returns its id.
async fn create_endpoint(c: &Caller, url: &str) -> String {
    let (status, created) = c
        .post("/api/webhooks", json!({"url": url, "events": ["sms_sent"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// A POST with a raw body and the caller's key.
async fn post_raw(
    app: &TestApp,
    key: Option<&str>,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn health_the_delivery_log_replay_and_re_enable_through_the_api() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "log@example.org").await;
    let (_, url) = receiver().await;
    let (_, created) = c
        .post("/api/webhooks", json!({"url": url, "events": ["sms_sent"]}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["health"],
        json!({
            "success_rate_24h": null, "succeeded_24h": 0, "failed_24h": 0, "breaker": "closed",
            "consecutive_failures": 0, "failing_since": "", "last_failure_at": "", "last_failure": "",
            "disabled_at": "",
        })
    );
    let (_, result) = c.post("/api/webhooks/test", json!({"webhook_id": id})).await;
    let (_, shown) = c.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(
        (
            shown["health"]["success_rate_24h"].as_f64(),
            shown["health"]["succeeded_24h"].as_i64(),
            shown["health"]["failed_24h"].as_i64()
        ),
        (Some(1.0), Some(1), Some(0))
    );
    let (_, listed) = c.get("/api/webhooks").await;
    assert_eq!(listed["items"][0]["health"], shown["health"]);

    let failed = insert_delivery(&app, &id, "failed", 60).await;
    let held = insert_delivery(&app, &id, "held", 10).await;
    let (status, log) = c.get(&format!("/api/webhooks/{id}/deliveries")).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(log["next_before"], "");
    let test = &items[0];
    assert_eq!(
        (
            test["event"].as_str(),
            test["status"].as_str(),
            test["attempts"].as_i64(),
            test["last_status"].as_i64(),
            test["next_attempt_at"].as_str()
        ),
        (Some("test"), Some("succeeded"), Some(1), Some(200), Some(""))
    );
    assert!(test["delivered_at"].as_str().unwrap().ends_with('Z'));
    assert!(test["created"].as_str().unwrap().ends_with('Z'));
    assert!(test["message_id"].as_str().unwrap().starts_with("test_"));
    assert_eq!(items[1]["id"], held.to_string());
    assert_eq!(
        (
            items[2]["status"].as_str(),
            items[2]["last_status"].is_null(),
            items[2]["last_error"].as_str()
        ),
        (Some("failed"), true, Some("HTTP 500"))
    );

    // Keyset pages: `next_before` continues where the page ended.
    let (_, first) = c.get(&format!("/api/webhooks/{id}/deliveries?limit=2")).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_before"], held.to_string());
    let (_, rest) = c
        .get(&format!("/api/webhooks/{id}/deliveries?limit=2&before={held}"))
        .await;
    assert_eq!(rest["items"][0]["id"], failed.to_string());
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_before"], "");
    let (_, only_failed) = c
        .get(&format!("/api/webhooks/{id}/deliveries?status=failed"))
        .await;
    assert_eq!(only_failed["items"].as_array().unwrap().len(), 1);

    // One delivery with its payload and attempts.
    let test_id = test["id"].as_str().unwrap();
    let (status, one) = c.get(&format!("/api/webhooks/{id}/deliveries/{test_id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    let payload: Value = serde_json::from_str(one["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["event"], "test");
    let attempt = &one["attempts"][0];
    assert_eq!(attempt["log_id"], result["log_id"]);
    assert_eq!(
        (
            attempt["response_status"].as_i64(),
            attempt["response_body"].as_str(),
            attempt["error_message"].as_str()
        ),
        (Some(200), Some("ok"), Some(""))
    );
    assert!(
        attempt["request_headers"]["webhook-id"]
            .as_str()
            .unwrap()
            .starts_with("msg_")
    );
    assert!(attempt["duration_ms"].as_i64().unwrap() >= 0);
    assert!(attempt["created"].as_str().unwrap().ends_with('Z'));
    let (_, never) = c.get(&format!("/api/webhooks/{id}/deliveries/{held}")).await;
    assert_eq!(never["attempts"], json!([]));

    // Replay failed since a time.
    for (body, why) in [
        ("{", "bad JSON"),
        ("{}", "no since"),
        (r#"{"since": "yesterday"}"#, "not RFC 3339"),
        (r#"{"since": "2999-01-01T00:00:00Z"}"#, "in the future"),
        (r#"{"since": 5}"#, "not a string"),
    ] {
        let (status, res) = post_raw(&app, Some(&c.key), &format!("/api/webhooks/{id}/replay"), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {res}");
        assert_eq!(res["status"], 400, "{why}");
    }
    let (_, res) = post_raw(&app, Some(&c.key), &format!("/api/webhooks/{id}/replay"), "{}").await;
    assert!(res["message"].as_str().unwrap().contains("since"), "{res}");
    let since = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let (status, replayed) = c
        .post(&format!("/api/webhooks/{id}/replay"), json!({"since": since}))
        .await;
    assert_eq!((status, replayed), (StatusCode::OK, json!({"replayed": 1})));
    assert_eq!(status_of(&app, failed).await, "pending");
    assert_eq!(status_of(&app, held).await, "held");
    let (_, pending) = c
        .get(&format!("/api/webhooks/{id}/deliveries?status=pending"))
        .await;
    assert!(
        pending["items"][0]["next_attempt_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // Ender disabled it: health says so; re-enable sends what was held.
    sqlx::query(
        "UPDATE webhook_endpoints SET active = false, disabled_at = now() - interval '1 hour',
                disabled_reason = 'It answered 410 Gone.', failing_since = now() - interval '2 hours',
                consecutive_failures = 6, last_failure_at = now() - interval '1 hour', last_failure = 'HTTP 410',
                breaker_open_until = now() + interval '5 minutes'
         WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(app.pool())
    .await
    .unwrap();
    let (_, shown) = c.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(
        (
            shown["active"].as_bool(),
            shown["health"]["breaker"].as_str(),
            shown["health"]["consecutive_failures"].as_i64(),
            shown["health"]["last_failure"].as_str()
        ),
        (Some(false), Some("open"), Some(6), Some("HTTP 410"))
    );
    for key in ["failing_since", "last_failure_at", "disabled_at"] {
        assert!(shown["health"][key].as_str().unwrap().ends_with('Z'), "{key}");
    }
    let (status, enabled) = post_raw(&app, Some(&c.key), &format!("/api/webhooks/{id}/enable"), "").await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(
        (
            enabled["replayed"].as_u64(),
            enabled["active"].as_bool(),
            enabled["disabled_reason"].as_str(),
            enabled["health"]["breaker"].as_str(),
            enabled["health"]["disabled_at"].as_str()
        ),
        (Some(1), Some(true), Some(""), Some("closed"), Some(""))
    );
    assert_eq!(enabled["id"], id.as_str());
    assert_eq!(status_of(&app, held).await, "pending");
    let (status, again) = c.post(&format!("/api/webhooks/{id}/enable"), json!({})).await;
    assert_eq!((status, again["replayed"].as_u64()), (StatusCode::OK, Some(0)));
    let (status, _) = post_raw(&app, Some(&c.key), &format!("/api/webhooks/{id}/enable"), "{nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_delivery_log_api_refuses_bad_input_strangers_and_oversized_bodies() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "owner-log@example.org").await;
    let (_, url) = receiver().await;
    let id = create_endpoint(&c, &url).await;
    let delivery = insert_delivery(&app, &id, "failed", 5).await;

    for (query, message) in [
        ("limit=0", "limit must be between 1 and 100."),
        ("limit=101", "limit must be between 1 and 100."),
        ("limit=ten", "limit must be between 1 and 100."),
        (
            "status=lost",
            "Unknown status: lost. Use one of pending, delivering, succeeded, failed, dropped, held.",
        ),
        (
            "before=yesterday",
            "Invalid before: use the next_before of the previous page.",
        ),
    ] {
        let (status, res) = c.get(&format!("/api/webhooks/{id}/deliveries?{query}")).await;
        assert_eq!(
            (status, res["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some(message)),
            "{query}"
        );
    }
    let (status, res) = c
        .get(&format!("/api/webhooks/{id}/deliveries?limit=100&status=held"))
        .await;
    assert_eq!(
        (status, res["items"].as_array().unwrap().len()),
        (StatusCode::OK, 0)
    );

    // Over 1 MiB: the 413 envelope.
    let huge = format!(r#"{{"since": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    for action in ["replay", "enable"] {
        let (status, res) = post_raw(
            &app,
            Some(&c.key),
            &format!("/api/webhooks/{id}/{action}"),
            huge.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{action}");
        assert_eq!(
            res,
            json!({"data": {}, "message": "Request body too large: at most 1048576 bytes.", "status": 413}),
            "{action}"
        );
    }

    // Without a key, or with a wrong one: 401.
    let since = json!({"since": chrono::Utc::now().to_rfc3339()}).to_string();
    for key in [None, Some("vk_not_a_real_key")] {
        for path in [
            format!("/api/webhooks/{id}/deliveries"),
            format!("/api/webhooks/{id}/deliveries/{delivery}"),
        ] {
            let mut req = reqwest::Client::new().get(app.url(&path));
            if let Some(key) = key {
                req = req.header("x-api-key", key);
            }
            assert_eq!(
                req.send().await.unwrap().status(),
                StatusCode::UNAUTHORIZED,
                "{path}"
            );
        }
        for action in ["replay", "enable"] {
            let (status, res) =
                post_raw(&app, key, &format!("/api/webhooks/{id}/{action}"), since.clone()).await;
            assert_eq!(
                (status, res["message"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("Authentication required.")),
                "{action}"
            );
        }
    }

    // Another user: not found, whatever the route; and nothing changes.
    let other = Caller::new(&app, "other-log@example.org").await;
    let theirs = create_endpoint(&other, &url).await;
    for path in [
        format!("/api/webhooks/{id}/deliveries"),
        format!("/api/webhooks/{id}/deliveries/{delivery}"),
        format!("/api/webhooks/{theirs}/deliveries/{delivery}"),
        format!("/api/webhooks/{id}/deliveries/not-an-id"),
        "/api/webhooks/not-an-id/deliveries".to_owned(),
    ] {
        let (status, res) = other.get(&path).await;
        assert_eq!(
            (status, res["status"].as_i64()),
            (StatusCode::NOT_FOUND, Some(404)),
            "{path}"
        );
    }
    for action in ["replay", "enable"] {
        let (status, _) = post_raw(
            &app,
            Some(&other.key),
            &format!("/api/webhooks/{id}/{action}"),
            since.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(status_of(&app, delivery).await, "failed");
}

fn with_webhook_limit(max_webhooks: i64) -> Options {
    Options {
        sms: Some(ender_core::config::SmsConfig {
            limits: ender_core::config::TenantLimits {
                max_webhooks,
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn concurrent_creates_never_exceed_the_webhook_limit() {
    let app = TestApp::spawn_with(with_webhook_limit(20)).await;
    let c = Caller::new(&app, "many-hooks@example.org").await;
    let answers = futures::future::join_all((0..30).map(|i| {
        let c = &c;
        async move {
            c.post(
                "/api/webhooks",
                json!({"url": format!("https://hooks{i}.example.com/h"), "events": ["sms_sent"]}),
            )
            .await
        }
    }))
    .await;
    let created = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(created, 20, "exactly the limit");
    for (status, res) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*status, res["message"].as_str(), res["status"].as_i64()),
            (
                StatusCode::TOO_MANY_REQUESTS,
                Some("This workspace can keep at most 20 webhook endpoints."),
                Some(429)
            )
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, 20);

    // Deleting one makes room again; another user has a limit of their own.
    let (_, listed) = c.get("/api/webhooks?per_page=1").await;
    let id = listed["items"][0]["id"].as_str().unwrap();
    let res = c
        .http
        .delete(app.url(&format!("/api/webhooks/{id}")))
        .header("x-api-key", &c.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    create_endpoint(&c, "https://again.example.com/h").await;
    let other = Caller::new(&app, "few-hooks@example.org").await;
    create_endpoint(&other, "https://mine.example.com/h").await;
}

#[tokio::test]
async fn the_endpoint_list_is_paged_newest_first() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "paged-hooks@example.org").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create_endpoint(&c, &format!("https://h{i}.example.com/h")).await);
    }
    ids.reverse();
    let other = Caller::new(&app, "unpaged-hooks@example.org").await;
    create_endpoint(&other, "https://theirs.example.com/h").await;

    let mut seen = Vec::new();
    for (page, expect) in [(1, 2), (2, 2), (3, 1)] {
        let (status, res) = c.get(&format!("/api/webhooks?page={page}&per_page=2")).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        assert_eq!(
            (
                res["page"].as_i64(),
                res["per_page"].as_i64(),
                res["total_items"].as_i64(),
                res["total_pages"].as_i64()
            ),
            (Some(page), Some(2), Some(5), Some(3))
        );
        let items = res["items"].as_array().unwrap();
        assert_eq!(items.len(), expect, "page {page}");
        assert!(items.iter().all(|e| e["health"]["breaker"] == "closed"));
        seen.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen, ids, "every endpoint once, newest first");
    let (_, past) = c.get("/api/webhooks?page=4&per_page=2").await;
    assert_eq!(past["items"].as_array().unwrap().len(), 0);
    // Without parameters: the first 50, in the same envelope.
    let (_, all) = c.get("/api/webhooks").await;
    assert_eq!(
        (all["items"].as_array().unwrap().len(), all["per_page"].as_i64()),
        (5, Some(50))
    );
}

#[tokio::test]
async fn another_users_endpoint_cannot_be_updated_or_have_its_secret_rotated() {
    let app = TestApp::spawn().await;
    let owner = Caller::new(&app, "owner-rot@example.org").await;
    let id = create_endpoint(&owner, "https://owner.example.com/h").await;
    let (_, before) = owner.get(&format!("/api/webhooks/{id}")).await;
    let (_, secret) = owner.get(&format!("/api/webhooks/{id}/secret")).await;
    let other = Caller::new(&app, "stranger-rot@example.org").await;
    create_endpoint(&other, "https://stranger.example.com/h").await;

    let res = other
        .http
        .put(app.url(&format!("/api/webhooks/{id}")))
        .header("x-api-key", &other.key)
        .json(&json!({"url": "https://evil.example.com/h", "events": ["sms_received"], "include_body": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"], "Webhook not found.");
    let (status, _) = other
        .post(
            &format!("/api/webhooks/{id}/rotate-secret"),
            json!({"overlap_hours": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, after) = owner.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(after, before, "the endpoint is unchanged");
    let (_, still) = owner.get(&format!("/api/webhooks/{id}/secret")).await;
    assert_eq!(still["secret"], secret["secret"]);
    let secrets: Vec<Option<chrono::DateTime<chrono::Utc>>> =
        sqlx::query_scalar("SELECT expires_at FROM webhook_secrets WHERE endpoint_id = $1::uuid")
            .bind(&id)
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(secrets, [None], "one secret, not superseded");
}
