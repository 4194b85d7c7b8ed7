//! One user's credentials never reach another user's devices, keys or live events, and
//! the event streams open for a valid credential only. Each test uses the other user's
//! real ids, so it fails if the ownership check behind the route went away.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::simulator::Sim;
use crate::sms::Caller;

const PW: &str = "correct horse battery";

/// What a device row holds that an edit, pacing, enabling or rotation would change.
async fn device_row(app: &TestApp, id: &str) -> (String, String, i32, i32, bool, Vec<u8>) {
    sqlx::query_as(
        "SELECT name, phone_number, per_minute_limit, per_day_limit, enabled, key_hash
         FROM devices WHERE id = $1::uuid",
    )
    .bind(id)
    .fetch_one(app.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn event_streams_without_a_valid_device_key_answer_401_and_no_stream() {
    let app = TestApp::spawn().await;
    let user = Caller::new(&app, "stream-user@example.org").await;
    let http = reqwest::Client::new();
    for path in ["/api/realtime", "/api/device/events"] {
        for key in [
            None,
            Some("dk_00000000000000000000000000000000"),
            // An integration key is not a device key.
            Some(user.key.as_str()),
        ] {
            let mut req = http.get(app.url(path)).header("accept", "text/event-stream");
            if let Some(k) = key {
                req = req.header("x-api-key", k);
            }
            let res = tokio::time::timeout(Duration::from_secs(5), req.send())
                .await
                .expect("an answer, not a held-open stream")
                .unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path} with {key:?}");
            let kind = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            assert!(!kind.contains("event-stream"), "{path}: {kind}");
            let body: Value = tokio::time::timeout(Duration::from_secs(5), res.json())
                .await
                .expect("the body ends")
                .unwrap();
            assert_eq!(
                (body["status"].as_i64(), body["message"].as_str()),
                (Some(401), Some("Invalid API key.")),
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn another_users_device_cannot_be_edited_paced_enabled_or_rotated() {
    let app = TestApp::spawn().await;
    app.create_user("device-owner@example.org", PW).await;
    let phone = Sim::register(&app, "device-owner@example.org", "android", "Owner's phone").await;
    let before = device_row(&app, &phone.id).await;
    app.signed_in_user("device-snoop@example.org", PW).await;
    let detail = format!("/devices/{}", phone.id);
    // The snoop's own device page gives the CSRF token (the owner's page is not found).
    let own = Sim::register(&app, "device-snoop@example.org", "android", "Snoop's phone").await;
    let form_page = format!("/devices/{}", own.id);
    for (action, fields) in [
        (
            detail.clone(),
            vec![("name", "Taken"), ("phone_number", "+15550000000")],
        ),
        (
            format!("{detail}/pacing"),
            vec![("per_minute_limit", "1"), ("per_day_limit", "1")],
        ),
        (format!("{detail}/enabled"), vec![("enabled", "false")]),
        (format!("{detail}/rotate"), vec![]),
    ] {
        let res = app.post_form(&form_page, &action, &fields).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{action}");
        let page = res.text().await.unwrap();
        assert!(!page.contains("dk_"), "{action} shows no key");
    }
    assert_eq!(device_row(&app, &phone.id).await, before, "nothing changed");
    // The owner's key still works.
    assert!(phone.pending().await.is_empty());
}

#[tokio::test]
async fn another_users_api_key_cannot_be_revoked_or_rotated() {
    let app = TestApp::spawn().await;
    let owner = Caller::new(&app, "key-owner@example.org").await;
    let snoop = Caller::new(&app, "key-snoop@example.org").await;
    let (status, made) = owner.post("/api/api-keys", json!({"name": "mine"})).await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    let target = KeyClient::new(&app, made["key"].as_str().unwrap().to_owned());

    let res = snoop
        .http
        .delete(app.url(&format!("/api/api-keys/{id}")))
        .header("x-api-key", &snoop.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"], "API key not found.");
    let (status, body) = snoop.post(&format!("/api/api-keys/{id}/rotate"), json!({})).await;
    assert_eq!(
        (status, body["message"].as_str(), body.get("key")),
        (StatusCode::NOT_FOUND, Some("API key not found."), None)
    );

    // The same through the keys page of a signed-in snoop.
    app.signed_in_user("key-page-snoop@example.org", PW).await;
    for action in [format!("/api-keys/{id}/revoke"), format!("/api-keys/{id}/rotate")] {
        let res = app.post_form("/api-keys", &action, &[]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{action}");
    }

    let (status, _) = target.get("/api/plans/quota").await;
    assert_eq!(status, StatusCode::OK, "the key still works");
    let (_, keys) = owner.get("/api/api-keys").await;
    let listed: Vec<&Value> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["active"] == true)
        .collect();
    assert_eq!(listed.len(), 2, "no key was revoked or added: {keys}");
}

/// Reads `res` for `secs` seconds and returns the `event:` names it carried.
async fn events_within(res: &mut reqwest::Response, secs: u64) -> Vec<String> {
    let mut text = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(secs), async {
        while let Ok(Some(chunk)) = res.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    text.lines()
        .filter_map(|l| l.strip_prefix("event:"))
        .map(|e| e.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn a_users_live_stream_never_carries_another_users_events() {
    let app = TestApp::spawn().await;
    app.signed_in_user("stream-a@example.org", PW).await;
    let a_phone = Sim::register(&app, "stream-a@example.org", "android", "A").await;
    app.create_user("stream-b@example.org", PW).await;
    let b_phone = Sim::register(&app, "stream-b@example.org", "android", "B").await;
    let mut res = app.client.get(app.url("/events")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let incoming = |body: &str| json!({"from_number": "+15551230000", "body": body});
    let (status, _) = b_phone.post("/api/sms/incoming", incoming("for B")).await;
    assert_eq!(status, StatusCode::OK);
    // Past the coalescing window: a leaked event would be a frame of its own.
    assert!(
        events_within(&mut res, 2).await.is_empty(),
        "B's message reached A's stream"
    );
    let (status, _) = a_phone.post("/api/sms/incoming", incoming("for A")).await;
    assert_eq!(status, StatusCode::OK);
    // (A's phone coming online may add a `devices` event; that one is A's too.)
    let events = events_within(&mut res, 2).await;
    assert!(events.iter().any(|e| e == "messages"), "{events:?}");
}
