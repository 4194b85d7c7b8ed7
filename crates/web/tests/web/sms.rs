//! The SMS pipeline through the API: keys, sending, dispatch, claims, reports, retries,
//! failover, quota, idempotency, incoming messages, streams and other users' resources.

use std::time::Duration;

use ender_core::config::SmsConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::simulator::{Sim, next_frame};

const PW: &str = "correct horse battery";

/// An account with an integration key.
pub struct Caller {
    client: KeyClient,
}

impl std::ops::Deref for Caller {
    type Target = KeyClient;
    fn deref(&self) -> &KeyClient {
        &self.client
    }
}

impl Caller {
    pub async fn new(app: &TestApp, email: &str) -> Self {
        app.create_user(email, PW).await;
        let user: uuid::Uuid = sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id WHERE email_normalized = lower($1)")
            .bind(email)
            .fetch_one(app.pool())
            .await
            .unwrap();
        let key = ender_core::apikey::create(
            app.pool(),
            ender_core::workspace::WorkspaceId(user),
            None,
            "test",
            ender_core::apikey::Scopes::all(),
            None,
            10,
        )
        .await
        .unwrap()
        .secret;
        Self {
            client: KeyClient::new(app, key),
        }
    }

    pub async fn send(&self, recipients: &[&str], body: &str) -> (StatusCode, Value) {
        self.post("/api/sms/send", json!({"recipients": recipients, "body": body}))
            .await
    }

    pub async fn status_of(&self, id: &str) -> String {
        let (status, body) = self.get(&format!("/api/sms/status/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["status"].as_str().unwrap().to_owned()
    }
}

fn fast() -> SmsConfig {
    SmsConfig {
        lease_secs: 1,
        claim_timeout_secs: 1,
        retry_backoff_secs: vec![1, 1, 1],
        ..SmsConfig::default()
    }
}

/// A server whose dispatcher runs, a caller, and one of the caller's modems with Ender's
/// event stream open (its `hello` already read).
async fn modem_on_stream(
    email: &str,
) -> (
    TestApp,
    Caller,
    Sim,
    tokio::sync::mpsc::Receiver<(String, String, String)>,
) {
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        ..Default::default()
    })
    .await;
    let c = Caller::new(&app, email).await;
    let modem = Sim::register(&app, email, "modem", "Dongle").await;
    let mut rx = modem.stream("/api/device/events").await;
    next_frame(&mut rx, 5).await;
    (app, c, modem, rx)
}

async fn set_pacing(app: &TestApp, device: &str, per_minute: i32) {
    sqlx::query("UPDATE devices SET per_minute_limit = $2, per_day_limit = 10000 WHERE id = $1::uuid")
        .bind(device)
        .bind(per_minute)
        .execute(app.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn credentials_are_checked_on_every_route() {
    let app = TestApp::spawn().await;
    let caller = Caller::new(&app, "k@example.org").await;
    let http = reqwest::Client::new();
    for key in [None, Some("vk_wrong"), Some("dk_wrong"), Some("")] {
        let mut req = http
            .post(app.url("/api/sms/send"))
            .json(&json!({"recipients": ["+15550001111"], "body": "x"}));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"data": {}, "message": "Authentication required.", "status": 401})
        );
    }
    let res = http
        .get(app.url("/api/sms/pending"))
        .header("x-api-key", &caller.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["message"], "Invalid API key.");

    // Revoked and expired keys stop working.
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second'")
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(caller.get("/api/plans/quota").await.0, StatusCode::UNAUTHORIZED);
    sqlx::query("UPDATE api_keys SET expires_at = NULL, revoked_at = now()")
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(caller.get("/api/plans/quota").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sends_are_validated_in_the_contract_order() {
    let app = TestApp::spawn_with(Options {
        sms: Some(SmsConfig {
            max_recipients: 3,
            ..SmsConfig::default()
        }),
        ..Default::default()
    })
    .await;
    let c = Caller::new(&app, "v@example.org").await;
    let cases = [
        (
            json!({"recipients": [], "body": "hi"}),
            "At least one recipient required.",
        ),
        (json!({"body": "hi"}), "At least one recipient required."),
        (
            json!({"recipients": ["+15550001111", "12345"], "body": ""}),
            "Invalid phone number: 12345. Must be E.164 format (e.g. +1234567890).",
        ),
        (
            json!({"recipients": ["+15550001111"], "body": " \u{200b} "}),
            "Message body required.",
        ),
        (
            json!({"recipients": ["+15550001111"], "body": "x".repeat(1601)}),
            "Message body exceeds 1600 character limit.",
        ),
        (
            json!({"recipients": ["+15550001111"], "body": "hi", "device_id": "nope"}),
            "Device not found: nope.",
        ),
        (
            json!({"recipients": ["+15550000001", "+15550000002", "+15550000003", "+15550000004"], "body": "hi"}),
            "Too many recipients: at most 3 per request.",
        ),
    ];
    for (body, message) in cases {
        let (status, res) = c.post("/api/sms/send", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            res,
            json!({"data": {}, "message": message, "status": 400}),
            "{body}"
        );
    }
    for raw in [
        "{not json",
        r#"{"recipients": "+15550001111", "body": "x"}"#,
        r#"{"body": 5}"#,
    ] {
        let res = c
            .http
            .post(app.url("/api/sms/send"))
            .header("x-api-key", &c.key)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            res.json::<Value>().await.unwrap()["message"],
            "Invalid request body."
        );
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing is created by a refused request");

    let (status, res) = c
        .send(&["+1 555 000 1111", "+15550002222", "+15550001111"], "Hello")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(res["recipients_count"], 2);
    assert_eq!(res["status"], "accepted");
    assert_eq!(
        (res["segments"].as_i64(), res["encoding"].as_str()),
        (Some(1), Some("gsm7"))
    );
    assert!(!res["batch_id"].as_str().unwrap().is_empty());
    let (_, single) = c.send(&["+15550003333"], &"ж".repeat(71)).await;
    assert_eq!(single["batch_id"], "");
    assert_eq!(
        (single["segments"].as_i64(), single["encoding"].as_str()),
        (Some(2), Some("ucs2"))
    );
    let (_, batch) = c
        .get(&format!("/api/sms/batch/{}", res["batch_id"].as_str().unwrap()))
        .await;
    assert_eq!(batch["total"], 2);
    assert_eq!(batch["status_counts"], json!({"pending": 2}));
    let recipients: Vec<&str> = batch["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["recipient"].as_str().unwrap())
        .collect();
    assert!(recipients.contains(&"+15550001111") && recipients.contains(&"+15550002222"));
}

#[tokio::test]
async fn a_message_travels_from_pending_to_delivered_with_its_history() {
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        ..Default::default()
    })
    .await;
    let c = Caller::new(&app, "flow@example.org").await;
    let phone = Sim::register(&app, "flow@example.org", "android", "Phone").await;
    let (_, res) = c.send(&["+15550001111"], "Hello there").await;
    let id = res["message_ids"][0].as_str().unwrap().to_owned();
    assert_eq!(c.status_of(&id).await, "pending", "no device reachable yet");

    let handed = phone.pending().await;
    assert_eq!(
        handed,
        vec![json!({"message_id": id, "recipient": "+15550001111", "body": "Hello there"})]
    );
    assert_eq!(c.status_of(&id).await, "sending");
    assert!(
        phone.pending().await.is_empty(),
        "a claimed message is not handed out twice"
    );

    let (status, body) = phone.report(&id, "sent", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"success": true, "message_id": id, "status": "sent"}));
    assert_eq!(phone.report(&id, "delivered", "").await.0, StatusCode::OK);
    // Android sends one "delivered" per part, and a late "sent" may follow.
    assert_eq!(phone.report(&id, "delivered", "").await.0, StatusCode::OK);
    assert_eq!(phone.report(&id, "sent", "").await.0, StatusCode::OK);
    let (_, m) = c.get(&format!("/api/sms/status/{id}")).await;
    assert_eq!(m["status"], "delivered");
    assert_eq!(m["recipient"], "+15550001111");
    assert_eq!(m["device_id"], phone.id.as_str());
    assert!(m["sent_at"].as_str().unwrap().ends_with('Z') && !m["delivered_at"].as_str().unwrap().is_empty());

    let history: Vec<String> =
        sqlx::query_scalar("SELECT status FROM message_events WHERE message_id = $1::uuid ORDER BY id")
            .bind(&id)
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(history, ["pending", "assigned", "sending", "sent", "delivered"]);
}

#[tokio::test]
async fn reports_are_checked_against_the_device() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "r@example.org").await;
    let mine = Sim::register(&app, "r@example.org", "android", "Mine").await;
    let other = Sim::register(&app, "r@example.org", "android", "Other").await;
    let _ = Caller::new(&app, "stranger@example.org").await;
    let foreign = Sim::register(&app, "stranger@example.org", "android", "Foreign").await;
    let (_, res) = c
        .post(
            "/api/sms/send",
            json!({"recipients": ["+15550001111"], "body": "x", "device_id": mine.id}),
        )
        .await;
    let id = res["message_ids"][0].as_str().unwrap();
    assert_eq!(mine.pending().await.len(), 1);

    let (status, body) = mine.report(id, "bogus", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "Invalid status: must be sent, delivered, or failed."
    );
    let (status, body) = other.report(id, "sent", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Message does not belong to this device.");
    let (status, body) = foreign.report(id, "sent", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], format!("Message not found: {id}."));
    let (status, body) = mine
        .report("00000000-0000-0000-0000-000000000000", "sent", "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["message"],
        "Message not found: 00000000-0000-0000-0000-000000000000."
    );
    assert_eq!(c.status_of(id).await, "sending");

    // Final states do not move.
    mine.report(id, "failed", "Invalid destination address").await;
    assert_eq!(c.status_of(id).await, "failed");
    assert_eq!(mine.report(id, "sent", "").await.0, StatusCode::OK);
    assert_eq!(c.status_of(id).await, "failed");
}

#[tokio::test]
async fn an_unreported_claim_is_offered_again_after_its_lease() {
    let app = TestApp::spawn_with(Options {
        sms: Some(fast()),
        dispatcher: true,
        ..Default::default()
    })
    .await;
    let c = Caller::new(&app, "lease@example.org").await;
    let phone = Sim::register(&app, "lease@example.org", "android", "Phone").await;
    let (_, res) = c.send(&["+15550001111"], "Lost in the app").await;
    let id = res["message_ids"][0].as_str().unwrap();
    assert_eq!(phone.pending().await.len(), 1);
    // The app dropped it. After the lease (1 s) the watchdog offers it to the same device.
    let mut again = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        again = phone.pending().await;
        if !again.is_empty() {
            break;
        }
    }
    assert_eq!(again.len(), 1, "offered again after the lease");
    assert_eq!(again[0]["message_id"], id);
    phone.report(id, "sent", "").await;
    assert_eq!(c.status_of(id).await, "sent");
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM messages WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn transient_failures_retry_on_another_device_and_permanent_ones_fail_at_once() {
    let app = TestApp::spawn_with(Options {
        sms: Some(fast()),
        ..Default::default()
    })
    .await;
    let c = Caller::new(&app, "retry@example.org").await;
    let a = Sim::register(&app, "retry@example.org", "android", "A").await;
    let b = Sim::register(&app, "retry@example.org", "android", "B").await;
    set_pacing(&app, &a.id, 100).await;
    set_pacing(&app, &b.id, 100).await;
    let (_, res) = c.send(&["+15550001111"], "Retry me").await;
    let id = res["message_ids"][0].as_str().unwrap().to_owned();
    // Both devices poll; whichever gets it fails it with a radio error.
    let (first, second) = {
        let got_a = a.pending().await;
        if got_a.is_empty() { (&b, &a) } else { (&a, &b) }
    };
    if first.id == b.id {
        assert_eq!(b.pending().await.len(), 1);
    }
    let (status, _) = first.report(&id, "failed", "RESULT_ERROR_NO_SERVICE").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c.status_of(&id).await, "pending");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Both phones have been in touch recently; the retry goes to the other one even if
    // the first polls first.
    sqlx::query("UPDATE devices SET last_seen_at = now()")
        .execute(app.pool())
        .await
        .unwrap();
    assert!(first.pending().await.is_empty());
    let got = second.pending().await;
    assert_eq!(got.len(), 1, "failed over to the other device");
    second
        .report(&id, "failed", "RESULT_ERROR_SHORT_CODE_NEVER_ALLOWED blocked")
        .await;
    let (_, m) = c.get(&format!("/api/sms/status/{id}")).await;
    assert_eq!(m["status"], "failed");
    assert!(m["error_message"].as_str().unwrap().contains("blocked"));
}

#[tokio::test]
async fn retries_end_in_failure_after_the_last_attempt() {
    let app = TestApp::spawn_with(Options {
        sms: Some(SmsConfig {
            retry_backoff_secs: vec![0],
            ..fast()
        }),
        ..Default::default()
    })
    .await;
    let c = Caller::new(&app, "last@example.org").await;
    let phone = Sim::register(&app, "last@example.org", "android", "Only").await;
    set_pacing(&app, &phone.id, 100).await;
    let (_, res) = c.send(&["+15550001111"], "Two tries").await;
    let id = res["message_ids"][0].as_str().unwrap();
    assert_eq!(phone.pending().await.len(), 1);
    phone.report(id, "failed", "generic failure").await;
    assert_eq!(c.status_of(id).await, "pending");
    assert_eq!(phone.pending().await.len(), 1, "the only device gets the retry");
    phone.report(id, "failed", "generic failure").await;
    assert_eq!(c.status_of(id).await, "failed");
}

#[tokio::test]
async fn pacing_limits_what_a_device_is_given() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "pace@example.org").await;
    let phone = Sim::register(&app, "pace@example.org", "android", "Phone").await;
    set_pacing(&app, &phone.id, 2).await;
    c.send(
        &[
            "+15550000001",
            "+15550000002",
            "+15550000003",
            "+15550000004",
            "+15550000005",
        ],
        "Paced",
    )
    .await;
    assert_eq!(phone.pending().await.len(), 2);
    assert!(phone.pending().await.is_empty());
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'pending'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(pending, 3, "the rest wait for the next minute");
}

#[tokio::test]
async fn the_idempotency_key_replays_the_first_answer() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "idem@example.org").await;
    let body = json!({"recipients": ["+15550001111"], "body": "Once"});
    let send = |key: &'static str, body: Value| {
        let c = &c;
        let app = &app;
        async move {
            let res = c
                .http
                .post(app.url("/api/sms/send"))
                .header("x-api-key", &c.key)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (s1, first) = send("order-42", body.clone()).await;
    let (s2, second) = send("order-42", body.clone()).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(first, second);
    let (s3, conflict) = send(
        "order-42",
        json!({"recipients": ["+15550001111"], "body": "Different"}),
    )
    .await;
    assert_eq!(s3, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        conflict["message"]
            .as_str()
            .unwrap()
            .contains("different request")
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Concurrent duplicates still create one message.
    let (a, b) = tokio::join!(send("order-43", body.clone()), send("order-43", body.clone()));
    assert_eq!(a.1, b.1);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn the_monthly_quota_never_overshoots_under_concurrency() {
    let app = TestApp::spawn_with(Options {
        sms: Some(SmsConfig {
            max_sms_per_month: 30,
            ..SmsConfig::default()
        }),
        ..Default::default()
    })
    .await;
    let c = Caller::new(&app, "quota@example.org").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let http = c.http.clone();
        let key = c.key.clone();
        let url = app.url("/api/sms/send");
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .header("x-api-key", key)
                .json(&json!({"recipients": [format!("+1555000{i:04}")], "body": "q"}))
                .send()
                .await
                .unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::OK => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"], "quota_exceeded");
                assert_eq!(body["quota_type"], "sms_monthly");
                assert_eq!(body["limit"], 30);
                assert!(body["used"].is_i64() && body["available"].is_i64());
                assert!(body.get("status").is_none(), "the quota body has no envelope");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(accepted, 30);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(n, 30);
    let (_, quota) = c.get("/api/plans/quota").await;
    assert_eq!(quota["sms_sent_this_month"], 30);
    assert_eq!(quota["max_sms_per_month"], 30);
    for key in [
        "devices_registered",
        "max_devices",
        "scheduled_sms_count",
        "integrations_count",
        "max_integrations",
    ] {
        assert!(quota[key].is_i64(), "{key} is an integer");
    }
    assert_eq!(quota["reset_date"].as_str().unwrap().len(), 10);
}

#[tokio::test]
async fn other_users_resources_are_not_found() {
    let app = TestApp::spawn().await;
    let alice = Caller::new(&app, "alice@example.org").await;
    let bob = Caller::new(&app, "bob@example.org").await;
    let bobs_phone = Sim::register(&app, "bob@example.org", "android", "Bob's").await;
    let (_, res) = alice.send(&["+15550001111", "+15550002222"], "Private").await;
    let id = res["message_ids"][0].as_str().unwrap();
    let batch = res["batch_id"].as_str().unwrap();
    let (status, body) = bob.get(&format!("/api/sms/status/{id}")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("Message not found."))
    );
    let (status, body) = bob.get(&format!("/api/sms/batch/{batch}")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("Batch not found."))
    );
    let (_, list) = bob.get("/api/sms/messages").await;
    assert_eq!(list["total_items"], 0);
    let (_, devices) = alice.get("/api/devices").await;
    assert_eq!(devices["total_items"], 0);
    let (status, body) = alice
        .post(
            "/api/sms/send",
            json!({"recipients": ["+15550001111"], "body": "x", "device_id": bobs_phone.id}),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Device does not belong to user."))
    );
    // Bob's phone never sees Alice's messages.
    assert!(bobs_phone.pending().await.is_empty());
    let (status, _) = bob
        .post(
            "/api/api-keys/00000000-0000-0000-0000-000000000000/rotate",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn message_lists_filter_and_count_correctly() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "list@example.org").await;
    let phone = Sim::register(&app, "list@example.org", "android", "Phone").await;
    let (_, batch) = c
        .send(&["+15550000001", "+15550000002", "+15550000003"], "Batch")
        .await;
    c.send(&["+15550000009"], "Single").await;
    phone
        .post(
            "/api/sms/incoming",
            json!({"from_number": "+15557777777", "body": "Reply", "timestamp": "2026-11-22T10:00:00Z"}),
        )
        .await;

    let (_, all) = c.get("/api/sms/messages?per_page=2").await;
    assert_eq!(
        (
            all["total_items"].as_i64(),
            all["total_pages"].as_i64(),
            all["per_page"].as_i64()
        ),
        (Some(5), Some(3), Some(2))
    );
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let (_, by_batch) = c
        .get(&format!(
            "/api/sms/messages?batch_id={}",
            batch["batch_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_batch["total_items"], 3);
    let (_, by_recipient) = c.get("/api/sms/messages?recipient=%2B15550000009").await;
    assert_eq!(by_recipient["total_items"], 1);
    let (_, received) = c.get("/api/sms/messages?status=received").await;
    assert_eq!(received["total_items"], 1);
    let item = &received["items"][0];
    assert_eq!(
        (item["message_type"].as_str(), item["from_number"].as_str()),
        (Some("incoming"), Some("+15557777777"))
    );
    // Empty filters are no filters; bad paging falls back to defaults.
    let (_, empty) = c
        .get("/api/sms/messages?status=&device_id=&page=x&per_page=1000")
        .await;
    assert_eq!(
        (
            empty["total_items"].as_i64(),
            empty["page"].as_i64(),
            empty["per_page"].as_i64()
        ),
        (Some(5), Some(1), Some(200))
    );
    let (status, body) = c.get("/api/sms/messages?from=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "Invalid 'from' timestamp; expected ISO8601 (RFC3339)."
    );
    let (status, body) = c.get("/api/sms/messages?to=2026-13-01").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("Invalid 'to' timestamp; expected ISO8601 (RFC3339).")
        )
    );
    let (_, future) = c.get("/api/sms/messages?from=2999-01-01T00:00:00Z").await;
    assert_eq!(future["total_items"], 0);
}

#[tokio::test]
async fn incoming_messages_are_stored_once() {
    let app = TestApp::spawn().await;
    let _ = Caller::new(&app, "in@example.org").await;
    let phone = Sim::register(&app, "in@example.org", "android", "Phone").await;
    let body =
        json!({"from_number": "+15557777777", "body": "Yes please", "timestamp": "2026-11-22T10:00:00.123Z"});
    let (s1, r1) = phone.post("/api/sms/incoming", body.clone()).await;
    let (s2, r2) = phone.post("/api/sms/incoming", body.clone()).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(r1["success"], true);
    assert_eq!(r1["message_id"], r2["message_id"]);
    let (status, bad) = phone
        .post(
            "/api/sms/incoming",
            json!({"from_number": "+1555", "body": "", "timestamp": "now"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let (status, _) = phone
        .post("/api/sms/fcm-token", json!({"fcm_token": "abc"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = phone.post("/api/sms/fcm-token", json!({"fcm_token": ""})).await;
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn two_dispatchers_never_assign_a_message_twice() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "race@example.org").await;
    let a = Sim::register(&app, "race@example.org", "modem", "A").await;
    let b = Sim::register(&app, "race@example.org", "modem", "B").await;
    for d in [&a.id, &b.id] {
        set_pacing(&app, d, 600).await;
    }
    sqlx::query("UPDATE devices SET stream_until = now() + interval '1 minute'")
        .execute(app.pool())
        .await
        .unwrap();
    let recipients: Vec<String> = (0..300).map(|i| format!("+1555100{i:04}")).collect();
    let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let app_sms = SmsConfig {
        max_recipients: 1000,
        ..SmsConfig::default()
    };
    for chunk in refs.chunks(100) {
        assert_eq!(c.send(chunk, "race").await.0, StatusCode::OK);
    }
    let user: uuid::Uuid =
        sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let user = ender_core::workspace::WorkspaceId(user);
    let (x, y) = tokio::join!(
        ender_core::sms::dispatch::dispatch_workspace(app.pool(), &app_sms, user),
        ender_core::sms::dispatch::dispatch_workspace(app.pool(), &app_sms, user)
    );
    let assigned: usize = x
        .unwrap()
        .iter()
        .chain(y.unwrap().iter())
        .map(|a| a.messages.len())
        .sum();
    assert_eq!(assigned, 300);
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT message_id FROM message_events WHERE status = 'assigned' GROUP BY message_id HAVING count(*) > 1) t",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(twice, 0);
    // The rotation spreads the backlog over both devices.
    let per_device: Vec<i64> =
        sqlx::query_scalar("SELECT count(*) FROM messages GROUP BY device_id ORDER BY 1")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(per_device, [150, 150]);
}

#[tokio::test]
async fn deleting_a_device_puts_its_messages_back_in_the_queue() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "del@example.org").await;
    let phone = Sim::register(&app, "del@example.org", "android", "Phone").await;
    let (_, res) = c.send(&["+15550001111"], "Stranded?").await;
    let id = res["message_ids"][0].as_str().unwrap();
    assert_eq!(phone.pending().await.len(), 1);
    let user: uuid::Uuid =
        sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id")
            .fetch_one(app.pool())
            .await
            .unwrap();
    ender_core::device::delete(
        app.pool(),
        ender_core::workspace::WorkspaceId(user),
        phone.id.parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(c.status_of(id).await, "pending");
    let replacement = Sim::register(&app, "del@example.org", "android", "New").await;
    assert_eq!(replacement.pending().await.len(), 1);
}

#[tokio::test]
async fn a_modem_on_the_ender_stream_receives_messages_as_they_are_assigned() {
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        ..Default::default()
    })
    .await;
    let c = Caller::new(&app, "modem@example.org").await;
    let modem = Sim::register(&app, "modem@example.org", "modem", "Dongle").await;
    // A message sent while the modem is offline waits, and arrives when it connects.
    let (_, early) = c.send(&["+15550001111"], "Before").await;
    let mut rx = modem.stream("/api/device/events").await;
    let (_, event, data) = next_frame(&mut rx, 5).await;
    assert_eq!(
        (event.as_str(), data["device_id"].as_str()),
        ("hello", Some(modem.id.as_str()))
    );
    let (_, event, data) = next_frame(&mut rx, 10).await;
    assert_eq!(event, "message");
    assert_eq!(data["message_id"], early["message_ids"][0]);
    let (_, later) = c.send(&["+15550002222"], "After").await;
    let (_, _, data) = next_frame(&mut rx, 10).await;
    assert_eq!(data["message_id"], later["message_ids"][0]);
    assert_eq!(data["recipient"], "+15550002222");
    let id = later["message_ids"][0].as_str().unwrap();
    assert_eq!(c.status_of(id).await, "sending");
    modem.report(id, "sent", "").await;
    assert_eq!(c.status_of(id).await, "sent");
    let (_, devices) = c.get("/api/devices").await;
    assert_eq!(devices["items"][0]["online"], true);
}

#[tokio::test]
async fn a_stream_whose_claim_failed_looks_again() {
    let (app, c, _modem, mut rx) = modem_on_stream("hiccup@example.org").await;
    // The database refuses the stream's claims for a while (as when it is unreachable).
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_claims() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'claims refused by the test'; END $$;
         CREATE TRIGGER refuse_claims BEFORE UPDATE ON messages FOR EACH ROW
         WHEN (NEW.status = 'sending') EXECUTE FUNCTION refuse_claims();",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let (_, sent) = c.send(&["+15550001111"], "After the hiccup").await;
    let id = sent["message_ids"][0].as_str().unwrap().to_owned();
    // Assigned and announced, but the claim failed: nothing is pushed.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while c.status_of(&id).await != "assigned" {
        assert!(std::time::Instant::now() < until, "never assigned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err(),
        "nothing can be pushed while claims fail"
    );
    // The database is back; no other event comes, yet the stream looks again.
    sqlx::raw_sql("DROP TRIGGER refuse_claims ON messages")
        .execute(app.pool())
        .await
        .unwrap();
    let (_, event, data) = next_frame(&mut rx, 5).await;
    assert_eq!(
        (event.as_str(), data["message_id"].as_str()),
        ("message", Some(id.as_str()))
    );
    assert_eq!(c.status_of(&id).await, "sending");
}

#[tokio::test]
async fn the_vendel_modem_agent_protocol_works() {
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        ..Default::default()
    })
    .await;
    let c = Caller::new(&app, "pb@example.org").await;
    let modem = Sim::register(&app, "pb@example.org", "modem", "Vendel agent").await;
    let other = Sim::register(&app, "pb@example.org", "modem", "Other").await;
    let mut rx = modem.stream("/api/realtime").await;
    let (_, event, data) = next_frame(&mut rx, 5).await;
    assert_eq!(event, "PB_CONNECT");
    let client_id = data["clientId"].as_str().unwrap().to_owned();

    let (status, _) = modem
        .post(
            "/api/realtime",
            json!({"clientId": client_id, "subscriptions": [format!("modem/{}", other.id)]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = modem
        .post(
            "/api/realtime",
            json!({"clientId": client_id, "subscriptions": [format!("modem/{}", modem.id)]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (_, sent) = c
        .post(
            "/api/sms/send",
            json!({"recipients": ["+15550001111"], "body": "Via PB", "device_id": modem.id}),
        )
        .await;
    let (id, event, data) = next_frame(&mut rx, 10).await;
    assert_eq!(id, client_id);
    assert_eq!(event, format!("modem/{}", modem.id));
    assert_eq!(
        data,
        json!({"message_id": sent["message_ids"][0], "recipient": "+15550001111", "body": "Via PB"})
    );
}

#[tokio::test]
async fn each_credential_has_its_own_request_budget() {
    let app = TestApp::spawn_with(Options {
        extra_args: vec!["--api-rate-per-minute".into(), "3".into()],
        ..Default::default()
    })
    .await;
    let a = Caller::new(&app, "ra@example.org").await;
    let b = Caller::new(&app, "rb@example.org").await;
    for _ in 0..3 {
        assert_eq!(a.get("/api/plans/quota").await.0, StatusCode::OK);
    }
    let (status, body) = a.get("/api/plans/quota").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["status"], 429);
    assert_eq!(
        (
            body["limit"].as_i64(),
            body["used"].as_i64(),
            body["available"].as_i64()
        ),
        (Some(3), Some(3), Some(0))
    );
    assert_eq!(body["error"], "rate_limited");
    assert!(body["message"].as_str().unwrap().contains("at most 3 per minute"));
    assert_eq!(
        b.get("/api/plans/quota").await.0,
        StatusCode::OK,
        "another key is not affected"
    );
}

#[tokio::test]
async fn oversized_bodies_and_expired_idempotency_keys() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "big@example.org").await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let (status, body) = c
        .post(
            "/api/sms/send",
            json!({"recipients": ["+15550001111"], "body": huge}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 1048576 bytes"),
        "{body}"
    );

    let send = |key: &'static str| {
        let c = &c;
        let app = &app;
        async move {
            c.http
                .post(app.url("/api/sms/send"))
                .header("x-api-key", &c.key)
                .header("idempotency-key", key)
                .json(&json!({"recipients": ["+15550001111"], "body": "Again"}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let first = send("k-1").await;
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        .execute(app.pool())
        .await
        .unwrap();
    let later = send("k-1").await;
    assert_ne!(
        first["message_ids"], later["message_ids"],
        "after 24 h the key is fresh"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(n, 2);
    let (status, body) = c
        .post(
            "/api/sms/send",
            json!({"recipients": ["+15550001111"], "body": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let res = c
        .http
        .post(app.url("/api/sms/send"))
        .header("x-api-key", &c.key)
        .header("idempotency-key", "x".repeat(300))
        .json(&json!({"recipients": ["+15550001111"], "body": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn messages_past_their_validity_expire_unsent() {
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        ..Default::default()
    })
    .await;
    let c = Caller::new(&app, "valid@example.org").await;
    let (status, body) = c
        .post(
            "/api/sms/send",
            json!({"recipients": ["+15550001111"], "body": "x", "valid_until": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid valid_until")
    );
    let (_, res) =
        c.post("/api/sms/send", json!({"recipients": ["+15550001111"], "body": "Only today", "valid_until": "2999-01-01T00:00:00Z"})).await;
    let id = res["message_ids"][0].as_str().unwrap();
    // No device ever comes; the deadline passes.
    sqlx::query("UPDATE messages SET valid_until = now() - interval '1 second'")
        .execute(app.pool())
        .await
        .unwrap();
    for _ in 0..50 {
        if c.status_of(id).await == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, m) = c.get(&format!("/api/sms/status/{id}")).await;
    assert_eq!(m["status"], "expired");
    assert_eq!(m["error_message"], "Not sent before it expired.");
}

#[tokio::test]
async fn a_reconnecting_modem_gets_its_unreported_messages_again() {
    let (_app, c, modem, mut rx) = modem_on_stream("again@example.org").await;
    let (_, sent) = c.send(&["+15550001111"], "Crash before report").await;
    let (_, _, data) = next_frame(&mut rx, 10).await;
    assert_eq!(data["message_id"], sent["message_ids"][0]);
    drop(rx);
    // The agent crashed and comes back: the message it held is pushed again.
    let mut rx = modem.stream("/api/device/events").await;
    next_frame(&mut rx, 5).await;
    let (_, _, data) = next_frame(&mut rx, 10).await;
    assert_eq!(data["message_id"], sent["message_ids"][0]);
}

#[tokio::test]
async fn a_dispatcher_killed_mid_pass_leaves_every_message_in_a_correct_state() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "kill@example.org").await;
    let modem = Sim::register(&app, "kill@example.org", "modem", "Modem").await;
    set_pacing(&app, &modem.id, 600).await;
    sqlx::query("UPDATE devices SET stream_until = now() + interval '1 minute'")
        .execute(app.pool())
        .await
        .unwrap();
    let recipients: Vec<String> = (0..200).map(|i| format!("+1555300{i:04}")).collect();
    let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    for chunk in refs.chunks(100) {
        c.send(chunk, "kill").await;
    }
    let user: uuid::Uuid =
        sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let cfg = SmsConfig::default();
    // Passes cut off at various points, like a worker process killed mid-transaction.
    for delay_ms in [0u64, 1, 2, 3, 5, 8, 13] {
        let pool = app.pool().clone();
        let cfg = cfg.clone();
        let pass = tokio::spawn(async move {
            ender_core::sms::dispatch::dispatch_workspace(
                &pool,
                &cfg,
                ender_core::workspace::WorkspaceId(user),
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        pass.abort();
        let _ = pass.await;
    }
    // A fresh worker finishes the job.
    ender_core::sms::dispatch::dispatch_workspace(app.pool(), &cfg, ender_core::workspace::WorkspaceId(user))
        .await
        .unwrap();
    let states: Vec<(String, i64)> = sqlx::query_as("SELECT status, count(*) FROM messages GROUP BY status")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(states, [("assigned".to_owned(), 200)]);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM message_events WHERE status = 'assigned'")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(events, 200, "each message assigned exactly once");
    // The device receives each exactly once.
    let mut rx = modem.stream("/api/device/events").await;
    next_frame(&mut rx, 15).await;
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 200 {
        let (_, _, data) = next_frame(&mut rx, 10).await;
        assert!(
            seen.insert(data["message_id"].as_str().unwrap().to_owned()),
            "pushed twice"
        );
    }
}

#[tokio::test]
async fn the_signed_in_session_can_use_the_integration_api_with_its_csrf_token() {
    let app = TestApp::spawn().await;
    app.signed_in_user("session@example.org", PW).await;
    let res = app.get("/api/plans/quota").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = json!({"recipients": ["+15550001111"], "body": "From the browser"});
    let res = app
        .client
        .post(app.url("/api/sms/send"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let envelope: Value = res.json().await.unwrap();
    assert_eq!(envelope["status"], 403);
    assert!(envelope["message"].as_str().unwrap().contains("CSRF"));
    let token = app.csrf("/").await;
    let res = app
        .client
        .post(app.url("/api/sms/send"))
        .header("x-csrf-token", token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_replay_answers_even_after_the_device_is_gone() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "gone@example.org").await;
    let phone = Sim::register(&app, "gone@example.org", "android", "Phone").await;
    let body = json!({"recipients": ["+15550001111"], "body": "Pinned", "device_id": phone.id});
    let send = || {
        c.http
            .post(app.url("/api/sms/send"))
            .header("x-api-key", &c.key)
            .header("idempotency-key", "pinned-1")
            .json(&body)
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let user: uuid::Uuid =
        sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id")
            .fetch_one(app.pool())
            .await
            .unwrap();
    ender_core::device::delete(
        app.pool(),
        ender_core::workspace::WorkspaceId(user),
        phone.id.parse().unwrap(),
    )
    .await
    .unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
}

#[tokio::test]
async fn legacy_vendel_keys_can_be_imported_and_keep_working() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "legacy@example.org").await;
    let legacy = format!("ek_{}", "A1b2C3d4".repeat(4));
    let (status, body) = c
        .post(
            "/api/api-keys",
            json!({"name": "Old Vendel key", "legacy_key": "ek_short"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = c
        .post(
            "/api/api-keys",
            json!({"name": "Old Vendel key", "legacy_key": legacy}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["prefix"], &legacy[..7]);
    assert!(body.get("key").is_none(), "the secret is not echoed back");
    let old_client = crate::helpers::KeyClient::new(&app, legacy.clone());
    assert_eq!(old_client.get("/api/plans/quota").await.0, StatusCode::OK);
    let (status, _) = c
        .post("/api/api-keys", json!({"name": "Again", "legacy_key": legacy}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn api_key_scopes_limit_what_a_key_may_do_and_cannot_be_widened() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "scopes@example.org").await;
    let (status, hook) = c
        .post(
            "/api/webhooks",
            json!({"url": "https://hooks.example/h", "events": ["sms_sent"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_owned();

    // A new key gets what the Vendel SDKs need, and nothing more.
    let (status, made) = c.post("/api/api-keys", json!({"name": "sdk"})).await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert_eq!(made["scopes"], json!(["send", "read", "contacts"]));
    let sdk = KeyClient::new(&app, made["key"].as_str().unwrap().to_owned());
    for path in [
        "/api/plans/quota",
        "/api/devices",
        "/api/sms/messages",
        "/api/contacts",
        "/api/templates",
        "/api/schedules",
    ] {
        assert_eq!(sdk.get(path).await.0, StatusCode::OK, "{path}");
    }
    let send = json!({"recipients": ["+15550001111"], "body": "hello"});
    let (status, body) = sdk.post("/api/sms/send", send.clone()).await;
    assert_ne!(status, StatusCode::FORBIDDEN, "{body}");
    let refused = [
        (sdk.get("/api/webhooks").await, "webhooks"),
        (
            sdk.get(&format!("/api/webhooks/{hook_id}/secret")).await,
            "webhooks",
        ),
        (
            sdk.post(&format!("/api/webhooks/{hook_id}/rotate-secret"), json!({}))
                .await,
            "webhooks",
        ),
        (sdk.get("/api/api-keys").await, "keys"),
        (
            sdk.post("/api/api-keys", json!({"name": "sibling"})).await,
            "keys",
        ),
    ];
    for ((status, body), scope) in refused {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(
            body["message"],
            format!("This API key does not have the `{scope}` scope.")
        );
    }

    // A read-only key reads and cannot send or change anything.
    let (_, made) = c
        .post("/api/api-keys", json!({"name": "ro", "scopes": ["read"]}))
        .await;
    assert_eq!(made["scopes"], json!(["read"]));
    let ro = KeyClient::new(&app, made["key"].as_str().unwrap().to_owned());
    assert_eq!(ro.get("/api/sms/messages").await.0, StatusCode::OK);
    let messages = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM messages")
            .fetch_one(app.pool())
            .await
            .unwrap()
    };
    let before = messages().await;
    let (status, body) = ro.post("/api/sms/send", send).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "This API key does not have the `send` scope.");
    assert_eq!(ro.get("/api/contacts").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        ro.post("/api/schedules", json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        messages().await,
        before,
        "the read-only key's send was not stored"
    );

    // A key that may manage keys can only hand on scopes it has.
    let (_, made) = c
        .post(
            "/api/api-keys",
            json!({"name": "keys", "scopes": ["keys", "read"]}),
        )
        .await;
    let keys = KeyClient::new(&app, made["key"].as_str().unwrap().to_owned());
    let (status, body) = keys
        .post("/api/api-keys", json!({"name": "wider", "scopes": ["send"]}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "A key cannot grant the `send` scope, which it does not have itself."
    );
    let (status, _) = keys.post("/api/api-keys", json!({"name": "default"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the default set includes send");
    let (status, narrower) = keys
        .post("/api/api-keys", json!({"name": "narrow", "scopes": ["read"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{narrower}");
    // Rotation keeps the scopes.
    let id = narrower["id"].as_str().unwrap();
    let (status, rotated) = keys.post(&format!("/api/api-keys/{id}/rotate"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["scopes"], json!(["read"]));
    let (_, listed) = keys.get("/api/api-keys").await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["scopes"].is_array())
    );

    // Malformed scope lists are refused in the envelope.
    for body in [
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "x", "scopes": "send"}),
        json!({"name": "x", "scopes": [1]}),
    ] {
        let (status, res) = c.post("/api/api-keys", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {res}");
        assert!(res["message"].is_string());
    }
}

#[tokio::test]
async fn key_rows_hold_no_plaintext_key() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "rows@example.org").await;
    let (_, made) = c.post("/api/api-keys", json!({"name": "row"})).await;
    let secret = made["key"].as_str().unwrap().to_owned();
    let device = Sim::register(&app, "rows@example.org", "android", "Phone").await;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(k)::text FROM api_keys k UNION ALL SELECT row_to_json(d)::text FROM devices d",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    for (label, key) in [
        ("api key", &secret),
        ("caller key", &c.key),
        ("device key", &device.key),
    ] {
        assert!(
            rows.iter().all(|r| !r.contains(key.as_str())),
            "a {label} is stored in plaintext"
        );
        assert!(
            rows.iter().all(|r| !r.contains(&key[8..])),
            "part of a {label} is stored"
        );
    }
}
