//! The dashboard pages of the pipeline: API keys, devices, Send, Messages, the dashboard's
//! figures, and other users' resources.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use crate::simulator::Sim;

const PW: &str = "correct horse battery";

#[tokio::test]
async fn api_keys_are_shown_once_work_and_can_be_revoked_or_rotated() {
    let app = TestApp::spawn().await;
    app.signed_in_user("keys@example.org", PW).await;
    let bad = app
        .post_form(
            "/api-keys",
            "/api-keys",
            &[("name", ""), ("expires", ""), ("scopes", "read")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(has(&bad.text().await.unwrap(), ".field-error[data-field=name]"));
    let bad = app
        .post_form(
            "/api-keys",
            "/api-keys",
            &[("name", "x"), ("expires", "tomorrow")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The form opens with the Vendel SDKs' scopes ticked; a key with none is refused and
    // the form keeps what was typed.
    let form = app.get("/api-keys").await.text().await.unwrap();
    let ticked = |html: &str| select_attr_all(html, "#scopes input[type=checkbox][checked]", "value");
    assert_eq!(ticked(&form), ["send", "read", "contacts"]);
    let bad = app
        .post_form(
            "/api-keys",
            "/api-keys",
            &[("name", "No scopes"), ("expires", "")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = bad.text().await.unwrap();
    assert!(has(&body, ".field-error[data-field=scopes]"), "{body}");
    assert!(ticked(&body).is_empty());
    assert_eq!(select_attr(&body, "input#name", "value").unwrap(), "No scopes");
    let bad = app
        .post_form(
            "/api-keys",
            "/api-keys",
            &[("name", "x"), ("expires", ""), ("scopes", "root")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let res = app
        .post_form(
            "/api-keys",
            "/api-keys",
            &[
                ("name", "Clinic reminders"),
                ("expires", ""),
                ("scopes", "send"),
                ("scopes", "read"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert_eq!(
        select_text(&page, "#keys tbody tr td:nth-child(3)")[0],
        "send, read"
    );
    let key = select_text(&page, "#secret")[0].clone();
    assert!(key.starts_with("vk_") && key.len() == 35, "{key}");
    assert!(has(&page, "#qr svg"));
    assert_eq!(
        select_text(&page, "#keys tbody tr td:nth-child(2)")[0],
        format!("{}…", &key[..7])
    );
    // Only the page that created it shows it.
    assert!(!app.get("/api-keys").await.text().await.unwrap().contains(&key));

    let api = |k: String| {
        let url = app.url("/api/plans/quota");
        async move {
            reqwest::Client::new()
                .get(url)
                .header("x-api-key", k)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(api(key.clone()).await, StatusCode::OK);
    let id = select_attr(&page, "#keys tbody tr", "data-key").unwrap();
    let rotated = app
        .post_form("/api-keys", &format!("/api-keys/{id}/rotate"), &[])
        .await
        .text()
        .await
        .unwrap();
    let new_key = select_text(&rotated, "#secret")[0].clone();
    assert_ne!(new_key, key);
    assert_eq!(api(key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(api(new_key.clone()).await, StatusCode::OK);
    let new_id = select_attr(&rotated, "#keys tbody tr", "data-key").unwrap();
    let res = app
        .post_form("/api-keys", &format!("/api-keys/{new_id}/revoke"), &[])
        .await;
    assert_eq!(location(&res), "/api-keys");
    assert_eq!(api(new_key).await, StatusCode::UNAUTHORIZED);

    // Someone else's key id is not found.
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
    let res = post_form_with(
        &other,
        &app,
        "/api-keys",
        &format!("/api-keys/{new_id}/rotate"),
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn devices_are_added_with_a_one_time_key_and_managed() {
    let app = TestApp::spawn().await;
    app.signed_in_user("dev@example.org", PW).await;
    let bad = app
        .post_form(
            "/devices",
            "/devices",
            &[("name", "Phone"), ("kind", "android"), ("phone_number", "12345")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = bad.text().await.unwrap();
    assert!(has(&body, ".field-error[data-field=phone_number]"));
    assert_eq!(select_attr(&body, "input#name", "value").unwrap(), "Phone");

    let res = app
        .post_form(
            "/devices",
            "/devices",
            &[
                ("name", "Front desk"),
                ("kind", "android"),
                ("phone_number", "+1 555 123 4567"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    let key = select_text(&page, "#secret")[0].clone();
    assert!(key.starts_with("dk_"));
    assert!(has(&page, "#qr svg"));
    let id = select_attr(&page, "#devices tbody tr", "data-device").unwrap();
    assert_eq!(
        select_text(&page, "#devices tbody tr td:nth-child(4)")[0],
        "offline"
    );

    // The key works on the device API, and the list shows the phone online once it polls.
    let res = reqwest::Client::new()
        .get(app.url("/api/sms/pending"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["device_id"],
        id.as_str()
    );
    sqlx::query("UPDATE devices SET fcm_token = 'token'")
        .execute(app.pool())
        .await
        .unwrap();
    let fragment = app
        .client
        .get(app.url("/devices"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(fragment.headers()["vary"], "HX-Request");
    let fragment = fragment.text().await.unwrap();
    assert!(!fragment.contains("<html"));
    assert_eq!(
        select_text(&fragment, "#devices tbody tr td:nth-child(4)")[0],
        "online"
    );

    let detail = format!("/devices/{id}");
    let bad = app
        .post_form(
            &detail,
            &format!("{detail}/pacing"),
            &[("per_minute_limit", "0"), ("per_day_limit", "10")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let ok = app
        .post_form(
            &detail,
            &format!("{detail}/pacing"),
            &[("per_minute_limit", "5"), ("per_day_limit", "300")],
        )
        .await;
    assert_eq!(location(&ok), detail);
    let ok = app
        .post_form(&detail, &detail, &[("name", "Reception"), ("phone_number", "")])
        .await;
    assert_eq!(location(&ok), detail);
    let shown = app.get(&detail).await.text().await.unwrap();
    assert_eq!(select_text(&shown, "h1")[0], "Reception");
    app.post_form(&detail, &format!("{detail}/enabled"), &[("enabled", "false")])
        .await;
    assert!(has(&app.get(&detail).await.text().await.unwrap(), "#enable"));

    let rotated = app
        .post_form(&detail, &format!("{detail}/rotate"), &[])
        .await
        .text()
        .await
        .unwrap();
    let new_key = select_text(&rotated, "#secret")[0].clone();
    let old = reqwest::Client::new()
        .get(app.url("/api/sms/pending"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    assert_ne!(new_key, key);

    let res = app.post_form(&detail, &format!("{detail}/delete"), &[]).await;
    assert_eq!(location(&res), "/devices");
    assert_eq!(app.get(&detail).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_users_device_and_message_pages_are_not_found() {
    let app = TestApp::spawn().await;
    app.create_user("owner@example.org", PW).await;
    let device = Sim::register(&app, "owner@example.org", "android", "Owner's").await;
    app.signed_in_user("snoop@example.org", PW).await;
    assert_eq!(
        app.get(&format!("/devices/{}", device.id)).await.status(),
        StatusCode::NOT_FOUND
    );
    let res = app
        .post_form("/devices", &format!("/devices/{}/delete", device.id), &[])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (_, msg) = device
        .post(
            "/api/sms/incoming",
            json!({"from_number": "+15551112222", "body": "private"}),
        )
        .await;
    let id = msg["message_id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/messages/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/messages/not-an-id").await.status(),
        StatusCode::NOT_FOUND
    );
    let inbox = app.get("/messages?tab=inbox").await.text().await.unwrap();
    assert!(!inbox.contains("private"));
}

#[tokio::test]
async fn the_send_page_validates_counts_and_sends() {
    let app = TestApp::spawn().await;
    app.signed_in_user("send@example.org", PW).await;
    let counter = app
        .get(&format!("/send/count?body={}", "ж".repeat(71)))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        counter.contains("71 / 1600 characters · 2 SMS parts · Unicode (UCS-2)"),
        "{counter}"
    );

    let bad = app
        .post_form(
            "/send",
            "/send",
            &[
                ("recipients", "+15550001111, nope"),
                ("body", "Hi"),
                ("device_id", ""),
            ],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = bad.text().await.unwrap();
    assert!(
        select_text(&body, ".field-error[data-field=recipients]")[0].contains("Invalid phone number: nope.")
    );
    assert_eq!(select_text(&body, "textarea#body")[0], "Hi", "the body is kept");
    let bad = app
        .post_form(
            "/send",
            "/send",
            &[("recipients", "+15550001111"), ("body", " "), ("device_id", "")],
        )
        .await;
    assert!(has(&bad.text().await.unwrap(), ".field-error[data-field=body]"));

    let res = app
        .post_form(
            "/send",
            "/send",
            &[
                ("recipients", "+15550001111\n+15550002222\n+15550001111"),
                ("body", "Reminder: 9:00"),
                ("device_id", ""),
            ],
        )
        .await;
    assert_eq!(location(&res), "/messages");
    let page = app.get("/messages").await.text().await.unwrap();
    assert!(select_text(&page, ".toast")[0].contains("2 messages accepted"));
    assert_eq!(select_text(&page, "#message-rows tr").len(), 2);
    assert!(
        select_text(&page, "#message-rows .badge")
            .iter()
            .all(|s| s == "pending")
    );
}

#[tokio::test]
async fn messages_page_through_the_history_and_show_events() {
    let app = TestApp::spawn().await;
    app.signed_in_user("hist@example.org", PW).await;
    let phone = Sim::register(&app, "hist@example.org", "android", "Phone").await;
    let user: uuid::Uuid =
        sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let recipients: Vec<String> = (0..60).map(|i| format!("+1555200{i:04}")).collect();
    let req = ender_core::sms::send::SendRequest {
        recipients: recipients.clone(),
        body: "Paged".into(),
        ..Default::default()
    };
    ender_core::sms::send::send(
        app.pool(),
        &ender_core::config::SmsConfig::default(),
        ender_core::workspace::WorkspaceId(user),
        &req,
        None,
    )
    .await
    .unwrap();
    let first = app.get("/messages").await.text().await.unwrap();
    assert_eq!(select_text(&first, "#message-rows tr").len(), 50);
    let older = select_attr(&first, "#older", "href").unwrap();
    let second = app.get(&older).await.text().await.unwrap();
    assert_eq!(select_text(&second, "#message-rows tr").len(), 10);
    assert!(!has(&second, "#older"));
    let filtered = app
        .get("/messages?tab=outbox&status=delivered")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        select_text(&filtered, "#message-rows tr")[0],
        "No messages here yet."
    );

    sqlx::query("UPDATE devices SET per_minute_limit = 100")
        .execute(app.pool())
        .await
        .unwrap();
    let handed = phone.pending().await;
    let id = handed[0]["message_id"].as_str().unwrap();
    phone.report(id, "sent", "").await;
    let detail = app.get(&format!("/messages/{id}")).await.text().await.unwrap();
    assert_eq!(select_text(&detail, "#message-status")[0], "sent");
    let history: Vec<String> = select_text(&detail, "#events tbody tr td:nth-child(2)");
    assert_eq!(history, ["pending", "assigned", "sending", "sent"]);
    assert_eq!(
        select_text(&detail, "#events tbody tr td:nth-child(3)")[1],
        "Phone"
    );

    let dashboard = app.get("/").await.text().await.unwrap();
    assert_eq!(select_text(&dashboard, "#sent-today")[0], "1");
    assert_eq!(select_text(&dashboard, "#pending")[0], "59");
    assert_eq!(select_text(&dashboard, "#devices-online")[0], "1 / 1");
    assert_eq!(select_text(&dashboard, "#chart svg rect.sent").len(), 14);
}

#[tokio::test]
async fn the_browser_stream_announces_changes_to_the_owner_only() {
    let app = TestApp::spawn().await;
    app.signed_in_user("live@example.org", PW).await;
    let phone = Sim::register(&app, "live@example.org", "android", "Phone").await;
    let mut res = app.client.get(app.url("/events")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let outsider = client().get(app.url("/events")).send().await.unwrap();
    assert_eq!(outsider.status(), StatusCode::SEE_OTHER);
    phone
        .post(
            "/api/sms/incoming",
            json!({"from_number": "+15551112222", "body": "ping"}),
        )
        .await;
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut text = String::new();
        while let Ok(Some(chunk)) = res.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: messages") {
                return text;
            }
        }
        text
    })
    .await
    .unwrap();
    assert!(got.contains("event: messages"), "{got}");
}

#[tokio::test]
async fn messages_can_be_filtered_by_number_and_device() {
    let app = TestApp::spawn().await;
    app.signed_in_user("filter@example.org", PW).await;
    let a = Sim::register(&app, "filter@example.org", "android", "A").await;
    let b = Sim::register(&app, "filter@example.org", "android", "B").await;
    let user: uuid::Uuid =
        sqlx::query_scalar("SELECT w.id FROM users JOIN workspaces w ON w.personal_user_id = users.id")
            .fetch_one(app.pool())
            .await
            .unwrap();
    for (to, device) in [
        ("+15550000001", &a.id),
        ("+15550000002", &b.id),
        ("+15550000001", &b.id),
    ] {
        let req = ender_core::sms::send::SendRequest {
            recipients: vec![to.to_owned()],
            body: "Filtered".into(),
            device_id: Some(device.clone()),
            ..Default::default()
        };
        ender_core::sms::send::send(
            app.pool(),
            &ender_core::config::SmsConfig::default(),
            ender_core::workspace::WorkspaceId(user),
            &req,
            None,
        )
        .await
        .unwrap();
    }
    let count = |body: String| select_text(&body, "#message-rows tr[data-message]").len();
    assert_eq!(
        count(
            app.get("/messages?number=%2B1+555+000+0001")
                .await
                .text()
                .await
                .unwrap()
        ),
        2
    );
    assert_eq!(
        count(
            app.get(&format!("/messages?device={}", b.id))
                .await
                .text()
                .await
                .unwrap()
        ),
        2
    );
    let both = app
        .get(&format!("/messages?number=%2B15550000001&device={}", b.id))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(count(both.clone()), 1);
    assert_eq!(
        select_attr(&both, "input[name=number]", "value").unwrap(),
        "+15550000001"
    );
    b.post(
        "/api/sms/incoming",
        json!({"from_number": "+15557770000", "body": "In"}),
    )
    .await;
    assert_eq!(
        count(
            app.get("/messages?tab=inbox&number=%2B15557770000")
                .await
                .text()
                .await
                .unwrap()
        ),
        1
    );
}
