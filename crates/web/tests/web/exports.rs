//! Message exports: asked for on the Exports page or the API, made by the worker's job
//! (run here directly, against the local store and a real S3 server on loopback),
//! downloaded by the workspace only, kept until they expire.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sms::Caller;

const PW: &str = "correct horse battery";

fn exports_ctx(app: &TestApp, store: ender_core::store::Store) -> ender_worker::jobs::exports::Exports {
    ender_worker::jobs::exports::Exports {
        store,
        tmp_dir: app.objects_dir.path().join("tmp"),
        keep_days: 7,
        notices: Some(ender_worker::webhooks::OwnerNotices {
            mailer: ender_core::mail::Mailer::files(app.mail_dir.path()),
            public_url: app.url(""),
        }),
    }
}

/// Runs every export still to be made, as the worker's job would.
async fn run_exports(app: &TestApp, ctx: &ender_worker::jobs::exports::Exports) {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM exports WHERE status IN ('queued', 'running') ORDER BY created_at",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    for id in ids {
        ender_worker::jobs::exports::run_export(app.pool(), ctx, id)
            .await
            .unwrap();
    }
}

async fn newest_export(app: &TestApp) -> String {
    sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM exports ORDER BY created_at DESC LIMIT 1")
        .fetch_one(app.pool())
        .await
        .unwrap()
        .to_string()
}

async fn download(key: &str, app: &TestApp, id: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(2))
        .build()
        .unwrap()
        .get(app.url(&format!("/api/exports/{id}/download")))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_workspace_exports_its_messages_as_csv_and_json_lines_and_downloads_them() {
    let app = TestApp::spawn().await;
    let caller = Caller::new(&app, "clinic@example.org").await;
    for body in [
        "Hello, \"Ana\"",
        "=HYPERLINK(\"http://evil\")",
        "Line one\nline two",
    ] {
        let (status, sent) = caller.send(&["+15550001111"], body).await;
        assert_eq!(status, StatusCode::OK, "{sent}");
    }
    assert_eq!(
        app.login("clinic@example.org", PW).await.status(),
        StatusCode::SEE_OTHER
    );
    let page = app.get("/exports").await.text().await.unwrap();
    assert!(has(&page, "#export-form"));
    assert!(has(&page, "a.nav-link[href='/exports']"));

    // Asked for on the page: queued, then made by the job, then downloadable.
    let res = app
        .post_form(
            "/exports",
            "/exports",
            &[("format", "csv"), ("direction", "outgoing")],
        )
        .await;
    assert_eq!(location(&res), "/exports");
    let page = app.get("/exports").await.text().await.unwrap();
    assert_eq!(select_text(&page, ".export-status"), vec!["queued"]);
    assert!(
        has(&page, "#export-rows[hx-trigger='every 2s']"),
        "the table refreshes itself"
    );
    let id = newest_export(&app).await;
    let ctx = exports_ctx(&app, app.store.clone());
    run_exports(&app, &ctx).await;
    let rows = app.get("/exports/rows").await.text().await.unwrap();
    assert_eq!(select_text(&rows, ".export-status"), vec!["done"]);
    assert!(select_text(&rows, ".export-progress")[0].starts_with("3 messages"));
    assert!(!has(&rows, "#export-rows[hx-trigger]"), "nothing left to watch");
    let res = app.get(&format!("/exports/{id}/download")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = res.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"messages-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let csv = res.text().await.unwrap();
    let csv = csv.strip_prefix('\u{feff}').expect("a BOM for spreadsheets");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        &header[..6],
        ["id", "created_at", "direction", "from", "to", "body"]
    );
    let bodies: Vec<String> = reader.records().map(|r| r.unwrap()[5].to_owned()).collect();
    assert_eq!(
        bodies,
        [
            "Hello, \"Ana\"",
            "'=HYPERLINK(\"http://evil\")",
            "Line one\nline two"
        ],
        "oldest first, quoted, formulas defused"
    );
    // The person who asked is mailed the link.
    let mails = app.wait_for_mails(1).await;
    assert!(mails.last().unwrap().contains(&format!("/exports/{id}/download")));

    // From the API: JSON Lines, with a filter that leaves one message out.
    let today = chrono::Utc::now().date_naive().to_string();
    let (status, body) = caller
        .post(
            "/api/exports",
            json!({"format": "jsonl", "since": today, "status": "pending"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["download_url"], "");
    let id = body["id"].as_str().unwrap().to_owned();
    // The newest message (the two-line one) fails: the filter leaves it out.
    sqlx::query("UPDATE messages SET status = 'failed' WHERE id = (SELECT id FROM messages ORDER BY created_at DESC, id DESC LIMIT 1)")
        .execute(app.pool())
        .await
        .unwrap();
    run_exports(&app, &ctx).await;
    let (status, body) = caller.get(&format!("/api/exports/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "done");
    assert_eq!(body["rows_total"], 2);
    assert_eq!(body["filters"], json!({"since": today, "status": "pending"}));
    let res = download(&caller.key, &app, &id).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[1]["body"], "=HYPERLINK(\"http://evil\")",
        "JSON keeps the text as it is"
    );
    assert_eq!(lines[0]["to"], "+15550001111");
    let (_, list) = caller.get("/api/exports").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_export_on_s3_downloads_through_a_short_lived_link() {
    ender_core::install_crypto_provider();
    let s3 = ender_core::testing::s3::S3Server::start().await;
    let store = ender_core::store::Store::from_config(&s3.config(), std::path::Path::new("/x")).unwrap();
    let app = TestApp::spawn_with(Options {
        store: Some(store.clone()),
        ..Default::default()
    })
    .await;
    let caller = Caller::new(&app, "dev@example.org").await;
    caller.send(&["+15550001111"], "to the bucket").await;
    let (status, body) = caller.post("/api/exports", json!({"format": "csv"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    run_exports(&app, &exports_ctx(&app, store)).await;
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url(&format!("/api/exports/{id}/download")))
        .header("x-api-key", &caller.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let link = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        link.starts_with(&s3.endpoint()) && link.contains("X-Amz-Expires=300"),
        "{link}"
    );
    let file = reqwest::get(&link).await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert!(file.text().await.unwrap().contains("to the bucket"));
}

#[tokio::test]
async fn a_store_that_cannot_be_reached_is_retried_and_nothing_half_made_is_offered() {
    ender_core::install_crypto_provider();
    let app = TestApp::spawn().await;
    let caller = Caller::new(&app, "ops@example.org").await;
    caller.send(&["+15550001111"], "x").await;
    let (_, body) = caller.post("/api/exports", json!({})).await;
    let id = body["id"].as_str().unwrap().to_owned();
    // A bucket on a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = ender_core::testing::s3::S3Server::start().await.config();
    cfg.s3_endpoint = Some(format!("http://127.0.0.1:{port}").parse().unwrap());
    let dead = ender_core::store::Store::from_config(&cfg, std::path::Path::new("/x")).unwrap();
    run_exports(&app, &exports_ctx(&app, dead)).await;
    let (_, body) = caller.get(&format!("/api/exports/{id}")).await;
    assert_eq!(body["status"], "queued", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("Trying again in 30 s"),
        "{body}"
    );
    assert_eq!(body["download_url"], "");
    assert_eq!(
        download(&caller.key, &app, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    // The next try is queued for later, not at once.
    let later: bool = sqlx::query_scalar(
        "SELECT run_at > now() + interval '20 seconds' FROM apalis.jobs WHERE job_type = 'ender.exports' ORDER BY run_at DESC LIMIT 1",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!(later);
    // No temporary file is left behind.
    let tmp = app.objects_dir.path().join("tmp");
    assert_eq!(std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0), 0);
    // With the store back, the export is made.
    run_exports(&app, &exports_ctx(&app, app.store.clone())).await;
    let (_, body) = caller.get(&format!("/api/exports/{id}")).await;
    assert_eq!(body["status"], "done");
    assert_eq!(body["error"], "");
    assert_eq!(download(&caller.key, &app, &id).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn exports_refuse_bad_input_strangers_and_other_workspaces_and_expire() {
    let app = TestApp::spawn().await;
    let caller = Caller::new(&app, "a@example.org").await;
    let other = Caller::new(&app, "b@example.org").await;
    caller.send(&["+15550001111"], "mine").await;
    assert_eq!(
        app.login("a@example.org", PW).await.status(),
        StatusCode::SEE_OTHER
    );

    // The page re-renders the form with a message per bad field.
    let res = app
        .post_form(
            "/exports",
            "/exports",
            &[
                ("format", "xls"),
                ("since", "31/01/2026"),
                ("direction", "sideways"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = res.text().await.unwrap();
    for field in ["format", "since", "direction"] {
        assert!(
            has(&page, &format!(".field-error[data-field={field}]")),
            "{field}"
        );
    }
    assert_eq!(
        select_attr(&page, "#since", "value").as_deref(),
        Some("31/01/2026")
    );
    // A device of another workspace.
    let theirs = crate::simulator::Sim::register(&app, "b@example.org", "android", "Theirs").await;
    let res = app
        .post_form(
            "/exports",
            "/exports",
            &[("format", "csv"), ("device", theirs.id.as_str())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = caller.post("/api/exports", json!({"device": theirs.id})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["data"]["errors"]["device"].is_string(), "{body}");
    let (status, body) = caller.post("/api/exports", json!({"format": "pdf"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["data"]["errors"]["format"], "Choose CSV or JSON Lines.");
    let res = reqwest::Client::new()
        .post(app.url("/api/exports"))
        .header("x-api-key", &caller.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = reqwest::Client::new()
        .post(app.url("/api/exports"))
        .header("x-api-key", &caller.key)
        .header("content-type", "application/json")
        .body(format!("{{\"format\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Three at a time per workspace.
    for _ in 0..3 {
        let (status, body) = caller.post("/api/exports", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = caller.post("/api/exports", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let id = newest_export(&app).await;
    let ctx = exports_ctx(&app, app.store.clone());
    run_exports(&app, &ctx).await;

    // Nobody else reaches the file: another workspace, a stranger, a made-up id.
    let (status, _) = other.get(&format!("/api/exports/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        download(&other.key, &app, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    let res = reqwest::get(app.url(&format!("/api/exports/{id}/download")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let stranger = app.new_client();
    let res = stranger
        .get(app.url(&format!("/exports/{id}/download")))
        .send()
        .await
        .unwrap();
    assert!(location(&res).starts_with("/login"), "{:?}", res.status());
    for bad in [uuid::Uuid::now_v7().to_string(), "not-an-id".to_owned()] {
        assert_eq!(
            download(&caller.key, &app, &bad).await.status(),
            StatusCode::NOT_FOUND
        );
        let res = app.get(&format!("/exports/{bad}/download")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    let b_client = app.new_client();
    let res = post_form_with(
        &b_client,
        &app,
        "/login",
        "/login",
        &[("email", "b@example.org"), ("password", PW)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = b_client
        .get(app.url(&format!("/exports/{id}/download")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(download(&caller.key, &app, &id).await.status(), StatusCode::OK);

    // Past its keeping time the file leaves the store and the link stops working.
    sqlx::query("UPDATE exports SET expires_at = now() - interval '1 minute'")
        .execute(app.pool())
        .await
        .unwrap();
    let deleted = ender_worker::jobs::exports::sweep_expired(app.pool(), &app.store)
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    assert_eq!(
        download(&caller.key, &app, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(app.store.list("exports/").await.unwrap().is_empty());
    let page = app.get("/exports").await.text().await.unwrap();
    assert!(
        select_text(&page, ".export-status")
            .iter()
            .all(|s| s == "expired")
    );
    assert_eq!(
        ender_worker::jobs::exports::sweep_expired(app.pool(), &app.store)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn vendels_user_export_is_one_json_file_of_the_workspace_without_secrets() {
    let app = TestApp::spawn().await;
    let caller = Caller::new(&app, "legacy@example.org").await;
    let other = Caller::new(&app, "other@example.org").await;
    other.send(&["+15550009999"], "not mine").await;
    let phone = crate::simulator::Sim::register(&app, "legacy@example.org", "android", "Desk").await;
    caller.send(&["+15550001111"], "hello from Ender").await;
    let (status, _) = caller
        .post(
            "/api/templates",
            json!({"name": "Reminder", "body": "See you {{name}}"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, hook) = caller
        .post(
            "/api/webhooks",
            json!({"url": "https://hooks.example.org/in", "events": ["sms_sent"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hook}");

    // With the session (Vendel's dashboard) …
    assert_eq!(
        app.login("legacy@example.org", PW).await.status(),
        StatusCode::SEE_OTHER
    );
    let res = app.get("/api/user/export").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"vendel-export.json\""
    );
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["user"]["email"], "legacy@example.org");
    assert_eq!(body["user"]["verified"], true);
    assert_eq!(body["devices"][0]["id"], phone.id.as_str());
    assert_eq!(body["devices"][0]["device_type"], "android");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "only this workspace's");
    assert_eq!(messages[0]["body"], "hello from Ender");
    assert_eq!(messages[0]["to"], "+15550001111");
    assert_eq!(messages[0]["message_type"], "outgoing");
    assert_eq!(body["messages_truncated"], false);
    assert_eq!(body["templates"][0]["name"], "Reminder");
    assert_eq!(body["webhooks"][0]["url"], "https://hooks.example.org/in");
    assert_eq!(body["api_keys"][0]["is_active"], true);
    assert_eq!(body["quota"]["sms_sent_this_month"], 1);
    for key in ["exported_at", "scheduled_sms", "subscriptions", "payments"] {
        assert!(!body[key].is_null(), "{key}");
    }
    // No secret of any kind.
    assert!(!text.contains(&caller.key));
    assert!(!text.contains("dk_") && !text.contains("whsec_") && !text.contains("argon2"));
    // … and with a key; a stranger gets 401.
    let res = reqwest::Client::new()
        .get(app.url("/api/user/export"))
        .header("x-api-key", &caller.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = reqwest::get(app.url("/api/user/export")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Rate limited per workspace: 10 an hour.
    let mut last = StatusCode::OK;
    for _ in 0..10 {
        last = app.get("/api/user/export").await.status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_conversation_is_deleted_whole_after_confirming_and_the_audit_keeps_no_number() {
    let app = TestApp::spawn().await;
    let caller = Caller::new(&app, "clinic@example.org").await;
    let other = Caller::new(&app, "other@example.org").await;
    for (to, body) in [
        ("+15550001111", "one"),
        ("+15550001111", "two"),
        ("+15550002222", "keep"),
    ] {
        let (status, _) = caller.send(&[to], body).await;
        assert_eq!(status, StatusCode::OK);
    }
    other.send(&["+15550001111"], "another workspace's").await;
    let ws: uuid::Uuid = sqlx::query_scalar(
        "SELECT w.id FROM workspaces w JOIN users u ON u.id = w.personal_user_id WHERE u.email_normalized = 'clinic@example.org'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    // A reply from the same person.
    sqlx::query(
        "INSERT INTO messages (id, workspace_id, direction, from_number, body, encoding, segments, status, received_at)
         VALUES (gen_random_uuid(), $1, 'incoming', '+15550001111', 'reply', 'gsm7', 1, 'received', now())",
    )
    .bind(ws)
    .execute(app.pool())
    .await
    .unwrap();
    let count = |number: &'static str| {
        let pool = app.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM messages WHERE workspace_id = $1 AND (recipient = $2 OR from_number = $2)",
            )
            .bind(ws)
            .bind(number)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(count("+15550001111").await, 3);

    assert_eq!(
        app.login("clinic@example.org", PW).await.status(),
        StatusCode::SEE_OTHER
    );
    let page = app
        .get("/messages?number=%2B15550001111")
        .await
        .text()
        .await
        .unwrap();
    assert!(has(&page, "#delete-conversation"));
    assert!(!has(
        &app.get("/messages").await.text().await.unwrap(),
        "#delete-conversation"
    ));
    // Without the box ticked nothing goes.
    let res = app
        .post_form(
            "/messages?number=%2B15550001111",
            "/messages/conversation/delete",
            &[("number", "+15550001111")],
        )
        .await;
    assert_eq!(location(&res), "/messages?number=%2B15550001111");
    assert_eq!(count("+15550001111").await, 3);
    let res = app
        .post_form(
            "/messages?number=%2B15550001111",
            "/messages/conversation/delete",
            &[("number", "not a number"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(location(&res), "/messages");
    let res = app
        .post_form(
            "/messages?number=%2B15550001111",
            "/messages/conversation/delete",
            &[("number", "+1 555 000 1111"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(location(&res), "/messages");
    assert_eq!(count("+15550001111").await, 0);
    assert_eq!(count("+15550002222").await, 1, "other conversations stay");
    let theirs: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE workspace_id <> $1")
        .bind(ws)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(theirs, 1, "another workspace's messages stay");
    let (action, subject, detail): (String, String, Value) = sqlx::query_as(
        "SELECT action, subject, detail FROM audit_events WHERE workspace_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(ws)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(action, "sms.conversation_deleted");
    assert_eq!(subject, "…1111");
    assert_eq!(detail, json!({"messages": 3}));

    // The API: the same, with its own errors.
    let (status, body) = caller
        .post("/api/sms/conversations/delete", json!({"number": "+15550002222"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted"], 1);
    let (status, body) = caller
        .post("/api/sms/conversations/delete", json!({"number": "12"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["data"]["errors"]["number"].is_string());
    let res = reqwest::Client::new()
        .post(app.url("/api/sms/conversations/delete"))
        .json(&json!({"number": "+15550002222"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_full_disk_fails_the_export_with_a_clear_reason_and_offers_nothing() {
    let app = TestApp::spawn().await;
    let caller = Caller::new(&app, "full@example.org").await;
    caller.send(&["+15550001111"], "x").await;
    let (_, body) = caller.post("/api/exports", json!({"format": "csv"})).await;
    let id = body["id"].as_str().unwrap().to_owned();
    // The export's temporary file is /dev/full: every write fails with "no space left".
    let ctx = exports_ctx(&app, app.store.clone());
    std::fs::create_dir_all(&ctx.tmp_dir).unwrap();
    std::os::unix::fs::symlink("/dev/full", ctx.tmp_dir.join(format!("export-{id}.part"))).unwrap();
    run_exports(&app, &ctx).await;
    let (_, body) = caller.get(&format!("/api/exports/{id}")).await;
    assert_eq!(body["status"], "failed", "{body}");
    assert!(body["error"].as_str().unwrap().contains("disk is full"), "{body}");
    assert_eq!(body["download_url"], "");
    assert_eq!(
        download(&caller.key, &app, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(app.store.list("exports/").await.unwrap().is_empty());
    // The page says so too.
    assert_eq!(
        app.login("full@example.org", PW).await.status(),
        StatusCode::SEE_OTHER
    );
    let page = app.get("/exports").await.text().await.unwrap();
    assert_eq!(select_text(&page, ".export-status"), vec!["failed"]);
    assert!(select_text(&page, ".export-note")[0].contains("disk is full"));
}
